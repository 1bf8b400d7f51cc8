//! The web console: the first admin's setup link, staff signing in with their own passkey, the
//! role matrix shared with the API, fresh touches for sensitive actions, roles that end when
//! their person leaves, and the daily snapshots behind the burn-down. WebAuthn answers come from
//! the software key (test/demo); Chromium's own passkeys are in the end-to-end browser tests.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{assert_error, enrol_first_keys, App, Browser, SoftKey};
use keywarden_server::console::{setup, snapshots};
use serde_json::{json, Value};

both_backends!(
    setup_link_makes_one_first_admin,
    staff_sign_in_answers_to_the_role_matrix,
    sensitive_actions_need_a_fresh_touch,
    roles_go_to_hr_people_and_end_when_they_leave,
    burn_down_follows_the_daily_snapshots,
    policy_change_previews_who_falls_out,
    laptops_page_lists_posture_and_retires,
    laptop_pages_show_the_screen_lock_and_platform_protections,
    audit_and_keys_pages_for_auditors,
    exceptions_page_flags_expiry_and_revokes,
    on_key_policy_is_recorded_and_shown_per_model_and_person,
);

/// A setup link as the service writes it at first start.
async fn setup_link(app: &App) -> String {
    let url = setup::issue_link(&app.state.db, common::ORIGIN, app.now(), |_| Ok(()))
        .await
        .unwrap()
        .expect("no admin yet");
    url.split_once("#code=").unwrap().1.to_owned()
}

/// Walk the setup page: name yourself, make a passkey with `key`.
async fn run_setup(
    app: &App,
    browser: &mut Browser,
    code: &str,
    user_name: &str,
    key: &SoftKey,
) -> (StatusCode, Value) {
    let body = json!({"code": code, "user_name": user_name, "display_name": "First Admin"});
    let (s, begin) = browser.post(app, "/api/v1/console/setup/begin", body).await;
    if s != StatusCode::CREATED {
        return (s, begin);
    }
    let credential = key.browser_create_as(&begin["public_key"], "cross-platform", &["usb"]);
    let body = json!({"challenge_id": begin["challenge_id"], "credential": credential});
    browser
        .post(app, "/api/v1/console/setup/finish", body)
        .await
}

/// The first admin, set up and signed in: their browser and key.
async fn first_admin(app: &App) -> (Browser, SoftKey) {
    let code = setup_link(app).await;
    let mut browser = Browser::new();
    let key = SoftKey::new();
    let (s, v) = run_setup(app, &mut browser, &code, "root@example.com", &key).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (browser, key)
}

/// A person from the HR feed with a key, holding `role` (granted by the first admin), signed in.
async fn staff_member(
    app: &App,
    admin: &Browser,
    role: &str,
    user_name: &str,
) -> (Browser, SoftKey, String) {
    let laptop = app.device(&format!("lt-{user_name}")).await;
    let person = app.hr_person(user_name).await;
    let key = SoftKey::new();
    enrol_first_keys(app, &laptop, &person, &[&key]).await;
    let (s, v) = set_role(app, admin, &person, role).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut browser = Browser::new();
    let (s, v) = browser.assert_with(app, "sign-in", &key).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (browser, key, person)
}

/// A console caller gives `person` the staff role `role`.
async fn set_role(app: &App, browser: &Browser, person: &str, role: &str) -> (StatusCode, Value) {
    let path = format!("/api/v1/admin/staff/{person}");
    browser.call(app, "PUT", &path, json!({"role": role})).await
}

/// A console caller previews a population's change.
async fn preview(app: &App, browser: &Browser, name: &str, spec: Value) -> (StatusCode, Value) {
    let path = format!("/api/v1/admin/populations/{name}/preview");
    browser.call(app, "POST", &path, spec).await
}

/// A console caller's enrolment ticket for the person `body` names.
async fn issue_ticket(app: &App, browser: &Browser, body: &Value) -> (StatusCode, Value) {
    let path = "/api/v1/admin/enrolment-tickets";
    browser.call(app, "POST", path, body.clone()).await
}

/// A list exported as CSV at `path` (`format=csv`), by `browser`: it opens with `header`.
async fn csv_export(app: &App, browser: &Browser, path: &str, header: &str) -> String {
    let (s, csv) = browser.get(app, path).await;
    assert_eq!(s, StatusCode::OK, "{csv}");
    assert!(csv.starts_with(header), "{csv}");
    csv
}

