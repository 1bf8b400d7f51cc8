//! `keywarden-app`: the Keywarden desktop app.
//!
//! A thin Tauri shell over `keywarden-agent` (which has no Tauri dependency and is tested
//! without a window). Each wizard step is one command carrying what the person typed; the
//! enrolment session itself is the agent's [`Session`], kept in managed state. Errors reach the
//! UI as `{code, message, retries_left}` ([`UiError`]). Blocking agent calls (keys, network) run
//! on Tauri's blocking pool with an `Arc<Agent>`. "Lost a key?" (`lost_*`), recovery
//! (`recovery_begin`, which hands its session to the wizard), "Add a key" (`add_key_begin`,
//! likewise) and the reclaim station
//! (`reclaim_run`) are thin commands over `agent::stepup` and `agent::reclaim`. After a key,
//! "Add this laptop or your phone" (`open_web_enrolment`) opens the service's one-time link
//! for the session in the default browser (`open` crate); the link never reaches the web view.
//!
//! This process is the window only. The tray icon and the background check-in live in
//! `keywarden-tray` (crates/tray), a small process without GTK or a web view: the window
//! starts it when it is not running yet, and closing the window ends this process, web view
//! and all. `keywarden-app --tray` (the old autostart command) hands over to `keywarden-tray`.
//! The window and the tray share the keys through `agent::locks::KeyLock`: while a wizard step
//! holds a key the tray leaves the keys alone.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keywarden_agent::checkin::{KeyWatcher, Trigger};
use keywarden_agent::config::Paths;
use keywarden_agent::enrol::{Session, StepPrompts};
use keywarden_agent::locks::{BackgroundLock, KeyLock};
use keywarden_agent::Agent;
use keywarden_protocol::{
    AppStatus, CheckinStatus, CredentialView, ErrorCode, KeyCredential, KeyInfo, KeyInventory,
    Posture, ReclaimedKey, SignInResponse, UiError, WizardSession,
};
use tauri::{Emitter as _, Manager as _};

struct AppState {
    agent: Arc<Agent>,
    soft_keys_enabled: bool,
    /// The enrolment session the wizard is in.
    session: Arc<Mutex<Option<Session>>>,
    /// A ticket that arrived in a `keywarden://enrol?ticket=` link (never sent to the web view).
    link_ticket: Mutex<Option<String>>,
    /// True while the wizard holds a key; the window's key watcher leaves the keys alone.
    busy: Arc<AtomicBool>,
    /// Held while a step talks to a key, so the tray process leaves the keys alone meanwhile.
    key_lock: Arc<KeyLock>,
    /// "Lost a key?": the key and PIN the person signed in with, kept in this process (never
    /// sent back to the web view) so that confirming the lost key takes only a second touch.
    /// Forgotten once the lost key is reported, on a PIN error, or when they sign out.
    signed_in: Arc<Mutex<Option<SignedIn>>>,
}

struct SignedIn {
    key_id: String,
    pin: String,
}

fn internal(e: impl std::fmt::Display) -> UiError {
    UiError {
        code: ErrorCode::AgentError,
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

fn needs_input(message: &str) -> UiError {
    UiError {
        code: ErrorCode::NeedsInput,
        message: message.into(),
        retries_left: None,
    }
}

/// What a wizard step says when there is no enrolment session yet.
fn no_session() -> keywarden_agent::Error {
    keywarden_agent::Error::NeedsInput("Start with your enrolment ticket.".into())
}

/// Make `session` the wizard's (in place of any other) and what the window shows of it.
fn start_session(state: &AppState, session: Session) -> Result<WizardSession, UiError> {
    let view = session.view();
    *state.session.lock().map_err(internal)? = Some(session);
    Ok(view)
}

/// Run a blocking agent call that talks to keys, holding the key lock (the tray leaves the keys
/// alone).
async fn holding_keys<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Agent) -> keywarden_agent::Result<T> + Send + 'static,
) -> Result<T, UiError> {
    let agent = state.agent.clone();
    let lock = state.key_lock.clone();
    blocking(move || {
        let _keys = lock.acquire();
        f(&agent)
    })
    .await
}

/// [`holding_keys`] for a call that waits on a key (a touch, a PIN check): the window's key
/// watcher pauses meanwhile.
async fn with_keys<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Agent) -> keywarden_agent::Result<T> + Send + 'static,
) -> Result<T, UiError> {
    let busy = state.busy.clone();
    holding_keys(state, move |agent| {
        busy.store(true, Ordering::SeqCst);
        let result = f(agent);
        busy.store(false, Ordering::SeqCst);
        result
    })
    .await
}

/// Open the wizard's enrolment session with a key call ([`with_keys`]), e.g. a step-up.
async fn open_with_keys(
    state: &AppState,
    f: impl FnOnce(&Agent) -> keywarden_agent::Result<Session> + Send + 'static,
) -> Result<WizardSession, UiError> {
    let session = with_keys(state, f).await?;
    start_session(state, session)
}

