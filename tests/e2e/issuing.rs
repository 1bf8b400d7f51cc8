//! IT issues keys for people (`keywarden issue`) at an issuing station: 20 people from a CSV
//! list, a software key (test/demo) each, with the real service and agent binaries. The
//! handover sheets and PIN sheets are read back with poppler's `pdftotext` and rendered with
//! `pdftoppm` to `target/debug/screenshots/issuing/`. The PINs appear on the PIN sheets and
//! nowhere else: not in the agent's output, the service's output (logged at debug level), or
//! the audit log. A laptop that is not a station, and a list with a wrong row, issue nothing.

use std::path::Path;
use std::process::Command;

use keywarden_e2e::*;
use serde_json::json;

const STAFF_PIN: &str = "24681357";
const PEOPLE: usize = 20;

fn pdftotext(pdf: &Path) -> String {
    let out = Command::new("pdftotext")
        .args(["-layout"])
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is installed");
    assert!(out.status.success(), "pdftotext {}", pdf.display());
    String::from_utf8(out.stdout).unwrap()
}

fn pdftoppm(pdf: &Path, png_stem: &Path) {
    let out = Command::new("pdftoppm")
        .args(["-png", "-r", "60", "-singlefile"])
        .arg(pdf)
        .arg(png_stem)
        .output()
        .expect("pdftoppm (poppler-utils) is installed");
    assert!(out.status.success(), "pdftoppm {}", pdf.display());
}

/// The PIN a PIN sheet's text carries.
fn pin_on(text: &str) -> String {
    let after = text.split("PIN:").nth(1);
    let pin = after.and_then(|rest| rest.split_whitespace().next());
    pin.unwrap_or_else(|| panic!("no PIN on the sheet: {text}"))
        .to_owned()
}

/// Which soft keys have a PIN set (a blank key has none).
fn pins_set(laptop: &Laptop) -> Vec<bool> {
    laptop
        .soft_keys
        .iter()
        .map(|k| {
            keywarden_keys::soft::SoftKey::open(k)
                .unwrap()
                .key_info()
                .pin_set
        })
        .collect()
}

/// What issuing may change on the service, for "nothing was issued" checks.
fn issued_state(server: &Server) -> Vec<Vec<String>> {
    let snap = server.snapshot();
    [
        "credentials",
        "issued_keys",
        "issuing_sessions",
        "issuing_session_people",
        "enrolment_sessions",
    ]
    .iter()
    .map(|t| snap.get(*t).cloned().unwrap_or_default())
    .collect()
}

