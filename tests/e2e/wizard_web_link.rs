//! The wizard's second device class: after a key is enrolled (and on the summary), "Add this
//! laptop or your phone" has the service's one-time link to the self-service page opened in the
//! person's default browser. The real app runs in a window (Xvfb, tauri-driver) against the real
//! service; its `xdg-open` (what the `open` crate starts on Linux) is a stand-in that records what
//! the app asked the browser to open, so the test sees the link without a browser and without the
//! app ever showing it. The CLI's `--browser-link` prints it to stderr only. Screenshots:
//! `target/debug/screenshots/wizard-2[0-2]-*.png`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use keywarden_e2e::{ticket_args, wait_for, Laptop, Server};

use crate::app::Driver;
use crate::wizard::{in_window_with, off};

const PIN: &str = "2468-1357";

/// The origin a test [`Server`] serves its pages as (its `--origin` default).
const ORIGIN: &str = "https://keywarden.localhost";

/// A browser stand-in: a folder holding an `xdg-open` that appends its argument to a file.
struct Browser {
    dir: tempfile::TempDir,
}

impl Browser {
    fn new() -> Browser {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("xdg-open");
        let log = dir.path().join("opened");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n", log.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        Browser { dir }
    }

    /// `PATH` for the app, with this `xdg-open` found first.
    fn path_env(&self) -> String {
        let mut dirs = vec![self.dir.path().to_owned()];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        std::env::join_paths(dirs)
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("opened")
    }

    /// Everything the app asked the browser to open so far.
    fn opened(&self) -> Vec<String> {
        read_lines(&self.log())
    }
}

fn read_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

#[test]
fn after_a_key_the_wizard_opens_the_self_service_page_with_a_one_time_link() {
    let (mut server, laptop, ada, keys) = crate::flow::ada_with_a_laptop(2);
    let ticket = server.ticket(&ada, None);
    let browser = Browser::new();
    in_window_with(
        Driver::for_laptop_with(&laptop, &[("PATH", browser.path_env())]),
        async |ui| {
            ui.redeem(&ticket).await;
            ui.wait_text("#person", "Ada Lovelace").await;
            ui.enrol_new_key(&keys[0], PIN).await;
            ui.wait_text("#coverage", "You have 1 of 2").await;

            // The offer, after the key and beside "Enrol a backup key"; nothing opened yet.
            let offer = ui
                .wait_text("#web-offer", "Add this laptop or your phone")
                .await;
            assert!(offer.contains("works once"), "{offer}");
            assert_eq!(ui.text("#open-web").await, "Add this laptop or your phone");
            assert!(ui.text("#backup").await.contains("Enrol a backup key"));
            assert!(
                browser.opened().is_empty(),
                "nothing opened before the click"
            );
            ui.check_accessible("web link offer").await;
            ui.save_shot("wizard-20-web-link-offer").await;

            // The click: the browser gets the link; the window says so, and until when it works.
            ui.click("#open-web").await;
            let said = ui
                .wait_text("#web-link-status", "We opened your browser: finish there.")
                .await;
            let opened = wait_for(Duration::from_secs(10), "the browser to be opened", || {
                let o = browser.opened();
                (!o.is_empty()).then_some(o)
            });
            assert_eq!(opened.len(), 1, "opened once");
            let url = opened[0].clone();
            let link = url
                .strip_prefix(&format!("{ORIGIN}/me/enrol#link="))
                .unwrap_or_else(|| {
                    panic!("not the self-service page's link ({} chars)", url.len())
                });
            assert!(link.len() >= 16, "a link, not a stub");
            // "until HH:MM": between now and ten minutes from now on the window's own clock.
            let until = said
                .split("This link works once, until ")
                .nth(1)
                .unwrap_or_else(|| panic!("no expiry: {said}"))
                .trim_end_matches('.')
                .to_owned();
            let allowed = ui
            .js("const t = []; for (let m = 0; m <= 11; m++) { const d = new Date(Date.now() + m * 60000); t.push(String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0')); } return t;")
            .await;
            assert!(
                allowed
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t.as_str() == Some(until.as_str())),
                "{until} is not within the next ten minutes ({allowed})"
            );
            // The link is a secret: not in the window, not in its markup.
            let html = ui.js("return document.documentElement.outerHTML;").await;
            assert!(
                !html.as_str().unwrap().contains(link),
                "the link reached the web view"
            );
            assert!(
                !html.as_str().unwrap().contains("#link="),
                "the link reached the web view"
            );
            ui.check_accessible("web link opened").await;
            ui.save_shot("wizard-21-web-link-opened").await;
            off(|| assert_single_use(&server, &url, "ada@example.com"));

            // The backup key, then the summary: the offer is there too.
            ui.click("#backup").await;
            ui.wait_text("#key-list", "no PIN yet").await;
            ui.use_key(&keys[1]).await;
            ui.set_new_pin(PIN).await;
            ui.wait_text("#coverage", "You have 2 of 2").await;
            ui.click("#finish").await;
            ui.wait_text("#summary", "2 of 2").await;
            ui.wait_text("#web-offer", "Add this laptop or your phone")
                .await;
            assert_eq!(browser.opened().len(), 1, "nothing opened without a click");

            // The service is gone when the person asks again: a sentence and a way forward, and
            // nothing handed to the browser.
            off(|| server.stop());
            ui.click("#open-web").await;
            ui.says_service_unreachable().await;
            assert_eq!(browser.opened().len(), 1, "nothing more was opened");
            ui.save_shot("wizard-22-web-link-service-unreachable").await;
        },
    );
}