/// Tells the window when a key waits for a touch (`wizard-touch`, with the key's label).
fn touch_prompt(app: tauri::AppHandle) -> StepPrompts {
    pin_prompts(app, None, None)
}

/// [`touch_prompt`] that also answers the key's PIN questions with `pin` and `new_pin`.
fn pin_prompts(app: tauri::AppHandle, pin: Option<String>, new_pin: Option<String>) -> StepPrompts {
    StepPrompts::new(
        pin,
        new_pin,
        Box::new(move |k| {
            let _ = app.emit("wizard-touch", k.label.clone());
        }),
    )
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
    holding_keys(&state, move |agent| {
        agent.key_credentials(&key_id, &rp_id, &pin)
    })
    .await
}

/// Change a key's PIN from the key list: the current PIN and the new one, as typed. A wrong
/// current PIN comes back with the attempts left; the key is the agent's to check.
#[tauri::command]
async fn key_change_pin(
    app: tauri::AppHandle,
    state: tauri::State<'_, AppState>,
    key_id: String,
    pin: String,
    new_pin: String,
) -> Result<KeyInfo, UiError> {
    with_keys(&state, move |agent| {
        let prompts = pin_prompts(app, Some(pin), Some(new_pin.clone()));
        let info = agent.change_key_pin(&key_id, &prompts)?;
        // A key IT issued is activated now that its PIN is the person's; the change itself
        // stands whatever the service says (activation can be done again with the CLI).
        if let Err(e) =
            keywarden_agent::issuing::activate_if_issued(agent, &key_id, &new_pin, &prompts)
        {
            eprintln!("keywarden-app: the key's PIN changed, but it was not activated: {e}");
        }
        Ok(info)
    })
    .await
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
            .ok_or_else(|| needs_input("Paste the enrolment ticket IT sent you."))?,
    };
    let agent = state.agent.clone();
    let session = blocking(move || Session::open(&agent, &ticket)).await?;
    start_session(&state, session)
}

#[tauri::command]
async fn wizard_wink(state: tauri::State<'_, AppState>, key_id: String) -> Result<(), UiError> {
    holding_keys(&state, move |agent| agent.wink(&key_id)).await
}

#[tauri::command]
async fn wizard_select_by_touch(
    app: tauri::AppHandle,
    state: tauri::State<'_, AppState>,
    key_ids: Vec<String>,
) -> Result<String, UiError> {
    let prompt: Arc<dyn keywarden_agent::keys::Prompt> = Arc::new(touch_prompt(app));
    with_keys(&state, move |agent| agent.select_by_touch(&key_ids, prompt)).await
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
    let lock = state.key_lock.clone();
    blocking(move || {
        let _keys = lock.acquire();
        let mut guard = slot.lock().map_err(|_| keywarden_agent::Error::Cancelled)?;
        let session = guard.as_mut().ok_or_else(no_session)?;
        let prompts = pin_prompts(app, pin, new_pin);
        busy.store(true, Ordering::SeqCst);
        let result = session.enrol(&agent, Some(&key_id), &prompts);
        busy.store(false, Ordering::SeqCst);
        result.map(|_| session.view())
    })
    .await
}

/// "Add this laptop or your phone": the service's one-time link into the self-service page for
/// the wizard's session, opened in the person's default browser, where they add a laptop or
/// phone passkey. The app never sees that passkey, and the link (a secret) never reaches the
/// web view: only when it stops working (unix ms) does.
#[tauri::command]
async fn open_web_enrolment(state: tauri::State<'_, AppState>) -> Result<i64, UiError> {
    let agent = state.agent.clone();
    let slot = state.session.clone();
    blocking(move || {
        // A copy, so that the session is not held while the service answers.
        let session = slot
            .lock()
            .map_err(|_| keywarden_agent::Error::Cancelled)?
            .clone()
            .ok_or_else(no_session)?;
        session.open_web_link(&agent, &open_in_browser)
    })
    .await
}

/// The person's default browser (xdg-open and its fallbacks on Linux), started detached so it
/// outlives the window.
fn open_in_browser(url: &str) -> std::io::Result<()> {
    open::that_detached(url)
}

/// "Lost a key?": sign in with a key the person still has (PIN and touch); who they are and
/// their keys as the service knows them.
#[tauri::command]
async fn lost_sign_in(
    app: tauri::AppHandle,
    state: tauri::State<'_, AppState>,
    key_id: String,
    pin: String,
) -> Result<SignInResponse, UiError> {
    if pin.is_empty() {
        return Err(needs_input("Type the PIN of the key you still have."));
    }
    *state.signed_in.lock().map_err(internal)? = None;
    let slot = state.signed_in.clone();
    with_keys(&state, move |agent| {
        let who = keywarden_agent::stepup::sign_in(agent, &key_id, &pin, &touch_prompt(app))?;
        if let Ok(mut s) = slot.lock() {
            *s = Some(SignedIn { key_id, pin });
        }
        Ok(who)
    })
    .await
}