/// `browser` asks for an enrolment ticket for `person` and is refused (403 `code`): none issued.
async fn ticket_refused(app: &App, browser: &Browser, person: &str, code: &str) {
    let (s, v) = issue_ticket(app, browser, &json!({"person_id": person})).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, code);
    let sql = format!("SELECT COUNT(*) FROM enrolment_tickets WHERE person_id = '{person}'");
    assert_eq!(app.count(&sql).await, 0, "no ticket was issued");
}

async fn setup_link_makes_one_first_admin(app: App) {
    let code = setup_link(&app).await;
    // A wrong code, or a page on another site, gets nothing.
    let mut stranger = Browser::new();
    let (s, v) = run_setup(
        &app,
        &mut stranger,
        "kwsetup_wrong",
        "x@example.com",
        &SoftKey::new(),
    )
    .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "setup_link_unknown");
    let mut elsewhere = Browser::new();
    elsewhere.origin = Some("https://evil.example".to_owned());
    let (s, v) = run_setup(
        &app,
        &mut elsewhere,
        &code,
        "x@example.com",
        &SoftKey::new(),
    )
    .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "csrf_refused");
    assert_eq!(app.count("SELECT COUNT(*) FROM staff_roles").await, 0);

    let mut browser = Browser::new();
    let key = SoftKey::new();
    let (s, v) = run_setup(&app, &mut browser, &code, "root@example.com", &key).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["person"]["user_name"], "root@example.com");
    let (s, page) = browser.get(&app, "/console").await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(
        page.contains("Overview") && page.contains("First Admin"),
        "{page}"
    );
    assert_eq!(
        app.rows("SELECT source FROM people WHERE user_name = 'root@example.com'")
            .await,
        ["setup"]
    );
    app.assert_audited(&[
        "console_setup.issued",
        "staff_role.granted",
        "person.signed_in",
    ])
    .await;

    // Used once; and no second setup while an admin exists, even with a new link.
    let (s, v) = run_setup(
        &app,
        &mut Browser::new(),
        &code,
        "y@example.com",
        &SoftKey::new(),
    )
    .await;
    assert_error(s, &v, StatusCode::CONFLICT, "setup_done");
    assert!(
        setup::issue_link(&app.state.db, common::ORIGIN, app.now(), |_| Ok(()))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM staff_roles").await, 1);
}

async fn staff_sign_in_answers_to_the_role_matrix(app: App) {
    let (admin, _) = first_admin(&app).await;
    let (auditor, _, _) = staff_member(&app, &admin, "auditor", "audrey@example.com").await;
    let (helpdesk, _, _) = staff_member(&app, &admin, "helpdesk", "hal@example.com").await;
    let someone = app.hr_person("sam@example.com").await;

    // Every role reads the overview; only admins and auditors the staff list.
    for b in [&admin, &auditor, &helpdesk] {
        let (s, page) = b.get(&app, "/console").await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert!(page.contains("People below policy"), "{page}");
    }
    let (s, page) = helpdesk.get(&app, "/console/staff").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(page.contains("role_forbidden"), "{page}");
    let (s, _) = auditor.get(&app, "/console/staff").await;
    assert_eq!(s, StatusCode::OK);
    // An auditor cannot issue a ticket; the help desk can (fresh after signing in).
    ticket_refused(&app, &auditor, &someone, "role_forbidden").await;
    let body = json!({"person_id": someone});
    let (s, v) = issue_ticket(&app, &helpdesk, &body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let actors = app
        .rows(&format!(
            "SELECT actor FROM audit_log WHERE action = 'ticket.issued' AND subject = '{someone}'"
        ))
        .await;
    assert_eq!(actors.len(), 1, "{actors:?}");
    assert!(actors[0].starts_with("helpdesk-console:"), "{actors:?}");
    // The person's page lists the ticket (never its secret) with who issued it.
    let (_, page) = helpdesk
        .get(&app, &format!("/console/people/{someone}"))
        .await;
    assert!(
        page.contains("Enrolment tickets") && page.contains(&actors[0]),
        "{page}"
    );
    assert!(page.contains(">open<") && !page.contains("kwt_"), "{page}");

    // Not signed in: the pages send you to sign in, the API says 401.
    let (s, _) = Browser::new().get(&app, "/console").await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    // A person without a staff role, signed in with their passkey, reaches nothing.
    let (_, _, plain) = {
        let laptop = app.device("lt-plain").await;
        let key = SoftKey::new();
        enrol_first_keys(&app, &laptop, &someone, &[&key]).await;
        let mut b = Browser::new();
        let (s, v) = b.assert_with(&app, "sign-in", &key).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (key, laptop, b)
    };
    let (s, body) = plain.get(&app, "/api/v1/admin/people").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("no_staff_role"), "{body}");
    // A session opened with an enrolment link (no passkey) never reaches the console, even for
    // staff.
    let hal = app
        .rows("SELECT id FROM people WHERE user_name = 'hal@example.com'")
        .await;
    let new_person = app.hr_person("new@example.com").await;
    let ticket_session = Browser::with_ticket_for(&app, &new_person).await;
    let (s, body) = ticket_session.get(&app, "/api/v1/admin/people").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("console_passkey_required"), "{body}");
    assert_eq!(hal.len(), 1);

    // A change without the page's CSRF token, or from another site, changes nothing.
    let mut no_token = admin.clone();
    no_token.csrf = String::new();
    let mut other_site = admin.clone();
    other_site.origin = Some("https://evil.example".to_owned());
    let path = format!("/api/v1/admin/staff/{someone}");
    for browser in [no_token, other_site] {
        let (s, v) = browser
            .call(&app, "PUT", &path, json!({"role": "admin"}))
            .await;
        assert_error(s, &v, StatusCode::FORBIDDEN, "csrf_refused");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM staff_roles").await, 3);
}