/// The link works once: redeeming it (as the self-service page's script does) signs a browser
/// in as the session's person; a second time is refused.
fn assert_single_use(server: &Server, url: &str, user_name: &str) {
    let link = url.split("#link=").nth(1).unwrap();
    let redeem = || {
        let resp = reqwest::blocking::Client::new()
            .post(format!("{}/api/v1/me/session/link", server.url))
            .header("origin", ORIGIN)
            .json(&serde_json::json!({ "link": link }))
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let cookie = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap_or("").starts_with("kw_session="));
        (
            status,
            cookie,
            resp.json::<serde_json::Value>().unwrap_or_default(),
        )
    };
    let (status, cookie, body) = redeem();
    assert_eq!(status, 201, "the first use signs the browser in: {body}");
    assert!(cookie, "a session cookie is set");
    assert_eq!(body["person"]["user_name"], user_name, "{body}");
    let (status, cookie, body) = redeem();
    assert_eq!(status, 409, "a second use is refused: {body}");
    assert_eq!(body["error"]["code"], "link_used", "{body}");
    assert!(!cookie, "no session the second time");
}

/// Run the CLI, require success, and return (stdout, stderr).
fn run_both(laptop: &Laptop, args: &[&str], stdin: &str) -> (String, String) {
    let out = laptop.run(args, Some(stdin));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    (stdout, stderr)
}

/// The self-service link the CLI printed on a line of its own on stderr.
fn link_on(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with(&format!("{ORIGIN}/me/enrol#link=")))
        .expect("the link on a line of its own")
        .trim()
        .to_owned()
}

#[test]
fn the_cli_prints_the_link_to_stderr_only_when_asked() {
    let (server, laptop, ada, keys) = crate::flow::ada_with_a_laptop(3);
    // Without the flag, no link anywhere.
    let ticket = server.ticket(&ada, None);
    let (stdout, stderr) = run_both(
        &laptop,
        &ticket_args("enrol", &ticket, None, &[&keys[0]]),
        &format!("{PIN}\n"),
    );
    assert!(stdout.contains("You have 1 of 2"), "{stdout}");
    assert!(
        !stdout.contains("#link=") && !stderr.contains("#link="),
        "{stderr}"
    );
    // With it (a second person's first key, so a ticket alone is enough), on stderr only.
    let grace = server.create_person("grace@example.com", "Grace Hopper");
    let ticket = server.ticket(&grace, None);
    let mut args = ticket_args("enrol", &ticket, None, &[&keys[1]]);
    args.push("--browser-link");
    let (stdout, stderr) = run_both(&laptop, &args, &format!("{PIN}\n"));
    assert!(stdout.contains("You have 1 of 2"), "{stdout}");
    assert!(!stdout.contains("#link="), "the link never goes to stdout");
    assert!(
        stderr.contains("To add this laptop or your phone, open this link in a browser (it works once, for the next"),
        "{} chars on stderr",
        stderr.len()
    );
    assert_single_use(&server, &link_on(&stderr), "grace@example.com");

    // Ada, who has a key, adds another with it (no ticket), and asks for the link too.
    let (stdout, stderr) = run_both(
        &laptop,
        &[
            "add-key",
            "--with-key",
            &keys[0],
            "--key",
            &keys[2],
            "--pin-stdin",
            "--browser-link",
        ],
        &format!("{PIN}\n{PIN}\n"),
    );
    assert!(stdout.contains("You have 2 of 2"), "{stdout}");
    assert!(!stdout.contains("#link="), "the link never goes to stdout");
    assert_single_use(&server, &link_on(&stderr), "ada@example.com");
}
