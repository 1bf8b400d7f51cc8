//! `keywarden-tray`: the Keywarden agent in the tray.
//!
//! A small process that runs the background check-in (the agent's `checkin::run`: on the
//! schedule, when a key is plugged in, on request) and shows a StatusNotifierItem tray icon over
//! D-Bus (`ksni`, pure Rust): no GTK, no libappindicator and no web view, so it stays small for
//! the whole session. Its menu says how the last check-in went, how many reports wait in the
//! outbox and which keys are plugged in, and offers Open Keywarden (starts the window process,
//! `keywarden-app`), Check in now and Quit.
//!
//! Only one background check-in runs per person (`agent::locks::BackgroundLock`): a second
//! `keywarden-tray`, or `keywarden run`, finds it taken and does not start. Without a D-Bus
//! session bus, or before the desktop's tray (a StatusNotifierWatcher) is there, it says so on
//! stderr and keeps checking in; the icon appears when a tray does.
#![forbid(unsafe_code)]

mod summary;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use keywarden_agent::checkin::{self, Control, Event};
use keywarden_agent::keys::Keyring;
use keywarden_agent::locks::{BackgroundLock, Claim, KeyLock};
use keywarden_agent::Agent;
use keywarden_protocol::CheckinStatus;
use ksni::blocking::TrayMethods as _;

use summary::{summarise, Keys};

/// Keywarden in the tray: checks in in the background and shows the last check-in, the
/// reports waiting and the keys plugged in. Started at login; open the window from its menu.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Seconds between looks at the plugged-in keys (a plugged-in key triggers a check-in).
    #[arg(long, default_value_t = 2, value_name = "SECONDS")]
    poll_seconds: u64,
}

const ICON_PNG: &[u8] = include_bytes!("../../../src-tauri/icons/32x32.png");

/// The tray icon's picture as ARGB32 (what StatusNotifierItem hosts take when they do not find
/// the `keywarden-app` icon in their theme).
fn icon() -> Vec<ksni::Icon> {
    let decoded = png::Decoder::new(std::io::Cursor::new(ICON_PNG))
        .read_info()
        .ok()
        .and_then(|mut reader| {
            let mut buf = vec![0; reader.output_buffer_size()?];
            let info = reader.next_frame(&mut buf).ok()?;
            let rgba =
                info.color_type == png::ColorType::Rgba && info.bit_depth == png::BitDepth::Eight;
            rgba.then(|| {
                buf.truncate(info.buffer_size());
                (info.width, info.height, buf)
            })
        });
    let Some((w, h, rgba)) = decoded else {
        return Vec::new();
    };
    let (Ok(width), Ok(height)) = (i32::try_from(w), i32::try_from(h)) else {
        return Vec::new();
    };
    let data = rgba
        .chunks_exact(4)
        .flat_map(|p| [p[3], p[0], p[1], p[2]])
        .collect();
    vec![ksni::Icon {
        width,
        height,
        data,
    }]
}

/// What the tray shows, kept as data; the sentences are made when a host asks, so "3 min ago"
/// is current.
#[derive(Clone)]
struct View {
    provisioned: bool,
    status: Option<CheckinStatus>,
    keys: Keys,
}

struct KeywardenTray {
    view: View,
    control: Sender<Control>,
    window: PathBuf,
    icon: Vec<ksni::Icon>,
    /// Set while no tray (StatusNotifierWatcher) has our icon; shared by every restart.
    offline: Arc<AtomicBool>,
}

impl KeywardenTray {
    fn summary(&self) -> summary::Summary {
        summarise(
            self.view.provisioned,
            self.view.status.as_ref(),
            &self.view.keys,
            keywarden_agent::now_ms(),
        )
    }
}

/// The window process: `keywarden-app` beside this binary, else from PATH.
fn window_binary() -> PathBuf {
    keywarden_agent::sibling_binary("keywarden-app")
}

fn open_window(window: &Path) {
    let mut cmd = Command::new(window);
    cmd.stdin(Stdio::null());
    // Lets a Wayland compositor give the new window focus.
    if let Some(token) = ksni::current_xdg_activation_token() {
        cmd.env("XDG_ACTIVATION_TOKEN", token);
    }
    match cmd.spawn() {
        Ok(mut child) => {
            // Reap it when it closes.
            let _ = std::thread::Builder::new()
                .name("window".into())
                .spawn(move || child.wait());
        }
        Err(e) => eprintln!(
            "keywarden-tray: cannot open the window ({}): {e}",
            window.display()
        ),
    }
}

