//! The self-service pages: server-rendered HTML (no inline script or style, so the strict CSP
//! holds), and the form posts that need no script (rename, report lost, sign out), each
//! CSRF-checked.

use super::store;
use crate::store::credentials;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Redirect, Response};
use keywarden_protocol::CredentialView;
use keywarden_protocol::ErrorCode;
use serde::Deserialize;

use super::session::{self, WebSession};
use crate::audit;
use crate::csf::esc;
use crate::error::{Error, Result};
use crate::policy::DeviceClass;
use crate::secrets;
use crate::state::AppState;

/// A whole page. `csrf` goes into a meta tag for the script's JSON calls.
fn page(
    title: &str,
    page_id: &str,
    csrf: Option<&str>,
    signed_in: Option<&str>,
    main: &str,
) -> Html<String> {
    let meta = csrf
        .map(|c| format!("<meta name=\"kw-csrf\" content=\"{}\">", esc(c)))
        .unwrap_or_default();
    let nav = match (signed_in, csrf) {
        (Some(who), Some(c)) => format!(
            "<nav aria-label=\"Account\"><span class=\"who\">Signed in as {}</span> \
             <form method=\"post\" action=\"/me/sign-out\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\" class=\"link\">Sign out</button></form></nav>",
            esc(who),
            esc(c)
        ),
        _ => String::new(),
    };
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{meta}\
         <title>{title} · Keywarden</title>\
         <link rel=\"stylesheet\" href=\"/me/assets/selfservice.css\">\
         <script type=\"module\" src=\"/me/assets/selfservice.js\"></script></head>\
         <body data-page=\"{page_id}\"><header><a class=\"brand\" href=\"/me\">Keywarden</a>{nav}</header>\
         <main id=\"main\">{main}</main>\
         <footer><p>Keywarden binds your sign-in methods to you and to no one else. \
         <a href=\"/me/laptop\">What Keywarden sees on your laptop</a></p></footer></body></html>",
        title = esc(title),
    ))
}

/// An error as a page, with the same status the JSON API would give.
fn error_page(e: &Error, signed_in: Option<&WebSession>) -> Response {
    let (status, code, message) = e.parts();
    let body = format!(
        "<h1>That did not work</h1><p id=\"status\" role=\"alert\" data-code=\"{}\">{}</p><p><a href=\"/me\">Back to your sign-in methods</a></p>",
        esc(code.as_str()),
        esc(&message)
    );
    (
        status,
        page(
            "That did not work",
            "error",
            signed_in.map(WebSession::csrf),
            signed_in.map(|s| s.display_name.as_str()),
            &body,
        ),
    )
        .into_response()
}

fn sign_in_page(note: Option<&str>) -> Response {
    let note = note
        .map(|n| format!("<p class=\"note\">{}</p>", esc(n)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1>{note}\
         <p>Sign in with a passkey or security key you already have with Keywarden.</p>\
         <p><button type=\"button\" id=\"sign-in\">Sign in with a passkey</button></p>\
         <p id=\"status\" role=\"status\" aria-live=\"polite\"></p>\
         <h2>New here?</h2><p>Open the enrolment link IT sent you, or use the Keywarden app on your laptop. \
         If you lost every key, call the help desk: they will verify who you are and start a recovery.</p>"
    );
    page("Sign in", "sign-in", None, None, &body).into_response()
}

/// The session, or the sign-in page (with why, when an old session ended).
async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> std::result::Result<WebSession, Response> {
    match session::lookup(state, headers).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(sign_in_page(None)),
        Err(e @ Error::Unauthorized { .. }) => {
            let (_, _, message) = e.parts();
            Err(sign_in_page(Some(&message)))
        }
        Err(e) => Err(e.into_response()),
    }
}

fn status_label(status: &str) -> &'static str {
    match status {
        "active" => "Active",
        "suspended" => "Reported lost",
        "revoked" => "Revoked",
        _ => "Unknown",
    }
}

fn kind_label(c: &CredentialView) -> &'static str {
    DeviceClass::parse(&c.device_class).map_or("Unknown", DeviceClass::label)
}

/// `GET /me`: your sign-in methods and laptops, or the sign-in page.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let s = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match home_page(&state, &s).await {
        Ok(r) => r,
        Err(e) => error_page(&e, Some(&s)),
    }
}

