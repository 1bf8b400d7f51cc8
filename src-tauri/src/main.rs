//! `keywarden-app`: the Keywarden desktop app.
//!
//! A thin Tauri shell: every command below calls into `keywarden-agent` (which has no Tauri
//! dependency and is tested without a window) and turns its errors into `{code, message}` for
//! the UI. Blocking agent calls (keys, network) run on Tauri's blocking pool.
#![forbid(unsafe_code)]

use keywarden_agent::config::{Config, Paths};
use keywarden_agent::keys::{KeyInfo, Keyring};
use keywarden_agent::Agent;
use keywarden_protocol::Posture;
use serde::Serialize;

/// An error as the UI receives it: a stable code it can act on and a sentence to show.
#[derive(Debug, Serialize)]
struct UiError {
    code: &'static str,
    message: String,
}

impl From<keywarden_agent::Error> for UiError {
    fn from(e: keywarden_agent::Error) -> Self {
        use keywarden_agent::Error as E;
        let code = match &e {
            E::NotProvisioned => "not_provisioned",
            E::Unreachable { .. } => "service_unreachable",
            E::Service { .. } => "service_refused",
            E::Key(_) => "key_error",
            E::NoKey { .. } => "no_key",
            E::Cancelled => "cancelled",
            _ => "agent_error",
        };
        UiError {
            code,
            message: e.to_string(),
        }
    }
}

/// What the app shows in its header.
#[derive(Debug, Serialize)]
struct AppStatus {
    version: &'static str,
    provisioned: bool,
    server_url: Option<String>,
    device_id: Option<String>,
    outbox_pending: usize,
    soft_keys_enabled: bool,
}

struct AppState {
    agent: std::sync::Arc<Agent>,
    soft_keys_enabled: bool,
}

#[tauri::command]
fn app_status(state: tauri::State<'_, AppState>) -> Result<AppStatus, UiError> {
    let cfg = Config::load(state.agent.paths())?;
    Ok(AppStatus {
        version: keywarden_agent::AGENT_VERSION,
        provisioned: cfg.is_some(),
        server_url: cfg.as_ref().map(|c| c.server_url.clone()),
        device_id: cfg.map(|c| c.device_id),
        outbox_pending: state.agent.outbox().len()?,
        soft_keys_enabled: state.soft_keys_enabled,
    })
}

#[tauri::command]
async fn list_keys(state: tauri::State<'_, AppState>) -> Result<Vec<KeyInfo>, UiError> {
    // Key enumeration blocks on USB HID; keep it off the UI thread.
    let agent = state.agent.clone();
    tauri::async_runtime::spawn_blocking(move || agent.keys())
        .await
        .map_err(|e| UiError {
            code: "agent_error",
            message: e.to_string(),
        })?
        .map_err(UiError::from)
}

#[tauri::command]
fn posture() -> Posture {
    keywarden_posture::collect(keywarden_agent::now_ms())
}

fn has_display() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

fn main() -> std::process::ExitCode {
    if !has_display() {
        eprintln!(
            "keywarden-app: no display found (DISPLAY and WAYLAND_DISPLAY are unset). \
             The desktop app needs a graphical session; for headless use run the `keywarden` CLI \
             (keywarden keys, keywarden report, keywarden enrol)."
        );
        return std::process::ExitCode::from(2);
    }
    let paths = match Paths::resolve(None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("keywarden-app: error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut keyring =
        Keyring::new().with(Box::new(keywarden_agent::keys::hid::HidKeyProvider::new()));
    // Software keys (test/demo only) are used only when named explicitly.
    let soft: Vec<std::path::PathBuf> = std::env::var_os("KEYWARDEN_SOFT_KEYS")
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let soft_keys_enabled = !soft.is_empty();
    if soft_keys_enabled {
        keyring = keyring.with(Box::new(keywarden_agent::keys::soft::SoftKeyProvider::new(
            soft,
        )));
    }
    let state = AppState {
        agent: std::sync::Arc::new(Agent::new(paths, keyring)),
        soft_keys_enabled,
    };
    let result = tauri::Builder::default()
        .manage(state)
        .invoke_handler(tauri::generate_handler![app_status, list_keys, posture])
        .run(tauri::generate_context!());
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keywarden-app: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
