//! A browser on the self-service pages: session cookie, CSRF token, Origin and Sec-Fetch-Site.

use super::{app::*, softkey::*};
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

/// The service's origin in these tests (what a browser on its pages sends as `Origin`).
pub const ORIGIN: &str = "https://keywarden.localhost";

/// A browser on the self-service pages: its session cookie and the page's CSRF token. Its
/// WebAuthn answers come from a software key (test/demo), shaped as a browser's
/// `PublicKeyCredential.toJSON()`.
#[derive(Debug, Clone, Default)]
pub struct Browser {
    pub cookie: Option<String>,
    pub csrf: String,
    /// The `Origin` the browser sends (the service's own unless a test plays another site).
    pub origin: Option<String>,
    /// The `Sec-Fetch-Site` the browser sends, if any.
    pub fetch_site: Option<String>,
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            origin: Some(ORIGIN.to_owned()),
            ..Default::default()
        }
    }

    pub async fn send(
        &self,
        app: &App,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(o) = &self.origin {
            req = req.header("origin", o);
        }
        if let Some(f) = &self.fetch_site {
            req = req.header("sec-fetch-site", f);
        }
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("kw_session={c}"));
        }
        if !self.csrf.is_empty() {
            req = req.header("x-keywarden-csrf", &self.csrf);
        }
        app.send(req, content_type, body).await
    }

    /// A JSON call; a `Set-Cookie` with a session is kept.
    pub async fn post(&mut self, app: &App, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, h, bytes) = self
            .send(
                app,
                "POST",
                path,
                "application/json",
                body.to_string().into_bytes(),
            )
            .await;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if let Some(cookie) = h
            .get("set-cookie")
            .and_then(|c| c.to_str().ok())
            .and_then(|c| c.strip_prefix("kw_session="))
            .and_then(|c| c.split(';').next())
        {
            if !cookie.is_empty() {
                self.cookie = Some(cookie.to_owned());
                self.csrf = v["csrf"].as_str().unwrap_or_default().to_owned();
            }
        }
        (s, v)
    }

    /// A JSON call with any method (the console's actions on the admin API).
    pub async fn call(
        &self,
        app: &App,
        method: &str,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let (s, _, bytes) = self
            .send(
                app,
                method,
                path,
                "application/json",
                body.to_string().into_bytes(),
            )
            .await;
        (s, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// A page (or a JSON GET): status and body text.
    pub async fn get(&self, app: &App, path: &str) -> (StatusCode, String) {
        let (s, _, bytes) = self.send(app, "GET", path, "", Vec::new()).await;
        (s, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A form post (`fields` url-encoded); returns status, headers and the page.
    pub async fn form(
        &self,
        app: &App,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let body = fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let (s, h, bytes) = self
            .send(
                app,
                "POST",
                path,
                "application/x-www-form-urlencoded",
                body.into_bytes(),
            )
            .await;
        (s, h, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A browser that opened IT's enrolment link for `person_id` (a fresh ticket): its session
    /// is that person's.
    pub async fn with_ticket_for(app: &App, person_id: &str) -> Browser {
        let mut browser = Browser::new();
        let ticket = app.ticket_secret(person_id).await;
        let (s, v) = browser.redeem_ticket(app, &ticket).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        browser
    }

    /// Redeem IT's enrolment link in the browser.
    pub async fn redeem_ticket(&mut self, app: &App, ticket: &str) -> (StatusCode, Value) {
        self.post(app, "/api/v1/me/session/ticket", json!({"ticket": ticket}))
            .await
    }

    /// Add a passkey of `class` (`platform` or `phone`), made by `key`.
    pub async fn add_passkey(
        &mut self,
        app: &App,
        key: &SoftKey,
        class: &str,
        name: &str,
    ) -> (StatusCode, Value) {
        let body = json!({"class": class, "name": name});
        let (s, begin) = self.post(app, "/api/v1/me/passkeys/begin", body).await;
        if s != StatusCode::CREATED {
            return (s, begin);
        }
        let credential = key.browser_create(&begin["public_key"]);
        self.finish_passkey(app, &begin, credential).await
    }

    /// Start adding a passkey of `class` (`platform` or `phone`), unnamed.
    pub async fn begin_passkey(&mut self, app: &App, class: &str) -> (StatusCode, Value) {
        let body = json!({"class": class});
        self.post(app, "/api/v1/me/passkeys/begin", body).await
    }

    /// Finish adding a passkey: `credential` answers the challenge of `begin`.
    pub async fn finish_passkey(
        &mut self,
        app: &App,
        begin: &Value,
        credential: Value,
    ) -> (StatusCode, Value) {
        let body = json!({"challenge_id": begin["challenge_id"], "credential": credential});
        self.post(app, "/api/v1/me/passkeys/finish", body).await
    }

    /// An assertion ceremony (`sign-in` or `step-up`) answered by `key`.
    pub async fn assert_with(
        &mut self,
        app: &App,
        what: &str,
        key: &SoftKey,
    ) -> (StatusCode, Value) {
        let (s, begin) = self
            .post(app, &format!("/api/v1/me/{what}/begin"), json!({}))
            .await;
        if s != StatusCode::CREATED {
            return (s, begin);
        }
        let credential = key.browser_get(&begin);
        self.post(
            app,
            &format!("/api/v1/me/{what}/finish"),
            json!({"challenge_id": begin["challenge_id"], "credential": credential}),
        )
        .await
    }
}