async fn sensitive_actions_need_a_fresh_touch(mut app: App) {
    let (admin, _) = first_admin(&app).await;
    let (mut helpdesk, key, _) = staff_member(&app, &admin, "helpdesk", "hal@example.com").await;
    let person = app.hr_person("pat@example.com").await;
    // Six minutes after signing in: reading works, issuing does not until the key is touched.
    let later = app.now() + 6 * 60 * 1000;
    app.set_clock(later).await;
    let (s, _) = helpdesk.get(&app, "/console/people").await;
    assert_eq!(s, StatusCode::OK);
    ticket_refused(&app, &helpdesk, &person, "fresh_touch_required").await;
    let body = json!({"person_id": person});
    let (s, v) = helpdesk.assert_with(&app, "step-up", &key).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = issue_ticket(&app, &helpdesk, &body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // A bearer token is a script's: it has no key to touch, and is not asked to.
    let (s, v) = app.ticket(&person).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn roles_go_to_hr_people_and_end_when_they_leave(app: App) {
    let (admin, _) = first_admin(&app).await;
    // Someone an admin typed in by hand holds no role.
    let made = app
        .as_admin(
            "POST",
            "/api/v1/admin/people",
            Some(json!({"user_name": "fake@example.com", "display_name": "Fake"})),
            StatusCode::CREATED,
        )
        .await;
    let fake = made["id"].as_str().unwrap();
    let (s, v) = set_role(&app, &admin, fake, "helpdesk").await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "token_person_not_from_hr");
    let root = app
        .rows("SELECT id FROM people WHERE user_name = 'root@example.com'")
        .await;
    // The last admin keeps the role.
    let (s, v) = admin
        .call(
            &app,
            "DELETE",
            &format!("/api/v1/admin/staff/{}", root[0]),
            Value::Null,
        )
        .await;
    assert_error(s, &v, StatusCode::CONFLICT, "last_admin");
    let (s, v) = set_role(&app, &admin, &root[0], "scim").await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "staff_role_invalid");

    let (helpdesk, _, hal) = staff_member(&app, &admin, "helpdesk", "hal@example.com").await;
    let (s, _) = helpdesk.get(&app, "/console").await;
    assert_eq!(s, StatusCode::OK);
    // Hal leaves: the HR feed deactivates him; his role and session end with it.
    app.hr_feed().await.deactivate(&hal).await;
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM staff_roles WHERE person_id = '{hal}'"
        ))
        .await,
        0
    );
    let (s, _) = helpdesk.get(&app, "/console").await;
    assert_eq!(
        s,
        StatusCode::SEE_OTHER,
        "his session ended: back to sign-in"
    );
    let (s, body) = helpdesk.get(&app, "/api/v1/admin/people").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    app.assert_audited(&["staff_role.removed"]).await;
    // Nothing of his opens a door (his key waits at the reclaim station, as any leaver's).
    let dormant = app.dormant_access().await;
    for p in dormant["people"].as_array().unwrap() {
        assert_eq!(p["web_sessions"], json!([]), "{dormant}");
        assert_eq!(p["tokens"], json!([]), "{dormant}");
        assert_eq!(p["credentials"], json!([]), "{dormant}");
    }
}

