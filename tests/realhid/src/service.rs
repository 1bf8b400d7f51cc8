//! The service: a real `keywarden-server` on loopback, with people, tickets and credentials.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use crate::env::Env;
use anyhow::{anyhow, ensure, Context as _, Result};
use serde_json::Value;

pub(crate) struct Service {
    pub(crate) child: Child,
    pub(crate) url: String,
    pub(crate) token: String,
    pub(crate) http: reqwest::blocking::Client,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    pub(crate) fn start(env: &Env) -> Result<Service> {
        let dir = env.work.join("service");
        let token_file = env.work.join("admin-token");
        let mut child = Command::new(env.bin("keywarden-server"))
            .arg("--data-dir")
            .arg(&dir)
            .args(["--listen", "127.0.0.1:0", "--admin-token-file"])
            .arg(&token_file)
            .stdout(Stdio::piped())
            .stderr(fs::File::create(env.work.join("service.log"))?)
            .spawn()
            .context("starting keywarden-server")?;
        let stdout = child.stdout.take().unwrap();
        let mut url = None;
        for line in BufReader::new(stdout).lines() {
            if let Some(u) = line?.strip_prefix("listening on ") {
                url = Some(u.trim().to_owned());
                break;
            }
        }
        let url = url.ok_or_else(|| anyhow!("keywarden-server printed no address"))?;
        let token = fs::read_to_string(&token_file)?.trim().to_owned();
        Ok(Service {
            child,
            url,
            token,
            http: reqwest::blocking::Client::new(),
        })
    }

    pub(crate) fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send()?;
        let status = resp.status();
        let text = resp.text()?;
        ensure!(status.is_success(), "{path}: {status} {text}");
        Ok(serde_json::from_str(&text)?)
    }

    pub(crate) fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.admin(reqwest::Method::POST, path, Some(body))
    }

    pub(crate) fn secret(&self, path: &str, body: Value) -> Result<String> {
        let v = self.post(path, body)?;
        Ok(v["secret"]
            .as_str()
            .ok_or_else(|| anyhow!("no secret in {v}"))?
            .to_owned())
    }

    pub(crate) fn credentials_of(&self, person: &str) -> Result<Vec<Value>> {
        let all = self.admin(reqwest::Method::GET, "/api/v1/admin/credentials", None)?;
        Ok(all
            .as_array()
            .ok_or_else(|| anyhow!("credentials list is not an array"))?
            .iter()
            .filter(|c| c["person_id"] == person)
            .cloned()
            .collect())
    }

    /// Trust the attestation root of the soft key (test/demo) `key_name`, as an admin would
    /// for a test (its state file holds the root): the service trusts no root by default.
    pub(crate) fn trust_root_of(&self, env: &Env, key_name: &str) -> Result<()> {
        let state: Value =
            serde_json::from_slice(&fs::read(env.work.join(format!("{key_name}.json")))?)?;
        let pem = state["attestation"]["ca_cert_pem"]
            .as_str()
            .ok_or_else(|| anyhow!("{key_name}: no attestation root in its state file"))?;
        self.post(
            "/api/v1/admin/trust-anchors",
            serde_json::json!({"pem": pem, "label": format!("software key (test/demo) root: {key_name}")}),
        )?;
        Ok(())
    }

    /// A person HR provisions over SCIM in `department`, which is first made the population
    /// `population` (priority `priority`) with `policy`.
    pub(crate) fn person_in_population(
        &self,
        user_name: &str,
        population: &str,
        department: &str,
        priority: i64,
        policy: Value,
    ) -> Result<String> {
        self.admin(
            reqwest::Method::PUT,
            &format!("/api/v1/admin/populations/{population}"),
            Some(serde_json::json!({"priority": priority,
                "selector": {"kind": "attribute", "key": "department", "value": department},
                "policy": policy})),
        )?;
        self.hr_person(user_name, department)
    }

    /// A person HR provisions over SCIM in `department`.
    pub(crate) fn hr_person(&self, user_name: &str, department: &str) -> Result<String> {
        let scim = self.post(
            "/api/v1/admin/tokens",
            serde_json::json!({"role": "scim", "label": "HR feed"}),
        )?;
        let token = scim["token"]
            .as_str()
            .ok_or_else(|| anyhow!("no SCIM token: {scim}"))?;
        let resp = self
            .http
            .post(format!("{}/scim/v2/Users", self.url))
            .bearer_auth(token)
            .header("content-type", "application/scim+json")
            .body(
                serde_json::json!({"userName": user_name, "displayName": user_name,
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": department}})
                .to_string(),
            )
            .send()?;
        let status = resp.status();
        let v: Value = serde_json::from_str(&resp.text()?)?;
        ensure!(status.is_success(), "SCIM create {user_name}: {status} {v}");
        Ok(v["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no person id: {v}"))?
            .to_owned())
    }

    pub(crate) fn person(&self, user_name: &str) -> Result<String> {
        let v = self.post(
            "/api/v1/admin/people",
            serde_json::json!({"user_name": user_name, "display_name": user_name}),
        )?;
        Ok(v["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no person id"))?
            .to_owned())
    }

    pub(crate) fn ticket(&self, person: &str) -> Result<String> {
        self.secret(
            "/api/v1/admin/enrolment-tickets",
            serde_json::json!({"person_id": person}),
        )
    }
}
