//! `keywarden-app`: the Keywarden desktop app.
//!
//! A thin Tauri shell over `keywarden-agent` (which has no Tauri dependency and is tested
//! without a window). Each wizard step is one command carrying what the person typed; the
//! enrolment session itself is the agent's [`Session`], kept in managed state. Errors reach the
//! UI as `{code, message, retries_left}` ([`UiError`]). Blocking agent calls (keys, network) run
//! on Tauri's blocking pool with an `Arc<Agent>`.
//!
//! The app lives in the tray: closing the window destroys it (no webview is kept alive), the
//! background check-in keeps running, and the tray menu opens a fresh window, checks in now,
//! or quits.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keywarden_agent::checkin::{self, Control, Trigger};
use keywarden_agent::config::Paths;
use keywarden_agent::enrol::{Session, StepPrompts};
use keywarden_agent::keys::Keyring;
use keywarden_agent::managed::ManagedConfig;
use keywarden_agent::Agent;
use keywarden_protocol::{
    AppStatus, CheckinStatus, KeyCredential, KeyInventory, Posture, UiError, WizardSession,
};
use tauri::{Emitter as _, Manager as _};

struct AppState {
    agent: Arc<Agent>,
    soft_keys_enabled: bool,
    /// The enrolment session the wizard is in.
    session: Arc<Mutex<Option<Session>>>,
    /// A ticket that arrived in a `keywarden://enrol?ticket=` link (never sent to the web view).
    link_ticket: Mutex<Option<String>>,
    /// True while the wizard holds a key; the background loop leaves the keys alone.
    busy: Arc<AtomicBool>,
    control: Mutex<Sender<Control>>,
}

fn internal(e: impl std::fmt::Display) -> UiError {
    UiError {
        code: "agent_error".into(),
        message: e.to_string(),
        retries_left: None,
    }
}

/// Run a blocking agent call off the UI thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> keywarden_agent::Result<T> + Send + 'static,
) -> Result<T, UiError> {
    tauri::async_runtime::spawn_blocking(f)
        .await
        .map_err(internal)?
        .map_err(|e| e.to_ui())
}

#[tauri::command]
fn app_status(state: tauri::State<'_, AppState>) -> Result<AppStatus, UiError> {
    let agent = &state.agent;
    let cfg = agent.config_if_any().map_err(|e| e.to_ui())?;
    let managed = agent.managed();
    Ok(AppStatus {
        version: keywarden_agent::AGENT_VERSION.to_owned(),
        provisioned: cfg.is_some(),
        server_url: cfg
            .as_ref()
            .map(|c| c.server_url.clone())
            .or_else(|| managed.and_then(|m| m.server_url.clone())),
        server_locked: managed.and_then(|m| m.locked_server()).is_some(),
        managed_config: managed.map(|m| m.source.display().to_string()),
        device_id: cfg.map(|c| c.device_id),
        soft_keys_enabled: state.soft_keys_enabled,
        checkin: agent.checkin_status().map_err(|e| e.to_ui())?,
        ticket_from_link: state.link_ticket.lock().map_err(internal)?.is_some(),
    })
}

#[tauri::command]
async fn inventory(state: tauri::State<'_, AppState>) -> Result<KeyInventory, UiError> {
    let agent = state.agent.clone();
    blocking(move || agent.inventory()).await
}

#[tauri::command]
fn posture() -> Posture {
    keywarden_posture::collect(keywarden_agent::now_ms())
}

#[tauri::command]
async fn check_in_now(state: tauri::State<'_, AppState>) -> Result<CheckinStatus, UiError> {
    let agent = state.agent.clone();
    blocking(move || agent.check_in(Trigger::Manual)).await
}

#[tauri::command]
async fn key_credentials(
    state: tauri::State<'_, AppState>,
    key_id: String,
    rp_id: String,
    pin: String,
) -> Result<Vec<KeyCredential>, UiError> {
    let agent = state.agent.clone();
    blocking(move || agent.key_credentials(&key_id, &rp_id, &pin)).await
}

