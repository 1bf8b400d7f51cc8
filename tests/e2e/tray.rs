//! The tray: `keywarden-tray`, a process without GTK or a web view, checks in in the
//! background and shows its status and menu as a StatusNotifierItem on a real D-Bus session
//! bus (dbus-daemon) with a real StatusNotifierWatcher (`status-notifier-watcher`, from
//! Debian); its menu opens the window. Without a tray on the desktop, or without a bus, it says
//! so and keeps checking in. Closing the window ends the window process while the tray goes on.
//! And the window's colours follow the system's dark theme.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keywarden_e2e::{bin, wait_for, Laptop, Server};
use zbus::zvariant::OwnedValue;

use crate::app::{block_on, screenshot_dir, Driver};

/// Processes whose parent is `pid`, with their command names.
fn children(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let comm = stat[stat.find('(').unwrap_or(0) + 1..close].to_owned();
        let ppid = stat[close + 2..]
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push((p, comm));
        }
    }
    out
}

/// Live processes of the built binary `name` started for this test: those whose environment
/// names `home`.
fn pids_of(name: &str, home: &Path) -> Vec<u32> {
    let exe = bin(name);
    let needle = format!("KEYWARDEN_HOME={}", home.display());
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let link: PathBuf = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            if link != exe || !alive(pid) {
                return None;
            }
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            env.split(|b| *b == 0)
                .any(|v| v == needle.as_bytes())
                .then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.contains(") Z ") && !s.contains(") X "))
}

fn has_web_view(pid: u32) -> bool {
    children(pid)
        .iter()
        .any(|(_, n)| n.starts_with("WebKitWebProces"))
}

/// Stops a whole process group when dropped.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .status();
        let _ = self.0.wait();
    }
}

fn own_group(cmd: &mut Command) -> &mut Command {
    std::os::unix::process::CommandExt::process_group(cmd, 0)
}

/// A private D-Bus session bus (`dbus-daemon --session`) for one test.
struct SessionBus {
    address: String,
    _daemon: Group,
}

