//! The service's readable admin pages — the NIST CSF 2.0 evidence and the dormant-access report —
//! fetched from the real service and rendered by Debian's chromium (headless), with screenshots
//! saved for people to look at.

use std::path::Path;
use std::process::Command;

use keywarden_e2e::Server;

use crate::app::screenshot_dir;

const PIN: &str = "2468-1357\n";

fn page(server: &Server, path: &str) -> String {
    let resp = reqwest::blocking::Client::new()
        .get(format!("{}{path}", server.url))
        .bearer_auth(&server.admin_token)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{path}");
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/html"), "{path}: {ct}");
    resp.text().unwrap()
}

/// Render `html` in headless chromium and save a PNG; returns its width and height.
fn screenshot(html: &str, name: &str) -> (u32, u32) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("page.html");
    std::fs::write(&file, html).unwrap();
    let png = screenshot_dir().join(name);
    let _ = std::fs::remove_file(&png);
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,1400",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", file.display()))
        .output()
        .expect("chromium is installed by scripts/test.sh (Debian package chromium)");
    assert!(
        png.exists(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    png_size(&png)
}

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

#[test]
fn csf_evidence_and_dormant_access_pages_render_in_chromium() {
    let (server, laptop, person, keys) = crate::flow::ada_with_a_laptop(2);
    laptop.enrol(&server.ticket(&person, None), &[&keys[0], &keys[1]], PIN);
    // Someone leaves; their keys wait for a reclaim station, so the report has one row.
    server.hr_feed().deactivate(&person);

    let csf = page(&server, "/api/v1/admin/evidence/csf.html");
    for text in [
        "PR.AA-01",
        "PR.AA-02",
        "PR.AA-03",
        "PR.AA-05",
        "person.offboarded",
        "credential.enrolled",
        "intact",
    ] {
        assert!(csf.contains(text), "CSF page shows {text}");
    }
    let (w, h) = screenshot(&csf, "admin-csf-evidence.png");
    assert_eq!(w, 1280);
    assert!(h >= 1000, "{h}");

    let dormant = page(&server, "/api/v1/admin/reports/dormant-access.html");
    assert!(
        dormant.contains("1 person who left still has live access"),
        "{dormant}"
    );
    assert!(dormant.contains("ada@example.com"));
    assert!(dormant.contains("scim.active_false"));
    screenshot(&dormant, "admin-dormant-access.png");

    // Without a token: the JSON error, no page.
    let resp =
        reqwest::blocking::get(format!("{}/api/v1/admin/evidence/csf.html", server.url)).unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}