async fn burn_down_follows_the_daily_snapshots(mut app: App) {
    let (mut admin, admin_key) = first_admin(&app).await;
    let laptop = app.device("lt-burn").await;
    let people: Vec<String> = futures_people(&app, 4).await;
    let day = 86_400_000;
    let min = app.state.settings.min_authenticators;
    // Day 1: nobody has a key. Days 2 to 4: one more person covered each day.
    assert!(snapshots::tick(&app.state.db, app.now(), min)
        .await
        .unwrap());
    assert!(
        !snapshots::tick(&app.state.db, app.now(), min)
            .await
            .unwrap(),
        "one snapshot a day"
    );
    for (i, p) in people[..3].iter().enumerate() {
        let now = app.now() + day;
        if i == 0 {
            // A named admin's token replaces the first-start one (which lives a day).
            app.set_clock(now).await;
        } else {
            app.clock.0.store(now, std::sync::atomic::Ordering::SeqCst);
        }
        let (a, b) = (SoftKey::new(), SoftKey::new());
        enrol_first_keys(&app, &laptop, p, &[&a, &b]).await;
        assert!(snapshots::tick(&app.state.db, app.now(), min)
            .await
            .unwrap());
    }
    let series = snapshots::series(&app.state.db, app.now(), 30)
        .await
        .unwrap();
    // `set_clock` added a named admin on day 2, below policy like anyone without keys.
    let below: Vec<i64> = series.iter().map(|d| d.below).collect();
    assert_eq!(series.len(), 4, "{series:?}");
    assert!(below.windows(2).all(|w| w[1] < w[0] + 1), "{below:?}");
    assert!(below[3] < below[0], "{below:?}");
    // Someone new since the last hourly marks: below policy, not marked yet.
    app.hr_person("late@example.com").await;
    // Days later the admin signs in again.
    let (s, v) = admin.assert_with(&app, "sign-in", &admin_key).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, page) = admin.get(&app, "/console").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("data-days=\"4\""), "{page}");
    // The person still without keys has been below policy since day 1, and is listed before
    // the one who is new (no mark yet); those covered since are not listed.
    assert!(page.contains("3 d"), "{page}");
    let listed = |name: &str| page.find(&format!(">{name}</a>"));
    let (oldest, newest) = (listed("burn-3@example.com"), listed("late@example.com"));
    assert!(oldest.is_some() && newest.is_some(), "{page}");
    assert!(oldest < newest, "{page}");
    assert!(page.contains("&lt; 1 h"), "{page}");
    assert_eq!(listed("burn-0@example.com"), None, "{page}");
    let csv = csv_export(
        &app,
        &admin,
        "/console/people?format=csv&exposed=1",
        "user_name,population,status",
    )
    .await;
    assert!(csv.contains("burn-3@example.com"), "{csv}");
    assert!(!csv.contains("burn-0@example.com"), "{csv}");
}

async fn futures_people(app: &App, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(app.hr_person(&format!("burn-{i}@example.com")).await);
    }
    out
}