impl SessionBus {
    fn start() -> SessionBus {
        let mut child = own_group(
            Command::new("dbus-daemon")
                .args(["--session", "--nofork", "--print-address=1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start dbus-daemon ({e}); scripts/lib.sh installs it"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("unix:"), "dbus-daemon printed {line:?}");
        SessionBus {
            address: line.trim().to_owned(),
            _daemon: Group(child),
        }
    }
}

const WATCHER: &str = "org.kde.StatusNotifierWatcher";

/// What a desktop's tray does on the bus, from the test: start the StatusNotifierWatcher, list
/// the items registered with it, read an item's properties and menu, click a menu entry.
struct Host {
    rt: tokio::runtime::Runtime,
    conn: zbus::Connection,
    address: String,
}

impl Host {
    fn connect(bus: &SessionBus) -> Host {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let conn = rt.block_on(async {
            zbus::connection::Builder::address(bus.address.as_str())
                .unwrap()
                .build()
                .await
                .unwrap()
        });
        Host {
            rt,
            conn,
            address: bus.address.clone(),
        }
    }

    /// A StatusNotifierWatcher, as a desktop's tray runs one (Debian's `status-notifier-watcher`).
    fn start_watcher(&self) -> Group {
        let child = own_group(
            Command::new("status-notifier-watcher")
                .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start status-notifier-watcher ({e}); scripts/lib.sh installs it")
        });
        let watcher = Group(child);
        wait_for(
            Duration::from_secs(20),
            "the StatusNotifierWatcher on the bus",
            || {
                self.rt
                    .block_on(async {
                        let dbus = zbus::fdo::DBusProxy::new(&self.conn).await.unwrap();
                        let name = zbus::names::BusName::try_from(WATCHER).unwrap();
                        dbus.name_has_owner(name).await.unwrap()
                    })
                    .then_some(())
            },
        );
        watcher
    }

    /// The items registered with the watcher (what the desktop's tray shows).
    fn registered_items(&self) -> Vec<String> {
        self.rt.block_on(async {
            let props = zbus::fdo::PropertiesProxy::builder(&self.conn)
                .destination(WATCHER)
                .unwrap()
                .path("/StatusNotifierWatcher")
                .unwrap()
                .build()
                .await
                .unwrap();
            let iface = zbus::names::InterfaceName::try_from(WATCHER).unwrap();
            match props.get(iface, "RegisteredStatusNotifierItems").await {
                Ok(v) => Vec::<String>::try_from(v).unwrap(),
                Err(_) => Vec::new(),
            }
        })
    }

    /// The bus name of the one item registered with the watcher, once it is there.
    fn wait_for_item(&self) -> String {
        let items = wait_for(
            Duration::from_secs(20),
            "a tray icon registered with the watcher",
            || Some(self.registered_items()).filter(|i| !i.is_empty()),
        );
        assert_eq!(items.len(), 1, "one tray icon: {items:?}");
        // A bus name, optionally followed by an object path.
        items[0].split('/').next().unwrap().to_owned()
    }

    /// A property of the tray's StatusNotifierItem.
    fn property(&self, item: &str, name: &str) -> OwnedValue {
        self.rt.block_on(async {
            let props = zbus::fdo::PropertiesProxy::builder(&self.conn)
                .destination(item.to_owned())
                .unwrap()
                .path("/StatusNotifierItem")
                .unwrap()
                .build()
                .await
                .unwrap();
            let iface = zbus::names::InterfaceName::try_from("org.kde.StatusNotifierItem").unwrap();
            props.get(iface, name).await.unwrap()
        })
    }

    fn menu_path(&self, item: &str) -> zbus::zvariant::OwnedObjectPath {
        zbus::zvariant::OwnedObjectPath::try_from(self.property(item, "Menu")).unwrap()
    }

    /// The tray's menu as a host reads it (com.canonical.dbusmenu `GetLayout` at the path the
    /// item's `Menu` property names): (id, label, enabled) of each top-level entry.
    fn menu(&self, item: &str) -> Vec<(i32, String, bool)> {
        let path = self.menu_path(item);
        self.rt.block_on(async {
            let reply = self
                .conn
                .call_method(
                    Some(item),
                    path.as_str(),
                    Some("com.canonical.dbusmenu"),
                    "GetLayout",
                    &(0i32, -1i32, Vec::<String>::new()),
                )
                .await
                .unwrap();
            type Entry = (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>);
            let (_revision, (_root, _props, entries)): (u32, Entry) =
                reply.body().deserialize().unwrap();
            entries
                .into_iter()
                .map(|entry| {
                    let (id, props, _children): Entry = entry.try_into().unwrap();
                    let label = props
                        .get("label")
                        .and_then(|v| String::try_from(v.try_clone().unwrap()).ok())
                        .unwrap_or_default();
                    let enabled = props
                        .get("enabled")
                        .and_then(|v| bool::try_from(v).ok())
                        .unwrap_or(true);
                    (id, label, enabled)
                })
                .collect()
        })
    }

    fn labels(&self, item: &str) -> Vec<String> {
        self.menu(item).into_iter().map(|(_, l, _)| l).collect()
    }

    /// Click the menu entry labelled `label`, as a host does when the person picks it.
    fn click(&self, item: &str, label: &str) {
        let entries = self.menu(item);
        let (id, _, enabled) = entries
            .iter()
            .find(|(_, l, _)| l == label)
            .unwrap_or_else(|| panic!("no {label:?} in the tray menu: {entries:?}"));
        assert!(enabled, "{label:?} can be clicked");
        let path = self.menu_path(item);
        self.rt.block_on(async {
            self.conn
                .call_method(
                    Some(item),
                    path.as_str(),
                    Some("com.canonical.dbusmenu"),
                    "Event",
                    &(*id, "clicked", zbus::zvariant::Value::from(0i32), 0u32),
                )
                .await
                .unwrap();
        });
    }
}

/// `keywarden-tray` run as `laptop`, with its stderr kept in the laptop's home.
fn start_tray(laptop: &Laptop, bus: Option<&str>) -> (Group, PathBuf) {
    let home = laptop.home.path();
    let err = home.join("tray.stderr");
    let mut cmd = Command::new(bin("keywarden-tray"));
    cmd.env("KEYWARDEN_HOME", home)
        .env(
            "KEYWARDEN_SOFT_KEYS",
            std::env::join_paths(&laptop.soft_keys).unwrap(),
        )
        .env("KEYWARDEN_MANAGED_CONFIG", home.join("no-managed.json"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap());
    match bus {
        Some(address) => cmd.env("DBUS_SESSION_BUS_ADDRESS", address),
        // No session bus at all: nothing at the address, nor in the runtime folder.
        None => cmd
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}", home.join("no-bus").display()),
            )
            .env("XDG_RUNTIME_DIR", home),
    };
    (Group(own_group(&mut cmd).spawn().unwrap()), err)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Reports the service holds for the (one) provisioned laptop.
fn reports_stored(server: &Server) -> u64 {
    let (_, devices) = server.admin("GET", "/api/v1/admin/devices", None);
    devices[0]["report_count"].as_u64().unwrap_or(0)
}

fn checkin_record(home: &Path) -> serde_json::Value {
    serde_json::from_str(&read(&home.join("data").join("checkin.json"))).unwrap_or_default()
}

fn assert_no_gtk_or_webkit(pid: u32) {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    for lib in [
        "libgtk",
        "libgdk",
        "libwebkit",
        "libjavascriptcore",
        "appindicator",
    ] {
        assert!(
            !maps.contains(lib),
            "the tray process maps no {lib}: {}",
            maps.lines().find(|l| l.contains(lib)).unwrap_or_default()
        );
    }
}

#[test]
fn the_tray_checks_in_shows_its_status_and_opens_the_window_without_gtk_or_webkit() {
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "this test needs a display: run it under xvfb-run (scripts/test.sh does)"
    );
    let (server, laptop, _, _) = crate::flow::ada_with_a_laptop(1);
    let home = laptop.home.path().to_owned();
    let bus = SessionBus::start();
    let host = Host::connect(&bus);
    let _watcher = host.start_watcher();
    let (tray, stderr) = start_tray(&laptop, Some(&bus.address));
    let item = host.wait_for_item();
    let tray_pid = tray.0.id();
    assert_eq!(pids_of("keywarden-tray", &home), vec![tray_pid]);