/// "Lost a key?": report `credential_id` lost, confirmed by a second touch of the key the person
/// signed in with (a fresh challenge from the service). The credential is suspended at once.
#[tauri::command]
async fn lost_report(
    app: tauri::AppHandle,
    state: tauri::State<'_, AppState>,
    credential_id: String,
    reason: Option<String>,
) -> Result<CredentialView, UiError> {
    let (key_id, pin) = state
        .signed_in
        .lock()
        .map_err(internal)?
        .as_ref()
        .map(|s| (s.key_id.clone(), s.pin.clone()))
        .ok_or_else(|| needs_input("Sign in with a key you still have first."))?;
    let reason = reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    let result = with_keys(&state, move |agent| {
        keywarden_agent::stepup::report_lost(
            agent,
            &credential_id,
            &key_id,
            &pin,
            reason.as_deref(),
            &touch_prompt(app),
        )
    })
    .await;
    // The PIN is forgotten once it served its purpose, or when the key no longer takes it.
    if result.is_ok() || result.as_ref().is_err_and(|e| e.code.is_about_pin()) {
        *state.signed_in.lock().map_err(internal)? = None;
    }
    result
}

#[tauri::command]
fn lost_sign_out(state: tauri::State<'_, AppState>) -> Result<(), UiError> {
    *state.signed_in.lock().map_err(internal)? = None;
    Ok(())
}

/// Redeem a recovery ticket with a fresh sign-in by a key the person still has (`key_id` and
/// `pin`; both absent when the help desk had two approvers agree because no key is left). The
/// enrolment session it opens is the wizard's: the replacement is enrolled with `wizard_enrol`.
#[tauri::command]
async fn recovery_begin(
    app: tauri::AppHandle,
    state: tauri::State<'_, AppState>,
    ticket: String,
    key_id: Option<String>,
    pin: Option<String>,
) -> Result<WizardSession, UiError> {
    let ticket = ticket.trim().to_owned();
    if ticket.is_empty() {
        return Err(needs_input(
            "Paste the recovery ticket the help desk gave you.",
        ));
    }
    let key = match (key_id, pin.filter(|p| !p.is_empty())) {
        (Some(k), Some(p)) => Some((k, p)),
        (Some(_), None) => return Err(needs_input("Type the PIN of the key you still have.")),
        (None, _) => None,
    };
    open_with_keys(&state, move |agent| {
        keywarden_agent::stepup::recover(
            agent,
            &ticket,
            key.as_ref().map(|(k, p)| (k.as_str(), p.as_str())),
            &touch_prompt(app),
        )
    })
    .await
}

/// "Add a key": a person who already has a key proves it is them with it (`key_id` and `pin`,
/// a fresh challenge and a touch), which opens an enrolment session without a ticket. The
/// session is the wizard's: the new key is enrolled with `wizard_enrol`.
#[tauri::command]
async fn add_key_begin(
    app: tauri::AppHandle,
    state: tauri::State<'_, AppState>,
    key_id: String,
    pin: String,
) -> Result<WizardSession, UiError> {
    if pin.is_empty() {
        return Err(needs_input("Type the PIN of the key you already have."));
    }
    open_with_keys(&state, move |agent| {
        keywarden_agent::stepup::add_key(agent, &key_id, &pin, &touch_prompt(app))
    })
    .await
}