async fn policy_change_previews_who_falls_out(app: App) {
    let (admin, _) = first_admin(&app).await;
    let laptop = app.device("lt-pol").await;
    let spec = |classes: u32| {
        json!({"priority": 10, "selector": {"kind": "attribute", "key": "department", "value": "Ops"},
               "policy": {"min_authenticators": 2, "min_device_classes": classes}})
    };
    app.population("ops", "Ops", spec(1)["policy"].clone())
        .await;
    let covered = app.hr_person_in("kim@example.com", "Ops").await;
    enrol_first_keys(&app, &laptop, &covered, &[&SoftKey::new(), &SoftKey::new()]).await;
    app.hr_person_in("lee@example.com", "Ops").await;
    let before = app.count("SELECT COUNT(*) FROM audit_log").await;
    let stored = app
        .rows("SELECT policy FROM populations WHERE name = 'ops'")
        .await;

    // Two kinds of device: Kim (two keys of one kind) would fall out; Lee was never in.
    let (s, v) = preview(&app, &admin, "ops", spec(2)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["falling_out_count"], 1, "{v}");
    assert_eq!(v["falling_out"][0]["user_name"], "kim@example.com", "{v}");
    assert_eq!(v["falling_out"][0]["after"], "single_device_class", "{v}");
    assert_eq!(v["coming_in_count"], 0, "{v}");
    assert_eq!(
        v["compliant_after"].as_u64().unwrap() + 1,
        v["compliant_now"].as_u64().unwrap()
    );
    // A preview saves nothing and records nothing.
    assert_eq!(
        app.rows("SELECT policy FROM populations WHERE name = 'ops'")
            .await,
        stored
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_log").await, before);
    // Only admins preview (it reads everyone's standing), and a bad definition is refused.
    let (auditor, _, _) = staff_member(&app, &admin, "auditor", "aud@example.com").await;
    let (s, v) = preview(&app, &auditor, "ops", spec(2)).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "role_forbidden");
    let (s, v) = preview(&app, &admin, "default", spec(2)).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "population_name_invalid");
    let (s, page) = admin.get(&app, "/console/policy").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains("Preview impact") && page.contains("ops"),
        "{page}"
    );
    let (s, page) = auditor.get(&app, "/console/policy").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        !page.contains("Preview impact"),
        "an auditor reads the rules, edits nothing"
    );
}

async fn laptop_pages_show_the_screen_lock_and_platform_protections(app: App) {
    let (admin, _) = first_admin(&app).await;
    let mac = app.device("mac-locks").await;
    let mut body = common::report_body(app.now(), true);
    body["posture"]["screen_lock"] = json!({"state": "known", "value": true});
    body["posture"]["screen_lock_delay_secs"] = json!({"state": "known", "value": 305});
    body["posture"]["integrity_protection"] = json!({"state": "known", "value": false,
        "detail": "System Integrity Protection disabled"});
    body["posture"]["malware_protection"] = json!({"state": "unknown", "reason": "real-time malware protection is not probed on macos"});
    let (s, v) = mac.signed(&app, "/api/v1/agent/reports", &body).await;
    assert!(s.is_success(), "{v}");
    let old = app.device("old-agent").await;
    assert!(old.report(&app, true).await.0.is_success());

    let (_, list) = admin.get(&app, "/console/laptops").await;
    let row = |host: &str| {
        let at = list.find(host).unwrap();
        list[at..at + list[at..].find("</tr>").unwrap()].to_owned()
    };
    assert!(row("mac-locks").contains("on</span> after 305 s"), "{list}");
    assert!(
        row("old-agent").contains(">unknown<"),
        "an older agent's lock is unknown: {list}"
    );
    let (_, page) = admin
        .get(&app, &format!("/console/laptops/{}", mac.id))
        .await;
    let history = &page[page.find("posture-history").unwrap()..];
    assert!(history.contains("integrity protection <span"), "{history}");
    assert!(
        !history.contains("malware protection"),
        "not read on this system: {history}"
    );
    let (_, page) = admin
        .get(&app, &format!("/console/laptops/{}", old.id))
        .await;
    assert!(page.contains("none read"), "{page}");
    let csv = csv_export(
        &app,
        &admin,
        "/console/laptops?q=mac-locks&format=csv",
        "hostname,last_check_in,disk_encryption,firewall,secure_boot,screen_lock,screen_lock_delay_secs,",
    )
    .await;
    assert!(csv.contains(",true,305,"), "{csv}");
}