async fn home_page(state: &AppState, s: &WebSession) -> Result<Response> {
    let mut tx = crate::db::begin(&state.db).await?;
    let creds = super::credentials_of(&mut tx, &s.person_id).await?;
    let coverage = super::coverage_of(state, &mut tx, &s.person_id).await?;
    let laptops = crate::store::console::laptops_of(&mut **tx, &s.person_id).await?;
    tx.commit().await?;
    let csrf = esc(s.csrf());
    let mut rows = String::new();
    for c in creds.iter().filter(|c| c.status != "revoked") {
        let name = c
            .name
            .clone()
            .or_else(|| c.model.clone())
            .unwrap_or_else(|| kind_label(c).to_owned());
        let this_one = s.signed_in_with.as_deref() == Some(c.id.as_str());
        let lost = if c.status == "active" && !this_one && s.signed_in_with.is_some() {
            format!(
                "<form method=\"post\" action=\"/me/credentials/{id}/lost\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <button type=\"submit\" class=\"danger\">Report lost</button></form>",
                id = esc(&c.id),
            )
        } else if this_one {
            "<span class=\"muted\">You signed in with this one</span>".to_owned()
        } else {
            String::new()
        };
        rows.push_str(&format!(
            "<tr data-credential-id=\"{id}\"><td>{name}</td><td>{kind}{synced}</td><td>{status}</td><td>{added}</td>\
             <td><form method=\"post\" action=\"/me/credentials/{id}/name\" class=\"inline rename\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label>New name <input type=\"text\" name=\"name\" maxlength=\"64\" required></label> <button type=\"submit\">Rename</button></form> {lost}</td></tr>",
            id = esc(&c.id),
            name = esc(&name),
            kind = kind_label(c),
            synced = if c.synced { " <span class=\"tag\">synced</span>" } else { "" },
            status = status_label(&c.status),
            added = secrets::fmt_time(c.created_at_ms),
        ));
    }
    if rows.is_empty() {
        rows = "<tr><td colspan=\"5\">No sign-in methods yet.</td></tr>".to_owned();
    }
    let mut laptop_rows = String::new();
    for l in &laptops {
        let (seen, retired) = (l.last_report_at, l.retired_at);
        laptop_rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&l.hostname),
            seen.map_or("never".to_owned(), secrets::fmt_time),
            if retired.is_some() {
                "Retired"
            } else {
                "In service"
            },
        ));
    }
    if laptop_rows.is_empty() {
        laptop_rows =
            "<tr><td colspan=\"3\">No laptop of yours runs the Keywarden app yet.</td></tr>"
                .to_owned();
    }
    let body = format!(
        "<h1>Your sign-in methods</h1>\
         <section id=\"coverage\" class=\"{cls}\" aria-labelledby=\"coverage-h\"><h2 id=\"coverage-h\">Coverage</h2><p>{text}</p></section>\
         <p><a class=\"button\" href=\"/me/add\">Add a passkey</a></p>\
         <h2 id=\"auth-h\">Authenticators</h2>\
         <table id=\"authenticators\" aria-labelledby=\"auth-h\"><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Kind</th>\
         <th scope=\"col\">Status</th><th scope=\"col\">Added (UTC)</th><th scope=\"col\">Actions</th></tr></thead><tbody>{rows}</tbody></table>\
         <h2 id=\"laptops-h\">Laptops</h2>\
         <table id=\"laptops\" aria-labelledby=\"laptops-h\"><thead><tr><th scope=\"col\">Laptop</th><th scope=\"col\">Last check-in (UTC)</th>\
         <th scope=\"col\">Status</th></tr></thead><tbody>{laptop_rows}</tbody></table>",
        cls = if coverage.compliant { "ok" } else { "warn" },
        text = esc(&coverage.text),
    );
    Ok(page(
        "Your sign-in methods",
        "home",
        Some(s.csrf()),
        Some(&s.display_name),
        &body,
    )
    .into_response())
}

/// `GET /me/enrol#ticket=…` / `#link=…`: the script redeems what the fragment carries.
pub async fn enrol() -> Html<String> {
    page(
        "Enrol",
        "enrol",
        None,
        None,
        "<h1>Setting up your sign-in</h1>\
         <p id=\"checking\">Checking your enrolment link…</p>\
         <p id=\"status\" role=\"alert\"></p>\
         <noscript><p>This step needs JavaScript: passkeys are made by your browser.</p></noscript>",
    )
}