/// A menu entry that runs `activate` when chosen.
fn entry(
    label: &str,
    activate: impl Fn(&mut KeywardenTray) + Send + 'static,
) -> ksni::MenuItem<KeywardenTray> {
    ksni::menu::StandardItem {
        label: label.into(),
        activate: Box::new(activate),
        ..Default::default()
    }
    .into()
}

impl ksni::Tray for KeywardenTray {
    fn id(&self) -> String {
        "keywarden".into()
    }

    fn title(&self) -> String {
        "Keywarden".into()
    }

    fn icon_name(&self) -> String {
        "keywarden-app".into()
    }

    fn icon_pixmap(&self) -> Vec<ksni::Icon> {
        self.icon.clone()
    }

    fn tool_tip(&self) -> ksni::ToolTip {
        ksni::ToolTip {
            title: "Keywarden".into(),
            description: self.summary().lines().join("\n"),
            icon_name: String::new(),
            icon_pixmap: Vec::new(),
        }
    }

    fn activate(&mut self, _x: i32, _y: i32) {
        open_window(&self.window);
    }

    fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
        use ksni::menu::{MenuItem, StandardItem};
        let info = |label: String| -> MenuItem<Self> {
            StandardItem {
                label,
                enabled: false,
                ..Default::default()
            }
            .into()
        };
        let s = self.summary();
        let mut items = vec![info(s.check_in), info(s.waiting)];
        items.extend(s.keys.into_iter().map(info));
        items.push(MenuItem::Separator);
        items.push(entry("Open Keywarden", |t| open_window(&t.window)));
        items.push(entry("Check in now", |t| {
            let _ = t.control.send(Control::CheckInNow);
        }));
        items.push(MenuItem::Separator);
        items.push(entry("Quit", |t| {
            let _ = t.control.send(Control::Stop);
        }));
        items
    }

    fn watcher_online(&self) {
        self.offline.store(false, Ordering::SeqCst);
        eprintln!("keywarden-tray: a tray appeared on the session bus; showing the icon");
    }

    fn watcher_offline(&self, reason: ksni::OfflineReason) -> bool {
        if self.offline.swap(true, Ordering::SeqCst) {
            return true; // said already; the retry loop keeps trying
        }
        let why = match reason {
            ksni::OfflineReason::Error(e) => e.to_string(),
            _ => "it went away".to_owned(),
        };
        eprintln!(
            "keywarden-tray: no tray on the session bus (no StatusNotifierWatcher: {why}); \
             no icon until one appears. Still checking in in the background; open the window \
             with keywarden-app."
        );
        true
    }
}

fn keyring(lock: &Arc<KeyLock>) -> Keyring {
    // Software keys (test/demo only) are used only when named explicitly, as in the window.
    keywarden_agent::keyring::assemble(keywarden_agent::keyring::KeySources {
        lock: Some(lock.clone()),
        ..Default::default()
    })
    .keyring
}