async fn laptops_page_lists_posture_and_retires(app: App) {
    let (admin, _) = first_admin(&app).await;
    let (helpdesk, _, _) = staff_member(&app, &admin, "helpdesk", "hal@example.com").await;
    let (auditor, _, _) = staff_member(&app, &admin, "auditor", "aud@example.com").await;
    let laptop = app.device("lt-stolen").await;
    let (s, page) = helpdesk.get(&app, "/console/laptops").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains("lt-stolen") && page.contains("no report yet"),
        "{page}"
    );
    assert!(page.contains("Retire"), "{page}");
    // Its posture history: encrypted, then not.
    let (s, v) = laptop.report(&app, true).await;
    assert!(s.is_success(), "{v}");
    app.clock
        .0
        .fetch_add(60_000, std::sync::atomic::Ordering::SeqCst);
    let (s, v) = laptop.report(&app, false).await;
    assert!(s.is_success(), "{v}");
    let path = format!("/console/laptops/{}", laptop.id);
    let (s, page) = helpdesk.get(&app, &path).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("(2 reports)"), "{page}");
    let history = &page[page.find("posture-history").unwrap()..];
    let (off, on) = (
        history.find(">off<").unwrap(),
        history.find(">on<").unwrap(),
    );
    assert!(
        off < on,
        "newest first: encryption off now, on before: {history}"
    );
    let (s, _) = helpdesk.get(&app, "/console/laptops/no-such-laptop").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, page) = auditor.get(&app, "/console/laptops").await;
    assert!(
        page.contains("lt-stolen") && !page.contains(">Retire<"),
        "{page}"
    );
    // The help desk retires it (just signed in: the touch is fresh); its key stops working.
    let path = format!("/api/v1/admin/devices/{}/retire", laptop.id);
    let (s, v) = auditor
        .call(&app, "POST", &path, json!({"reason": "lost"}))
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "role_forbidden");
    let (s, v) = helpdesk
        .call(&app, "POST", &path, json!({"reason": "lost"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, page) = admin.get(&app, "/console/laptops").await;
    assert!(page.contains("retired (lost)"), "{page}");
    // Filtered on the server, and as CSV.
    let (_, page) = admin.get(&app, "/console/laptops?state=in_service").await;
    assert!(
        !page.contains("lt-stolen") && page.contains("lt-hal@example.com"),
        "{page}"
    );
    let csv = csv_export(
        &app,
        &admin,
        "/console/laptops?q=stolen&format=csv",
        "hostname,last_check_in,disk_encryption",
    )
    .await;
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.contains("lt-stolen") && csv.contains(",lost"), "{csv}");
}

async fn audit_and_keys_pages_for_auditors(app: App) {
    let (admin, _) = first_admin(&app).await;
    let (auditor, _, _) = staff_member(&app, &admin, "auditor", "aud@example.com").await;
    let (helpdesk, _, _) = staff_member(&app, &admin, "helpdesk", "hal@example.com").await;
    let (s, page) = auditor.get(&app, "/console/audit").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("The hash chain is intact"), "{page}");
    assert!(
        page.contains("staff_role.granted") && page.contains("scim.user.created"),
        "{page}"
    );
    // Filtered on the server: only the actions asked for.
    let (_, page) = auditor.get(&app, "/console/audit?q=staff_role.").await;
    assert!(
        page.contains("staff_role.granted") && !page.contains("scim.user.created"),
        "{page}"
    );
    // The filter is text, not a pattern: `%` matches nothing but a `%`.
    let (_, page) = auditor.get(&app, "/console/audit?q=%25").await;
    assert!(page.contains("(0 records)"), "{page}");
    let csv = csv_export(
        &app,
        &auditor,
        "/console/audit?q=staff_role.&format=csv",
        "at,actor,action,subject,detail\n",
    )
    .await;
    assert_eq!(csv.lines().count(), 1 + 3, "three roles granted: {csv}");
    let (s, page) = auditor.get(&app, "/console/keys").await;
    assert_eq!(s, StatusCode::OK);
    // The staff's software keys (test/demo) attest with a batch certificate.
    assert!(page.contains("packed (basic)"), "{page}");
    assert!(page.contains("On-key PIN rules by population"), "{page}");
    assert!(
        page.contains("Trusted attestation roots") && page.contains("software"),
        "{page}"
    );
    for path in ["/console/audit", "/console/keys"] {
        let (s, page) = helpdesk.get(&app, path).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
        assert!(page.contains("role_forbidden"), "{page}");
    }
}

async fn exceptions_page_flags_expiry_and_revokes(app: App) {
    let (admin, _) = first_admin(&app).await;
    let (helpdesk, _, _) = staff_member(&app, &admin, "helpdesk", "hal@example.com").await;
    let person = app.hr_person("ex@example.com").await;
    let body = json!({"person_id": person, "kind": "two_authenticator_rule", "owner": "ciso@example.com",
        "reason": "travelling without a second key", "days": 3});
    let (s, v) = admin
        .call(&app, "POST", "/api/v1/admin/exceptions", body)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let (s, page) = helpdesk.get(&app, "/console/exceptions").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains("travelling without a second key") && page.contains("expires soon"),
        "{page}"
    );
    assert!(
        !page.contains(">Revoke<"),
        "the help desk reads the register, revokes nothing"
    );
    let (_, page) = admin.get(&app, "/console/exceptions").await;
    assert!(page.contains(">Revoke<"), "{page}");
    let path = format!("/api/v1/admin/exceptions/{id}");
    let (s, v) = helpdesk.call(&app, "DELETE", &path, Value::Null).await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "role_forbidden");
    let (s, _) = admin.call(&app, "DELETE", &path, Value::Null).await;
    assert!(s.is_success(), "{s}");
    let (_, page) = admin.get(&app, "/console/exceptions").await;
    assert!(page.contains(">revoked<"), "{page}");
    let (_, page) = admin.get(&app, "/console/exceptions?state=in_force").await;
    assert!(!page.contains("travelling without a second key"), "{page}");
    let csv = csv_export(
        &app,
        &admin,
        "/console/exceptions?state=revoked&format=csv",
        "person_id,kind,owner,reason,expires,revoked\n",
    )
    .await;
    assert!(csv.contains("travelling without a second key"), "{csv}");
}