/// `GET /me/add`: add this laptop's passkey or a phone's.
pub async fn add(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let s = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let now = state.now_ms();
    let step_up = if s.may_add(now) {
        "<section id=\"step-up\" hidden>"
    } else {
        "<section id=\"step-up\">"
    };
    let body = format!(
        "<h1>Add a passkey</h1>\
         <p>A passkey on another kind of device keeps you working when one is lost. \
         Security keys are added with the Keywarden app on your laptop.</p>\
         {step_up}<h2>Confirm it is you</h2><p>Adding a passkey needs a key you already have.</p>\
         <p><button type=\"button\" id=\"confirm-key\">Confirm with a key you already have</button></p></section>\
         <p><label for=\"passkey-name\">Name</label> <input type=\"text\" id=\"passkey-name\" maxlength=\"64\" \
         placeholder=\"e.g. work laptop\" autocomplete=\"off\"></p>\
         <p class=\"actions\"><button type=\"button\" id=\"add-platform\">Add this laptop</button> \
         <button type=\"button\" id=\"add-phone\">Add a phone</button></p>\
         <p id=\"status\" role=\"status\" aria-live=\"polite\"></p>\
         <p><a href=\"/me\">Back to your sign-in methods</a></p>"
    );
    page(
        "Add a passkey",
        "add",
        Some(s.csrf()),
        Some(&s.display_name),
        &body,
    )
    .into_response()
}

/// `GET /me/laptop`: what Keywarden collects about a laptop, and what it cannot see; signed in,
/// also what it last received from yours.
pub async fn laptop(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let s = session::lookup(&state, &headers).await.ok().flatten();
    let mut yours = String::new();
    if let Some(s) = &s {
        match last_reports(&state, &s.person_id).await {
            Ok(r) => yours = r,
            Err(e) => return error_page(&e, Some(s)),
        }
    }
    let body = format!(
        "<h1>What Keywarden sees on your laptop</h1>\
         <p>The Keywarden app checks a few settings that keep your passkeys safe and reports them to your organisation. \
         This is the whole list.</p>\
         <h2>What it collects</h2><ul>\
         <li>Operating system name and version, kernel version, processor type, host name, and when the laptop last started.</li>\
         <li>Disks: their names, where they are mounted, file system, size and free space, and whether they are removable. Never their contents.</li>\
         <li>Whether the system disk is encrypted, whether the firewall is on, whether secure boot is enforced, and when the system last installed updates.</li>\
         <li>Security keys plugged in: model, firmware and protocol versions, whether a PIN is set and how many tries are left (never the PIN), \
         free slots, and which of your organisation's sign-in credentials each key holds. Serial numbers only where your organisation's policy allows it.</li>\
         <li>Which version of the app sent the report, and when.</li></ul>\
         <h2>What it cannot see</h2><ul>\
         <li>Your files, documents, photos, messages, mail or browsing history.</li>\
         <li>Your location, camera, microphone, screen or keystrokes.</li>\
         <li>Other apps' data, your passwords, your PINs, or the private keys inside your security keys and passkeys.</li>\
         <li>Passkeys you add in the browser: Keywarden learns only that the passkey exists, its kind, and whether it is synced.</li></ul>\
         <p>Where the app cannot tell a setting, it reports it as unknown, with the reason, rather than guessing.</p>{yours}"
    );
    page(
        "What Keywarden sees",
        "laptop",
        s.as_ref().map(WebSession::csrf),
        s.as_ref().map(|s| s.display_name.as_str()),
        &body,
    )
    .into_response()
}