    // It checks in at start-up: the service has the report.
    wait_for(
        Duration::from_secs(30),
        "the tray's first report to reach the service",
        || (reports_stored(&server) >= 1).then_some(()),
    );
    assert_no_gtk_or_webkit(tray_pid);

    // Its menu and tooltip say how the check-in went, what waits, and which key is plugged in.
    let labels = wait_for(
        Duration::from_secs(30),
        "the menu to show the check-in",
        || Some(host.labels(&item)).filter(|l| l[0].starts_with("Last check-in ")),
    );
    assert!(!labels[0].contains("failed"), "{labels:?}");
    assert!(
        labels.iter().any(|l| l == "No reports waiting"),
        "{labels:?}"
    );
    assert!(
        labels
            .iter()
            .any(|l| l == "Key: software key (test/demo) (no PIN yet)"),
        "{labels:?}"
    );
    for action in ["Open Keywarden", "Check in now", "Quit"] {
        assert!(
            labels.iter().any(|l| l == action),
            "{action:?} in {labels:?}"
        );
    }
    // (icon name, icon pixmaps, title, description)
    type ToolTip = (String, Vec<(i32, i32, Vec<u8>)>, String, String);
    let (_, _, title, text): ToolTip = host.property(&item, "ToolTip").try_into().unwrap();
    assert_eq!(title, "Keywarden");
    assert!(
        text.contains("Last check-in") && text.contains("No reports waiting"),
        "{text}"
    );

    // "Check in now" sends another report.
    host.click(&item, "Check in now");
    wait_for(
        Duration::from_secs(30),
        "the manual check-in to reach the service",
        || (reports_stored(&server) >= 2).then_some(()),
    );
    assert_eq!(checkin_record(&home)["last_trigger"], "manual");

    // "Open Keywarden" starts the window process, with its web view; it finds the tray running
    // and starts no second one.
    host.click(&item, "Open Keywarden");
    let window = wait_for(
        Duration::from_secs(60),
        "the window to open with its web view",
        || {
            pids_of("keywarden-app", &home)
                .into_iter()
                .find(|p| has_web_view(*p))
        },
    );
    assert!(
        children(tray_pid).iter().any(|(p, _)| *p == window),
        "the tray started the window"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        pids_of("keywarden-tray", &home),
        vec![tray_pid],
        "still one tray once the window is open"
    );
    assert_no_gtk_or_webkit(tray_pid);

    // "Quit" ends the tray and its icon; the window is a process of its own.
    host.click(&item, "Quit");
    wait_for(Duration::from_secs(20), "the tray to quit", || {
        (!alive(tray_pid)).then_some(())
    });
    assert!(
        alive(window),
        "quitting the tray does not close the open window"
    );
    wait_for(Duration::from_secs(20), "the icon to go", || {
        host.registered_items().is_empty().then_some(())
    });
    let err = read(&stderr);
    assert!(!err.contains("panicked"), "{err}");
    drop(tray);
}