/// Finish the ceremony `begun` with what the key `made`; returns what the service recorded the
/// key enforces.
async fn finish_made(app: &App, laptop: &common::Device, begun: &Value, made: &Value) -> Value {
    let path = format!(
        "/api/v1/agent/ceremonies/{}/finish",
        begun["ceremony_id"].as_str().unwrap()
    );
    let (s, v) = laptop.signed(app, &path, made).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["credential"]["on_key"].clone()
}

/// A population's on-key policy (minimum PIN length 8, the PIN for every use) goes to the
/// agent with the ceremony; a key the agent configured is recorded with what it enforces, and
/// one that was not configured (an older agent, a key that cannot take it) is enrolled when it
/// meets the rest of the policy and shown below the on-key part, per person and per model.
async fn on_key_policy_is_recorded_and_shown_per_model_and_person(app: App) {
    let (admin, _) = first_admin(&app).await;
    let body = json!({"priority": 10,
        "selector": {"kind": "attribute", "key": "department", "value": "research"},
        "policy": {"always_uv": true, "min_pin_length": 8, "min_authenticators": 1}});
    let (s, v) = admin
        .call(&app, "PUT", "/api/v1/admin/populations/research", body)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, page) = admin.get(&app, "/console/policy").await;
    assert!(
        page.contains("set on each key at enrolment: minimum PIN length 8, the PIN for every use"),
        "{page}"
    );
    let person = app.hr_person_in("kim@example.com", "research").await;
    let laptop = app.device("pc-kim").await;
    let (s, begun) = common::begin(&app, &laptop, &app.ticket_secret(&person).await).await;
    assert_eq!(s, StatusCode::CREATED, "{begun}");
    assert_eq!(
        begun["key_policy"],
        json!({"min_pin_length": 8, "always_uv": true})
    );

    // The agent sets both on the key; the minimum raised above the PIN's length makes the key
    // ask for a new PIN, which the agent takes before making the credential.
    let key = SoftKey::new();
    let made = key.make_credential_applying_policy(&begun, "123456", "12345678");
    assert_eq!(made["key"]["min_pin_length"], 8, "{made}");
    let on_key = finish_made(&app, &laptop, &begun, &made).await;
    assert_eq!(on_key, json!({"min_pin_length": 8, "always_uv": true}));

    // A second key whose agent left alwaysUv off: enrolled (the minimum is attested), shown
    // as below the on-key policy.
    let (s, next) = common::next_ceremony(&app, &laptop, &begun).await;
    assert_eq!(s, StatusCode::CREATED, "{next}");
    let second = SoftKey::new();
    let mut only_min = next.clone();
    only_min["key_policy"] = json!({"min_pin_length": 8});
    let made = second.make_credential_applying_policy(&only_min, "12345678", "12345678");
    let on_key = finish_made(&app, &laptop, &next, &made).await;
    assert_eq!(on_key, json!({"min_pin_length": 8, "always_uv": false}));

    let (s, page) = admin.get(&app, &format!("/console/people/{person}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains("PIN of at least 8, PIN for every use<"),
        "{page}"
    );
    assert_eq!(
        page.matches("below policy: PIN not asked for every use")
            .count(),
        1,
        "{page}"
    );
    let (_, page) = admin.get(&app, "/console/keys").await;
    assert!(page.contains("PIN for every use (alwaysUv)</th>"), "{page}");
    // The two research keys' model row: both at 8, one of two with alwaysUv (the admin's own
    // key, enrolled in the browser, records nothing and has a row of its own).
    assert!(page.contains("<td>8</td><td>1 of 2</td>"), "{page}");
}
