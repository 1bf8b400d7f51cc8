//! The desktop app: a clear exit without a display, and a real window (Xvfb) driven through
//! WebDriver (tauri-driver + WebKitWebDriver) that lists the keys and the posture.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use keywarden_e2e::{bin, bin_dir, wait_for};

#[test]
fn without_a_display_the_app_exits_with_a_clear_message() {
    let out = Command::new(bin("keywarden-app"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no display found"), "{err}");
    assert!(err.contains("keywarden keys"), "points to the CLI: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// tauri-driver in its own process group, stopped with everything it started.
pub struct Driver {
    child: std::process::Child,
    /// The WebDriver port.
    pub port: u16,
}

impl Driver {
    /// A WebDriver session on the real app, started with `args` (e.g. a `keywarden://` link).
    pub async fn session(&self, args: &[String]) -> fantoccini::Client {
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "wry".into());
        caps.insert(
            "tauri:options".into(),
            serde_json::json!({
                "application": bin("keywarden-app").display().to_string(),
                "args": args,
            }),
        );
        tokio::time::timeout(
            Duration::from_secs(60),
            fantoccini::ClientBuilder::native()
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{}", self.port)),
        )
        .await
        .expect("WebDriver session did not start within 60 s")
        .expect("WebDriver session failed")
    }

    /// [`Driver::session`] with no arguments, once the window shows the element `id`.
    pub async fn session_showing(&self, id: &str) -> fantoccini::Client {
        let c = self.session(&[]).await;
        c.wait()
            .at_most(Duration::from_secs(20))
            .for_element(fantoccini::Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("the window never showed #{id}: {e}"));
        c
    }

    /// A driver whose app runs as `laptop`: its agent home and software keys, and no managed
    /// configuration from the machine running the test.
    pub fn for_laptop(laptop: &keywarden_e2e::Laptop) -> Driver {
        Driver::for_laptop_with(laptop, &[])
    }

    /// [`Driver::for_laptop`] with more environment for the app (e.g. a `PATH` whose
    /// `xdg-open` records what the app asks the browser to open).
    pub fn for_laptop_with(laptop: &keywarden_e2e::Laptop, extra: &[(&str, String)]) -> Driver {
        let home = laptop.home.path();
        let soft_keys = std::env::join_paths(&laptop.soft_keys).unwrap();
        let mut envs = vec![
            ("KEYWARDEN_HOME", home.display().to_string()),
            (
                "KEYWARDEN_SOFT_KEYS",
                soft_keys.to_string_lossy().into_owned(),
            ),
            (
                "KEYWARDEN_MANAGED_CONFIG",
                home.join("no-managed.json").display().to_string(),
            ),
        ];
        envs.extend(extra.iter().cloned());
        Driver::start(&envs)
    }

    pub fn start(envs: &[(&str, String)]) -> Driver {
        assert!(
            std::env::var_os("DISPLAY").is_some(),
            "this test needs a display: run it under xvfb-run (scripts/test.sh does)"
        );
        let port = free_port();
        let native = free_port();
        // The driver, WebKitWebDriver and the app run in a PID namespace of their own when the
        // machine allows it (root), so nothing they start can outlive or touch the test run.
        let contained = Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "true"])
            .status()
            .is_ok_and(|s| s.success());
        let mut cmd = if contained {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--kill-child", "tauri-driver"]);
            c
        } else {
            Command::new("tauri-driver")
        };
        cmd.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start tauri-driver ({e}); `cargo install tauri-driver --locked` (scripts/test.sh does)")
        });
        wait_for(Duration::from_secs(20), "tauri-driver to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole process group: the driver, WebKitWebDriver and the app.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--", &group])
            .status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .status();
        let _ = self.child.wait();
    }
}

/// Run a window test's WebDriver steps (async) to the end on this thread.
pub fn block_on<F: std::future::Future>(steps: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(steps)
}

pub fn screenshot_dir() -> std::path::PathBuf {
    let d = bin_dir().join("screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_window_lists_keys_and_posture() {
    let home = tempfile::tempdir().unwrap();
    let soft = home.path().join("softkey.json");
    let driver = Driver::start(&[
        ("KEYWARDEN_HOME", home.path().display().to_string()),
        ("KEYWARDEN_SOFT_KEYS", soft.display().to_string()),
    ]);
    block_on(async {
        let client = driver.session(&[]).await;

        let text_of = |id: &'static str| {
            let c = client.clone();
            async move {
                match c.find(fantoccini::Locator::Id(id)).await {
                    Ok(el) => el.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                }
            }
        };
        // Each pane is a tab; WebDriver reads only what is shown.
        let click = |id: &'static str| {
            let c = client.clone();
            async move {
                if let Ok(el) = c.find(fantoccini::Locator::Id(id)).await {
                    let _ = el.click().await;
                }
            }
        };
        let mut keys = String::new();
        let mut posture = String::new();
        for _ in 0..100 {
            click("tab-keys").await;
            keys = text_of("keys").await;
            click("tab-posture").await;
            posture = text_of("posture").await;
            if keys.contains("software key (test/demo)") && posture.contains("Disk encryption") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            keys.contains("software key (test/demo)"),
            "keys pane: {keys}"
        );
        assert!(
            keys.contains("85e17f29-90da-40f7-8f3f-526b9449f38f"),
            "AAGUID shown: {keys}"
        );
        assert!(
            posture.contains("Disk encryption"),
            "posture pane: {posture}"
        );
        assert!(posture.contains("Secure boot"), "posture pane: {posture}");
        let status = text_of("status").await;
        assert!(status.contains("not provisioned"), "status: {status}");
        assert_eq!(client.title().await.unwrap(), "Keywarden");

        let png = client.screenshot().await.unwrap();
        std::fs::write(screenshot_dir().join("app-keys-and-posture.png"), png).unwrap();
        // Ending the session closes the window; WebKitWebDriver may not answer once the app has
        // gone, so do not wait on it for long. The driver's process group is stopped below.
        let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
    });
    drop(driver);
}