#[test]
fn twenty_people_from_a_csv_get_keys_sheets_and_pins_that_never_leak() {
    let server = Server::start_logged(&[]);
    server.population(
        "sales",
        10,
        "Sales",
        json!({"min_authenticators": 1, "min_pin_length": 10}),
    );
    let hr = server.hr_feed();
    // The staff member: a help-desk role granted by an admin, their own key enrolled.
    let staff = hr.create_user("desk@example.com", "Dana Desk", "IT");
    let (s, v) = server.admin(
        "PUT",
        &format!("/api/v1/admin/staff/{staff}"),
        Some(json!({"role": "helpdesk"})),
    );
    assert_eq!(s, 200, "{v}");
    let station = Laptop::new(PEOPLE + 1);
    let station_id = station.provision(&server);
    let staff_key = keywarden_keys::soft::SoftKey::open(&station.soft_keys[0])
        .unwrap()
        .id();
    station.enrol(
        &server.ticket(&staff, None),
        &[&staff_key],
        &format!("{STAFF_PIN}\n"),
    );
    let mut csv = String::from("user_name\n");
    let mut people = Vec::new();
    for i in 1..=PEOPLE {
        people.push(hr.create_user(
            &format!("person{i:02}@example.com"),
            &format!("Person {i:02}"),
            "Sales",
        ));
        csv.push_str(&format!("person{i:02}@example.com\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("people.csv");
    std::fs::write(&list, &csv).unwrap();
    let out = dir.path().join("sheets");
    let issue = |list: &Path| {
        station.run(
            &[
                "issue",
                "--csv",
                list.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--staff-key",
                &staff_key,
                "--pin-stdin",
            ],
            Some(&format!("{STAFF_PIN}\n")),
        )
    };

    // Refused, naming why: nothing issued, no key touched.
    let refuses = |list: &Path, says: &[&str]| {
        let before = issued_state(&server);
        let out = issue(list);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        for s in says {
            assert!(err.contains(s), "{s}: {err}");
        }
        assert_eq!(
            issued_state(&server),
            before,
            "a refused issue changes nothing"
        );
        assert_eq!(pins_set(&station)[1..], vec![false; PEOPLE]);
    };
    // Not yet an issuing station.
    refuses(&list, &["not an IT issuing station"]);
    let (s, v) = server.admin(
        "POST",
        &format!("/api/v1/admin/devices/{station_id}/issuing-station"),
        Some(json!({"enabled": true})),
    );
    assert_eq!(s, 200, "{v}");
    // A list with an unknown person and a repeated one: both rows named.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        format!("{csv}nobody@example.com\nperson03@example.com\n"),
    )
    .unwrap();
    refuses(
        &bad,
        &[
            "row 22: nobody has the userName",
            "row 23: person03@example.com is named again (first at row 4)",
        ],
    );

    // The bulk issue.
    let done = issue(&list);
    let stdout = String::from_utf8_lossy(&done.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&done.stderr).into_owned();
    assert!(
        done.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("20 key(s) issued to 20 people"), "{stdout}");
    assert_eq!(pins_set(&station), vec![true; PEOPLE + 1]);

    let shots = bin_dir().join("screenshots").join("issuing");
    std::fs::create_dir_all(&shots).unwrap();
    let (_, audit) = server.admin("GET", "/api/v1/admin/audit/export", None);
    let audit = audit.to_string();
    let service_output = server.output();
    assert!(
        service_output.lines().count() > 100,
        "the service's output was captured"
    );
    let credentials = server.credentials();
    for i in 1..=PEOPLE {
        let stem = format!("{:03}-person{i:02}-example-com", i + 1);
        let handover = out.join(format!("{stem}-handover.pdf"));
        let pin_sheet = out.join(format!("{stem}-pin-1.pdf"));
        let handover_text = pdftotext(&handover);
        let pin_text = pdftotext(&pin_sheet);
        let pin = pin_on(&pin_text);
        assert_eq!(
            pin.len(),
            10,
            "the population's minimum, over 8 digits: {pin}"
        );
        assert!(pin.chars().all(|c| c.is_ascii_digit()), "{pin}");
        let key_id = keywarden_keys::soft::SoftKey::open(&station.soft_keys[i])
            .unwrap()
            .id();
        for needle in [
            format!("Person {i:02} (person{i:02}@example.com)"),
            format!("({key_id})"),
            "Plug the key into your laptop".to_owned(),
            "Change the PIN".to_owned(),
            "Issued by IT (Dana Desk)".to_owned(),
        ] {
            assert!(
                handover_text.contains(&needle),
                "{needle} on the handover sheet: {handover_text}"
            );
        }
        assert!(
            pin_text.contains(&format!("Deliver to: Person {i:02}")),
            "{pin_text}"
        );
        assert!(pin_text.contains(&key_id), "{pin_text}");
        assert!(
            !pin_text.contains("example.com"),
            "the PIN sheet names no account: {pin_text}"
        );
        for (what, text) in [
            ("the handover sheet", handover_text.as_str()),
            ("the agent's output", stdout.as_str()),
            ("the agent's errors", stderr.as_str()),
            ("the service's output", service_output.as_str()),
            ("the audit log", audit.as_str()),
        ] {
            assert!(!text.contains(&pin), "PIN of person {i} in {what}");
        }
        // The key: the PIN works, the key demands a new one, the population's minimum is on it.
        let mut key = keywarden_keys::soft::SoftKey::open(&station.soft_keys[i]).unwrap();
        let info = key.key_info();
        assert_eq!(info.force_pin_change, Some(true), "person {i}");
        assert_eq!(info.min_pin_length, Some(10), "person {i}");
        assert!(key.verify_pin_hash(&sha256_16(&pin)).is_ok());
        if i <= 2 {
            pdftoppm(&handover, &shots.join(format!("handover-{i:02}")));
            pdftoppm(&pin_sheet, &shots.join(format!("pin-{i:02}")));
        }
    }
    // 20 issued credentials, organisation-owned, waiting for activation, one audit record each.
    let issued: Vec<_> = credentials
        .iter()
        .filter(|c| c["status"] == "issued")
        .collect();
    assert_eq!(issued.len(), PEOPLE, "{credentials:?}");
    assert_eq!(audit.matches("key.issued").count(), PEOPLE, "{audit}");
    assert_eq!(audit.matches("issuing.session_opened").count(), 1);
    let sheets = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(sheets, 2 * PEOPLE, "a handover sheet and a PIN sheet each");

    // Person 01 plugs their key into their own new laptop and changes the PIN, as the handover
    // sheet says: the key is active then.
    let pin = pin_on(&pdftotext(&out.join("002-person01-example-com-pin-1.pdf")));
    let laptop = Laptop {
        home: tempfile::tempdir().unwrap(),
        soft_keys: vec![station.soft_keys[1].clone()],
    };
    laptop.provision(&server);
    let key_id = laptop.key_ids().remove(0);
    let credential = issued
        .iter()
        .find(|c| c["person_id"] == people[0].as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let changed = laptop.run(
        &["change-pin", "--key", &key_id, "--pin-stdin"],
        Some(&format!("{pin}\n0246813579\n")),
    );
    let said = String::from_utf8_lossy(&changed.stderr).into_owned();
    assert!(changed.status.success(), "{said}");
    assert!(
        said.contains("issued to Person 01 by IT: it is active now"),
        "{said}"
    );
    assert_eq!(server.credential_status(&credential), "active");
    assert!(!said.contains(&pin));
}

/// The first 16 bytes of SHA-256 of the PIN: what a CTAP key checks a PIN against.
fn sha256_16(pin: &str) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(pin.as_bytes())[..16].to_vec()
}
