//! The console's burn-down in a real browser after several simulated days: the service runs in
//! this process on `http://localhost:PORT` with the tests' clock, four days pass with one more
//! person covered each day (each day's snapshot taken by the service's own timer function), and
//! Debian's Chromium (tests/browser/console-burndown.mjs, CDP virtual authenticators) sets up the
//! first admin and opens the overview. Screenshots land with the other browser tests'.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use common::{enrol_first_keys, fresh_db, App, Backend, SoftKey};
use keywarden_server::console::{setup, snapshots};
use keywarden_server::Settings;

/// The checkout's folder: cargo names this package's at run time (a test binary reused from
/// another clone's build still reads this one).
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burn_down_after_several_days_in_chromium() {
    let browser_dir = package_dir().join("../../tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "the browser tests' packages are not installed: run `npm ci` in {} (scripts/test.sh does)",
        browser_dir.display()
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let origin = format!("http://localhost:{port}");
    let settings = Settings::new("localhost", url::Url::parse(&origin).unwrap());
    let db = fresh_db(Backend::Sqlite).await.unwrap();
    let mut app = App::on_with(db, settings).await;
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });

    // Day 1: four people from the HR feed, none with a key. Days 2 to 4: one more covered a day.
    let laptop = app.device("lt-burn").await;
    let mut people = Vec::new();
    for i in 0..4 {
        people.push(app.hr_person(&format!("burn-{i}@example.com")).await);
    }
    let min = app.state.settings.min_authenticators;
    assert!(snapshots::tick(&app.state.db, app.now(), min)
        .await
        .unwrap());
    let day = 86_400_000;
    for (i, p) in people[..3].iter().enumerate() {
        let now = app.now() + day;
        if i == 0 {
            app.set_clock(now).await;
        } else {
            app.clock.0.store(now, Ordering::SeqCst);
        }
        enrol_first_keys(&app, &laptop, p, &[&SoftKey::new(), &SoftKey::new()]).await;
        assert!(snapshots::tick(&app.state.db, app.now(), min)
            .await
            .unwrap());
    }
    let link = setup::issue_link(&app.state.db, &origin, app.now(), |_| Ok(()))
        .await
        .unwrap()
        .unwrap();

    let shots = std::env::var_os("KEYWARDEN_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| package_dir().join("../../target"))
                .join("debug/screenshots/selfservice")
        });
    let status = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("console-burndown.mjs")
            .current_dir(&browser_dir)
            .env("KEYWARDEN_BASE_URL", &origin)
            .env("KEYWARDEN_SCREENSHOTS", &shots)
            .env("KW_SETUP_LINK", &link)
            .stdin(Stdio::null())
            .status()
            .expect("node runs (install Debian's nodejs package)")
    })
    .await
    .unwrap();
    assert!(
        status.success(),
        "browser scenario console-burndown.mjs failed; its output is above"
    );
}