#[test]
fn without_a_tray_on_the_desktop_it_says_so_keeps_checking_in_and_shows_up_when_one_starts() {
    let (server, laptop, _, _) = crate::flow::ada_with_a_laptop(1);
    let bus = SessionBus::start();
    let host = Host::connect(&bus);
    let (tray, stderr) = start_tray(&laptop, Some(&bus.address));
    let err = wait_for(
        Duration::from_secs(20),
        "the tray to say there is no tray",
        || Some(read(&stderr)).filter(|e| e.contains("no tray on the session bus")),
    );
    assert!(err.contains("Still checking in"), "{err}");
    wait_for(
        Duration::from_secs(30),
        "a report without a tray icon",
        || (reports_stored(&server) >= 1).then_some(()),
    );
    // The desktop's tray starts later (as at login): the icon appears.
    let _watcher = host.start_watcher();
    let item = host.wait_for_item();
    assert!(host.labels(&item).iter().any(|l| l == "Open Keywarden"));
    assert!(alive(tray.0.id()));
}

#[test]
fn without_a_session_bus_it_says_so_and_checks_in_and_a_second_tray_does_not_start() {
    let (server, laptop, _, _) = crate::flow::ada_with_a_laptop(1);
    let home = laptop.home.path().to_owned();
    let (tray, stderr) = start_tray(&laptop, None);
    wait_for(
        Duration::from_secs(30),
        "a report from the tray without a bus",
        || (reports_stored(&server) >= 1).then_some(()),
    );
    let err = read(&stderr);
    assert!(
        err.contains("no tray icon (D-Bus connection error"),
        "{err}"
    );
    assert!(err.contains("Still checking in in the background"), "{err}");
    assert!(alive(tray.0.id()), "it keeps running without a tray icon");

    // Login starts it again (say, from the user unit and the autostart entry): the second one
    // sees the first and leaves.
    let mut second = Command::new(bin("keywarden-tray"));
    second
        .env("KEYWARDEN_HOME", &home)
        .env("KEYWARDEN_MANAGED_CONFIG", home.join("no-managed.json"));
    let out = second.output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("already runs (pid {})", tray.0.id())),
        "{err}"
    );
    assert_eq!(pids_of("keywarden-tray", &home), vec![tray.0.id()]);
    // `keywarden run` (the headless agent) does not start a second check-in either.
    let out = laptop.run(&["run"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already runs"), "{err}");
}

#[test]
fn closing_the_window_ends_its_process_while_the_tray_it_started_keeps_checking_in() {
    let (server, laptop, _, _) = crate::flow::ada_with_a_laptop(1);
    let home = laptop.home.path().to_owned();
    let driver = Driver::for_laptop(&laptop);
    let (app, tray) = block_on(async {
        let c = driver.session_showing("checkin-outcome").await;
        let app = *pids_of("keywarden-app", &home)
            .first()
            .expect("the window process");
        assert!(
            has_web_view(app),
            "a web view process while the window is open"
        );
        // No tray ran for this person, so the window started one.
        let tray = wait_for(
            Duration::from_secs(20),
            "the tray the window starts",
            || pids_of("keywarden-tray", &home).first().copied(),
        );
        // Close the window as its close button does (a window-close request to the app);
        // WebKitWebDriver may not answer after that.
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            c.execute(
                "window.__TAURI_INTERNALS__.invoke('plugin:window|close', {label: 'main'}); return null;",
                vec![],
            ),
        )
        .await;
        (app, tray)
    });
    wait_for(Duration::from_secs(20), "the window process to end", || {
        (!alive(app)).then_some(())
    });
    // The tray checked in at start-up and goes on without any window or web view.
    wait_for(Duration::from_secs(30), "the tray's report", || {
        (reports_stored(&server) >= 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(alive(tray), "the tray keeps running with the window closed");
    assert_no_gtk_or_webkit(tray);
    drop(driver);
}

#[test]
fn colours_follow_the_system_dark_theme() {
    let home = tempfile::tempdir().unwrap();
    let driver = Driver::start(&[
        ("KEYWARDEN_HOME", home.path().display().to_string()),
        (
            "KEYWARDEN_MANAGED_CONFIG",
            home.path().join("no-managed.json").display().to_string(),
        ),
        ("GTK_THEME", "Adwaita:dark".to_owned()),
    ]);
    block_on(async {
        let c = driver.session_showing("ticket").await;
        let dark = c
            .execute(
                "return [matchMedia('(prefers-color-scheme: dark)').matches, getComputedStyle(document.body).backgroundColor];",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            dark[0], true,
            "the web view reports the dark system theme: {dark}"
        );
        assert_eq!(dark[1], "rgb(13, 17, 23)", "dark background: {dark}");
        let png = c.screenshot().await.unwrap();
        std::fs::write(screenshot_dir().join("wizard-dark-theme.png"), png).unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(5), c.close()).await;
    });
    drop(driver);
}