#[tauri::command]
async fn wizard_begin(
    state: tauri::State<'_, AppState>,
    ticket: Option<String>,
) -> Result<WizardSession, UiError> {
    let ticket = match ticket.filter(|t| !t.trim().is_empty()) {
        Some(t) => t,
        None => state
            .link_ticket
            .lock()
            .map_err(internal)?
            .take()
            .ok_or_else(|| UiError {
                code: "needs_input".into(),
                message: "Paste the enrolment ticket IT sent you.".into(),
                retries_left: None,
            })?,
    };
    let agent = state.agent.clone();
    let session = blocking(move || Session::open(&agent, &ticket)).await?;
    let view = session.view();
    *state.session.lock().map_err(internal)? = Some(session);
    Ok(view)
}

#[tauri::command]
async fn wizard_wink(state: tauri::State<'_, AppState>, key_id: String) -> Result<(), UiError> {
    let agent = state.agent.clone();
    blocking(move || agent.wink(&key_id)).await
}

#[tauri::command]
async fn wizard_select_by_touch(
    app: tauri::AppHandle,
    state: tauri::State<'_, AppState>,
    key_ids: Vec<String>,
) -> Result<String, UiError> {
    let agent = state.agent.clone();
    let prompt: Arc<dyn keywarden_agent::keys::Prompt> = Arc::new(StepPrompts::new(
        None,
        None,
        Box::new(move |k| {
            let _ = app.emit("wizard-touch", k.label.clone());
        }),
    ));
    blocking(move || agent.select_by_touch(&key_ids, prompt)).await
}

#[tauri::command]
async fn wizard_enrol(
    app: tauri::AppHandle,
    state: tauri::State<'_, AppState>,
    key_id: String,
    pin: Option<String>,
    new_pin: Option<String>,
) -> Result<WizardSession, UiError> {
    let agent = state.agent.clone();
    let slot = state.session.clone();
    let busy = state.busy.clone();
    blocking(move || {
        let mut guard = slot.lock().map_err(|_| keywarden_agent::Error::Cancelled)?;
        let session = guard.as_mut().ok_or_else(|| {
            keywarden_agent::Error::NeedsInput("Start with your enrolment ticket.".into())
        })?;
        let prompts = StepPrompts::new(
            pin,
            new_pin,
            Box::new(move |k| {
                let _ = app.emit("wizard-touch", k.label.clone());
            }),
        );
        busy.store(true, Ordering::SeqCst);
        let result = session.enrol(&agent, Some(&key_id), &prompts);
        busy.store(false, Ordering::SeqCst);
        result.map(|_| session.view())
    })
    .await
}

/// The web view calls this once it has painted its first frame. With `KEYWARDEN_BENCH_PAINT`
/// set (the benchmark script), the moment goes to stderr as unix milliseconds.
#[tauri::command]
fn painted() {
    if std::env::var_os("KEYWARDEN_BENCH_PAINT").is_some() {
        eprintln!("first-paint-unix-ms {}", keywarden_agent::now_ms());
    }
}

#[tauri::command]
fn wizard_cancel(state: tauri::State<'_, AppState>) -> Result<(), UiError> {
    // Nothing is bound until the service verified a credential; an open ceremony simply
    // expires on the service.
    *state.session.lock().map_err(internal)? = None;
    Ok(())
}

fn has_display() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

fn open_window(app: &tauri::AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.set_focus();
        return;
    }
    // The window described in tauri.conf.json (not created at start-up by Tauri itself).
    let built = match app.config().app.windows.iter().find(|w| w.label == "main") {
        Some(conf) => tauri::WebviewWindowBuilder::from_config(app, conf).and_then(|b| b.build()),
        None => tauri::WebviewWindowBuilder::new(app, "main", tauri::WebviewUrl::default())
            .title("Keywarden")
            .build(),
    };
    if let Err(e) = built {
        eprintln!("keywarden-app: cannot open the window: {e}");
    }
}