/// IT reclaim station: wipe the keys plugged in that belong to people who left, check them, send
/// the receipts; what was done to each key. `pin` is for a personal key.
#[tauri::command]
async fn reclaim_run(
    app: tauri::AppHandle,
    state: tauri::State<'_, AppState>,
    pin: Option<String>,
) -> Result<Vec<ReclaimedKey>, UiError> {
    let pin = pin.filter(|p| !p.is_empty());
    with_keys(&state, move |agent| {
        let done = keywarden_agent::reclaim::run(agent, pin.as_deref(), &touch_prompt(app))?;
        Ok(done.into_iter().map(ReclaimedKey::from).collect())
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

/// `keywarden-tray` beside this binary, else from PATH.
fn tray_binary() -> PathBuf {
    keywarden_agent::sibling_binary("keywarden-tray")
}

/// `--tray`: become `keywarden-tray` (no GTK, no web view), before anything else is loaded.
fn hand_over_to_tray() -> std::process::ExitCode {
    use std::os::unix::process::CommandExt as _;
    let tray = tray_binary();
    let e = std::process::Command::new(&tray).exec();
    eprintln!("keywarden-app: cannot start {}: {e}", tray.display());
    std::process::ExitCode::FAILURE
}

/// Start the tray (and with it the background check-in) unless it, or `keywarden run`, is
/// already running for this person. It stays when the window closes.
fn ensure_tray(paths: &Paths) {
    match BackgroundLock::is_taken(paths) {
        Ok(true) => {}
        Ok(false) => {
            let tray = tray_binary();
            match std::process::Command::new(&tray)
                .stdin(std::process::Stdio::null())
                .spawn()
            {
                // Reap it, should it end while the window is open.
                Ok(mut child) => {
                    let _ = std::thread::Builder::new()
                        .name("tray".into())
                        .spawn(move || child.wait());
                }
                Err(e) => eprintln!(
                    "keywarden-app: cannot start the tray ({}): {e}; there is no background \
                     check-in until it runs",
                    tray.display()
                ),
            }
        }
        Err(e) => eprintln!("keywarden-app: cannot tell whether the tray runs: {e}"),
    }
}

/// Keeps the window current while it is open: emits `checkin` when the check-in record or
/// the outbox changes (the tray checks in in the background) and `keys-changed` when keys are
/// plugged in or out. Touches no key while the wizard holds one.
fn watch(app: tauri::AppHandle, agent: Arc<Agent>, busy: Arc<AtomicBool>) {
    let mut keys = KeyWatcher::default();
    let mut last = agent.checkin_status().ok();
    loop {
        std::thread::sleep(Duration::from_secs(2));
        if let Ok(status) = agent.checkin_status() {
            if last.as_ref() != Some(&status) {
                let _ = app.emit("checkin", &status);
                last = Some(status);
            }
        }
        if !busy.load(Ordering::SeqCst) {
            if let Ok(list) = agent.keys() {
                let change = keys.update(list.into_iter().map(|k| k.id));
                if !change.added.is_empty() || !change.removed.is_empty() {
                    let _ = app.emit("keys-changed", ());
                }
            }
        }
    }
}

fn main() -> std::process::ExitCode {
    if std::env::args().skip(1).any(|a| a == "--tray") {
        return hand_over_to_tray();
    }
    if !has_display() {
        eprintln!(
            "keywarden-app: no display found (DISPLAY and WAYLAND_DISPLAY are unset). \
             The desktop app needs a graphical session; for headless use run the `keywarden` CLI \
             (keywarden keys, keywarden report, keywarden enrol, keywarden run)."
        );
        return std::process::ExitCode::from(2);
    }
    let fail = |e: &dyn std::fmt::Display| keywarden_agent::exit_failure("keywarden-app", e);
    let (paths, managed) = match keywarden_agent::local_setup(None) {
        Ok(setup) => setup,
        Err(e) => return fail(&e),
    };
    let key_lock = KeyLock::new(&paths);
    // Software keys (test/demo only) are used only when named explicitly.
    let keys = keywarden_agent::keyring::assemble(keywarden_agent::keyring::KeySources {
        lock: Some(key_lock.clone()),
        ..Default::default()
    });
    let soft_keys_enabled = !keys.soft_keys.is_empty();
    let keyring = keys.keyring;
    // `keywarden-app keywarden://enrol?ticket=...` (what a URL handler passes) pre-fills the
    // wizard's ticket.
    let link_ticket = std::env::args()
        .skip(1)
        .find_map(|a| keywarden_agent::enrol::ticket_from_link(&a));
    ensure_tray(&paths);
    let agent = Arc::new(Agent::new(paths, keyring).with_managed(managed));
    let busy = Arc::new(AtomicBool::new(false));
    let state = AppState {
        agent: agent.clone(),
        soft_keys_enabled,
        session: Arc::new(Mutex::new(None)),
        link_ticket: Mutex::new(link_ticket),
        busy: busy.clone(),
        key_lock,
        signed_in: Arc::new(Mutex::new(None)),
    };
    let app = tauri::Builder::default()
        .manage(state)
        .setup(move |app| {
            open_window(app.handle());
            let handle = app.handle().clone();
            std::thread::Builder::new()
                .name("watch".into())
                .spawn(move || watch(handle, agent, busy))?;
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            app_status,
            inventory,
            posture,
            check_in_now,
            key_credentials,
            key_change_pin,
            wizard_begin,
            wizard_wink,
            wizard_select_by_touch,
            wizard_enrol,
            wizard_cancel,
            open_web_enrolment,
            lost_sign_in,
            lost_report,
            lost_sign_out,
            recovery_begin,
            add_key_begin,
            reclaim_run,
            painted,
        ])
        .build(tauri::generate_context!());
    let app = match app {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    // Closing the window ends the process (and its web view); the tray keeps checking in.
    app.run(|_app, _event| {});
    std::process::ExitCode::SUCCESS
}