fn observed(v: Option<&serde_json::Value>) -> String {
    let Some(v) = v else {
        return "not reported".to_owned();
    };
    match v.get("state").and_then(|s| s.as_str()) {
        Some("known") => match v.get("value") {
            Some(serde_json::Value::Bool(true)) => "yes".to_owned(),
            Some(serde_json::Value::Bool(false)) => "no".to_owned(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => "not reported".to_owned(),
        },
        Some("unknown") => format!(
            "unknown ({})",
            v.get("reason")
                .and_then(|r| r.as_str())
                .unwrap_or("no reason given")
        ),
        _ => "not reported".to_owned(),
    }
}

async fn last_reports(state: &AppState, person_id: &str) -> Result<String> {
    let rows = store::last_reports_of(&state.db, person_id).await?;
    if rows.is_empty() {
        return Ok("<h2>Your laptops</h2><p>Keywarden has received nothing from a laptop of yours yet.</p>".to_owned());
    }
    let mut out = String::from("<h2>What Keywarden last received from your laptops</h2>");
    for r in &rows {
        let body: serde_json::Value = serde_json::from_str(&r.body).map_err(Error::Corrupt)?;
        let p = body.get("posture");
        let get = |k: &str| observed(p.and_then(|p| p.get(k)));
        let keys = body
            .get("keys")
            .and_then(|k| k.as_array())
            .map_or(0, Vec::len);
        out.push_str(&format!(
            "<h3>{host}</h3><dl class=\"facts\"><dt>Received (UTC)</dt><dd>{at}</dd>\
             <dt>Operating system</dt><dd>{os} {ver}</dd><dt>Disk encryption</dt><dd>{enc}</dd>\
             <dt>Firewall</dt><dd>{fw}</dd><dt>Secure boot</dt><dd>{sb}</dd>\
             <dt>Security keys plugged in</dt><dd>{keys}</dd></dl>",
            host = esc(&r.hostname),
            at = secrets::fmt_time(r.created_at),
            os = esc(&get("os_name")),
            ver = esc(&get("os_version")),
            enc = esc(&get("disk_encryption")),
            fw = esc(&get("firewall")),
            sb = esc(&get("secure_boot")),
        ));
    }
    Ok(out)
}

/// A form post carrying the page's CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
    name: Option<String>,
}

/// A state-changing form post from a signed-in page: the session and the form, checked (origin,
/// CSRF; a refused token is audited); an error page otherwise. A post without a live session
/// gets the sign-in page.
pub struct PageForm(WebSession, CsrfForm);

impl FromRequest<AppState> for PageForm {
    type Rejection = Response;

    async fn from_request(
        req: Request,
        state: &AppState,
    ) -> std::result::Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let form = Form::<CsrfForm>::from_request(req, state).await;
        let (s, form) = checked(state, &headers, form).await?;
        Ok(PageForm(s, form))
    }
}

async fn checked(
    state: &AppState,
    headers: &HeaderMap,
    form: std::result::Result<Form<CsrfForm>, FormRejection>,
) -> std::result::Result<(WebSession, CsrfForm), Response> {
    let s = match session::lookup(state, headers).await {
        Ok(Some(s)) => s,
        Ok(None) | Err(Error::Unauthorized { .. }) => {
            // Refuse before anything else: a post from another site arrives without the
            // cookie (SameSite=Strict) and must change nothing.
            let e = match session::same_origin(state, headers) {
                Err(e) => e,
                Ok(()) => Error::unauthorized(
                    ErrorCode::SessionUnknown,
                    "you are not signed in: sign in first",
                ),
            };
            return Err(error_page(&e, None));
        }
        Err(e) => return Err(e.into_response()),
    };
    let form = match form {
        Ok(Form(f)) => f,
        Err(_) => {
            return Err(error_page(
                &Error::bad_request(
                    ErrorCode::FormInvalid,
                    "the form could not be read; reload the page",
                ),
                Some(&s),
            ))
        }
    };
    if let Err(e) = session::check_csrf(state, headers, &s, form.csrf.as_deref()) {
        let _ = audit::record_refusal(
            &state.db,
            state.now_ms(),
            &format!("web:{}", s.id),
            "web.csrf_refused",
            &s.person_id,
            serde_json::json!({"origin": headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())}),
        )
        .await;
        return Err(error_page(&e, Some(&s)));
    }
    Ok((s, form))
}

/// `POST /me/sign-out`: end the session on the service; the cookie is cleared.
pub async fn sign_out(state: State<AppState>, form: PageForm) -> Response {
    sign_out_to(state, form, "/me").await
}