fn list_keys(agent: &Agent, lock: &KeyLock) -> Keys {
    if lock.held_elsewhere() {
        return Keys::InUse;
    }
    match agent.keys() {
        Ok(k) => Keys::Listed(k),
        Err(e) => Keys::Failed(e.to_string()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let fail = |e: &dyn std::fmt::Display| keywarden_agent::exit_failure("keywarden-tray", e);
    let (paths, managed) = match keywarden_agent::local_setup(None) {
        Ok(setup) => setup,
        Err(e) => return fail(&e),
    };
    let _background = match BackgroundLock::claim(&paths) {
        Ok(Claim::Ours(lock)) => lock,
        Ok(Claim::Taken { pid }) => {
            let pid = pid.map_or_else(String::new, |p| format!(" (pid {p})"));
            eprintln!(
                "keywarden-tray: the background check-in already runs{pid}; not starting a second one"
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(&e),
    };
    let key_lock = KeyLock::new(&paths);
    let agent = Agent::new(paths, keyring(&key_lock)).with_managed(managed);
    let (tx, rx) = std::sync::mpsc::channel();
    // The loop ends when every sender is gone; without a tray icon this one keeps it going
    // (until SIGTERM, as `keywarden run`).
    let _keep_running = tx.clone();

    let offline = Arc::new(AtomicBool::new(false));
    let make = |view: View| KeywardenTray {
        view,
        control: tx.clone(),
        window: window_binary(),
        icon: icon(),
        offline: offline.clone(),
    };
    let first = make(View {
        provisioned: agent.config_if_any().ok().flatten().is_some(),
        status: agent.checkin_status().ok(),
        keys: list_keys(&agent, &key_lock),
    });
    // Started before the desktop's tray (at login), the icon waits for it instead of failing.
    let handle = match first.assume_sni_available(true).spawn() {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!(
                "keywarden-tray: no tray icon ({e}). Still checking in in the background; \
                 open the window with keywarden-app."
            );
            None
        }
    };
    let handle = Arc::new(Mutex::new(handle));
    if handle.lock().is_ok_and(|h| h.is_some()) {
        // Every 5 s: while no tray has the icon, register it afresh (a tray that appeared in
        // between, or one that took its bus name before it could answer, would otherwise never
        // learn of it). Every minute: keep "3 min ago" current.
        let (handle, offline) = (handle.clone(), offline.clone());
        let (control, window, icon) = (tx.clone(), window_binary(), icon());
        let _ = std::thread::Builder::new()
            .name("tray-upkeep".into())
            .spawn(move || {
                for tick in 1u64.. {
                    std::thread::sleep(Duration::from_secs(5));
                    let Ok(mut slot) = handle.lock() else { break };
                    let Some(current) = slot.take() else { break };
                    if !offline.load(Ordering::SeqCst) {
                        if tick % 12 == 0 && current.update(|_| ()).is_none() {
                            break; // the tray service ended (Quit)
                        }
                        *slot = Some(current);
                        continue;
                    }
                    let mut view = None;
                    current.update(|t| view = Some(t.view.clone()));
                    current.shutdown().wait();
                    let Some(view) = view else { break };
                    let again = KeywardenTray {
                        view,
                        control: control.clone(),
                        window: window.clone(),
                        icon: icon.clone(),
                        offline: offline.clone(),
                    };
                    match again.assume_sni_available(true).spawn() {
                        Ok(h) => *slot = Some(h),
                        Err(e) => {
                            eprintln!("keywarden-tray: no tray icon ({e}); still checking in");
                            break;
                        }
                    }
                }
            });
    }
    let update = |f: &dyn Fn(&mut View)| {
        if let Ok(slot) = handle.lock() {
            if let Some(h) = slot.as_ref() {
                h.update(|t| f(&mut t.view));
            }
        }
    };
    let was_paused = Cell::new(false);
    checkin::run(
        &agent,
        Duration::from_secs(cli.poll_seconds.max(1)),
        &rx,
        &|| {
            // While the window enrols a key the loop leaves the keys alone; afterwards it looks
            // again, as the keys may have changed meanwhile.
            let paused = key_lock.held_elsewhere();
            if paused != was_paused.replace(paused) {
                let keys = if paused {
                    Keys::InUse
                } else {
                    list_keys(&agent, &key_lock)
                };
                update(&|v| v.keys = keys.clone());
            }
            paused
        },
        &|event| match event {
            Event::Keys(change) => {
                for id in &change.added {
                    eprintln!("keywarden-tray: key plugged in: {id}");
                }
                for id in &change.removed {
                    eprintln!("keywarden-tray: key removed: {id}");
                }
                let keys = list_keys(&agent, &key_lock);
                update(&|v| v.keys = keys.clone());
            }
            Event::CheckedIn(status) => {
                match &status.last_error {
                    None => eprintln!(
                        "keywarden-tray: checked in ({}); {} report(s) waiting",
                        status.last_trigger.as_deref().unwrap_or("?"),
                        status.outbox_pending
                    ),
                    Some(e) => eprintln!("keywarden-tray: check-in failed: {e}"),
                }
                update(&|v| {
                    v.provisioned = true;
                    v.status = Some(status.clone());
                });
            }
        },
    );
    let last = handle.lock().ok().and_then(|mut slot| slot.take());
    if let Some(h) = last {
        h.shutdown().wait();
    }
    ExitCode::SUCCESS
}
