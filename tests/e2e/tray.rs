//! The app in the tray: closing its window leaves the app (and its background check-in)
//! running with no web view process; and its colours follow the system's dark theme.

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::Locator;
use keywarden_e2e::{bin, wait_for, Laptop, Server};

use crate::app::{screenshot_dir, Driver};

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

/// The app process started for this test: the one whose environment names `home`.
fn app_pid(home: &std::path::Path) -> Option<u32> {
    let exe = bin("keywarden-app");
    let needle = format!("KEYWARDEN_HOME={}", home.display());
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = e.file_name().to_string_lossy().parse::<u32>().ok()?;
        let link: PathBuf = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        if link != exe {
            return None;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        env.split(|b| *b == 0)
            .any(|v| v == needle.as_bytes())
            .then_some(pid)
    })
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.contains(") Z ") && !s.contains(") X "))
}

#[test]
fn closing_the_window_keeps_the_tray_app_checking_in_without_a_web_view() {
    let server = Server::start();
    let laptop = Laptop::new(1);
    crate::flow::provisioned(&server, &laptop);
    let home = laptop.home.path().to_owned();
    let driver = Driver::for_laptop(&laptop);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pid = rt.block_on(async {
        let c = driver.session(&[]).await;
        c.wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Id("checkin-outcome"))
            .await
            .unwrap();
        let pid = app_pid(&home).expect("the app process");
        let web: Vec<_> = children(pid)
            .into_iter()
            .filter(|(_, n)| n.starts_with("WebKitWebProces"))
            .collect();
        assert!(!web.is_empty(), "a web view process while the window is open");
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
        pid
    });
    // The background check-in at start-up reached the service.
    wait_for(Duration::from_secs(20), "a check-in record", || {
        std::fs::read_to_string(home.join("data").join("checkin.json"))
            .ok()
            .filter(|s| {
                s.contains("last_success_at_ms\": 1") || s.contains("last_success_at_ms\": 2")
            })
    });
    wait_for(
        Duration::from_secs(20),
        "the web view process to end",
        || {
            children(pid)
                .iter()
                .all(|(_, n)| !n.starts_with("WebKitWebProces"))
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        alive(pid),
        "the app keeps running in the tray with its window closed"
    );
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = driver.session(&[]).await;
        c.wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Id("ticket"))
            .await
            .unwrap();
        let dark = c
            .execute(
                "return [matchMedia('(prefers-color-scheme: dark)').matches, getComputedStyle(document.body).backgroundColor];",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(dark[0], true, "the web view reports the dark system theme: {dark}");
        assert_eq!(dark[1], "rgb(13, 17, 23)", "dark background: {dark}");
        let png = c.screenshot().await.unwrap();
        std::fs::write(screenshot_dir().join("wizard-dark-theme.png"), png).unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(5), c.close()).await;
    });
    drop(driver);
}