/// End the session and go to `to` (the self-service or the console's sign-in page).
pub async fn sign_out_to(
    State(state): State<AppState>,
    PageForm(s, _): PageForm,
    to: &str,
) -> Response {
    let now = state.now_ms();
    let done = async {
        let mut tx = crate::db::begin(&state.db).await?;
        session::end(&mut tx, &s.id, "signed_out", now).await?;
        audit::record(
            &mut tx,
            now,
            &format!("web:{}", s.id),
            "person.signed_out",
            &s.person_id,
            serde_json::json!({"web_session_id": s.id}),
        )
        .await?;
        tx.commit().await?;
        Ok::<_, Error>(())
    }
    .await;
    match done {
        Ok(()) => (
            [(header::SET_COOKIE, session::cleared_cookie())],
            Redirect::to(to),
        )
            .into_response(),
        Err(e) => error_page(&e, Some(&s)),
    }
}

/// `POST /me/credentials/{id}/lost`: suspend one of your credentials after signing in with
/// another (the same rule as the desktop app's "report lost").
pub async fn report_lost(
    State(state): State<AppState>,
    Path(id): Path<String>,
    PageForm(s, _): PageForm,
) -> Response {
    let now = state.now_ms();
    match report_lost_in(&state, &s, &id, now).await {
        Ok(()) => {
            state.outbox_wake.notify_one();
            Redirect::to("/me").into_response()
        }
        Err(e) => {
            let (_, code, message) = e.parts();
            let _ = audit::record_refusal(
                &state.db,
                now,
                &format!("web:{}", s.id),
                "credential.report_lost_refused",
                &s.person_id,
                serde_json::json!({"credential_id": id, "reason": code, "message": message}),
            )
            .await;
            error_page(&e, Some(&s))
        }
    }
}

async fn report_lost_in(state: &AppState, s: &WebSession, id: &str, now: i64) -> Result<()> {
    let Some(with) = s.signed_in_with.as_deref() else {
        return Err(Error::forbidden(
            ErrorCode::SignInWithAnotherKey,
            "sign in with another of your keys to report one lost",
        ));
    };
    if with == id {
        return Err(Error::forbidden(
            ErrorCode::CannotReportSignedInKey,
            "you signed in with this key, so it is not lost; sign in with another key to report this one",
        ));
    }
    let mut tx = crate::db::begin(&state.db).await?;
    crate::db::lock_person(&mut tx, &s.person_id).await?;
    let owner = credentials::owner(&mut tx, id).await?;
    if owner.as_deref() != Some(s.person_id.as_str()) {
        return Err(Error::not_found(
            ErrorCode::CredentialUnknown,
            "you have no such sign-in method",
        ));
    }
    let signer = credentials::standing(&mut tx, with)
        .await?
        .map(|c| c.status);
    if signer.as_deref() != Some("active") {
        return Err(Error::forbidden(
            ErrorCode::CredentialNotActive,
            "the key you signed in with is no longer active; sign in again with an active key",
        ));
    }
    crate::recovery::suspend(
        &mut tx,
        id,
        &format!("web:{}", s.id),
        "reported lost by its person on the self-service pages",
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `POST /me/credentials/{id}/name`: name one of your credentials.
pub async fn rename(
    State(state): State<AppState>,
    Path(id): Path<String>,
    PageForm(s, form): PageForm,
) -> Response {
    let now = state.now_ms();
    let done = async {
        let name = form.name.as_deref().map(str::trim).unwrap_or_default();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::bad_request(
                ErrorCode::NameInvalid,
                "a name is 1 to 64 characters, on one line",
            ));
        }
        let mut tx = crate::db::begin(&state.db).await?;
        if !store::rename_credential(&mut tx, &id, &s.person_id, name).await? {
            return Err(Error::not_found(
                ErrorCode::CredentialUnknown,
                "you have no such sign-in method",
            ));
        }
        audit::record(
            &mut tx,
            now,
            &format!("web:{}", s.id),
            "credential.renamed",
            &s.person_id,
            serde_json::json!({"credential_id": id, "name": name}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/me").into_response(),
        Err(e) => error_page(&e, Some(&s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_read_as_a_person_would() {
        let known = serde_json::json!({"state": "known", "value": true});
        let unknown = serde_json::json!({"state": "unknown", "reason": "no permission"});
        assert_eq!(observed(Some(&known)), "yes");
        assert_eq!(observed(Some(&unknown)), "unknown (no permission)");
        assert_eq!(observed(None), "not reported");
    }
}