fn tray(app: &tauri::App) -> tauri::Result<()> {
    use tauri::menu::{Menu, MenuItem};
    let open = MenuItem::with_id(app, "open", "Open Keywarden", true, None::<&str>)?;
    let check = MenuItem::with_id(app, "checkin", "Check in now", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&open, &check, &quit])?;
    let mut builder = tauri::tray::TrayIconBuilder::with_id("keywarden")
        .tooltip("Keywarden")
        .menu(&menu)
        .on_menu_event(|app, event| match event.id.as_ref() {
            "open" => open_window(app),
            "checkin" => {
                if let Ok(tx) = app.state::<AppState>().control.lock() {
                    let _ = tx.send(Control::CheckInNow);
                }
            }
            "quit" => {
                QUITTING.store(true, Ordering::SeqCst);
                app.exit(0);
            }
            _ => {}
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)?;
    Ok(())
}

static QUITTING: AtomicBool = AtomicBool::new(false);

fn main() -> std::process::ExitCode {
    if !has_display() {
        eprintln!(
            "keywarden-app: no display found (DISPLAY and WAYLAND_DISPLAY are unset). \
             The desktop app needs a graphical session; for headless use run the `keywarden` CLI \
             (keywarden keys, keywarden report, keywarden enrol, keywarden run)."
        );
        return std::process::ExitCode::from(2);
    }
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("keywarden-app: error: {e}");
        std::process::ExitCode::FAILURE
    };
    let paths = match Paths::resolve(None) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let managed = match ManagedConfig::load(&ManagedConfig::default_path()) {
        Ok(m) => m,
        Err(e) => return fail(&e),
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
    // `keywarden-app keywarden://enrol?ticket=...` (what a URL handler passes) pre-fills the
    // wizard's ticket.
    let link_ticket = std::env::args()
        .skip(1)
        .find_map(|a| keywarden_agent::enrol::ticket_from_link(&a));
    let agent = Arc::new(Agent::new(paths, keyring).with_managed(managed));
    let (tx, rx) = std::sync::mpsc::channel();
    let busy = Arc::new(AtomicBool::new(false));
    let state = AppState {
        agent: agent.clone(),
        soft_keys_enabled,
        session: Arc::new(Mutex::new(None)),
        link_ticket: Mutex::new(link_ticket),
        busy: busy.clone(),
        control: Mutex::new(tx),
    };
    // `--tray` (autostart at login) starts in the tray with no window and no web view.
    let start_in_tray = std::env::args().skip(1).any(|a| a == "--tray");
    let tray_ok = Arc::new(AtomicBool::new(false));
    let tray_flag = tray_ok.clone();
    let app = tauri::Builder::default()
        .manage(state)
        .setup(move |app| {
            match tray(app) {
                Ok(()) => tray_flag.store(true, Ordering::SeqCst),
                Err(e) => eprintln!("keywarden-app: no tray icon ({e}); closing the window quits"),
            }
            if !start_in_tray || !tray_flag.load(Ordering::SeqCst) {
                open_window(app.handle());
            }
            let handle = app.handle().clone();
            std::thread::Builder::new()
                .name("checkin".into())
                .spawn(move || {
                    checkin::run(
                        &agent,
                        Duration::from_secs(2),
                        &rx,
                        &|| busy.load(Ordering::SeqCst),
                        &|event| {
                            if let checkin::Event::CheckedIn(status) = event {
                                let _ = handle.emit("checkin", status);
                            } else {
                                let _ = handle.emit("keys-changed", ());
                            }
                        },
                    )
                })?;
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            app_status,
            inventory,
            posture,
            check_in_now,
            key_credentials,
            wizard_begin,
            wizard_wink,
            wizard_select_by_touch,
            wizard_enrol,
            wizard_cancel,
            painted,
        ])
        .build(tauri::generate_context!());
    let app = match app {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    app.run(move |_app, event| {
        // With the tray, closing the last window leaves the app (and its check-in) running
        // without any webview; Quit in the tray menu ends it.
        if let tauri::RunEvent::ExitRequested {
            code: None, api, ..
        } = event
        {
            if tray_ok.load(Ordering::SeqCst) && !QUITTING.load(Ordering::SeqCst) {
                api.prevent_exit();
            }
        }
    });
    std::process::ExitCode::SUCCESS
}
