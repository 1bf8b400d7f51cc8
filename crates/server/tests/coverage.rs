//! Coverage: per person compliant / below minimum / single device class / no authenticator /
//! under exception; per population the share compliant; keys by model; posture by signal; as
//! the admin API answer and as `keywarden-server report ...` output.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{App, Device, SoftKey};
use keywarden_protocol::SOFT_KEY_AAGUID;
use keywarden_server::auth::Role;
use serde_json::{json, Value};

both_backends!(
    coverage_by_person_population_model_and_signal,
    a_bad_query_string_is_refused_in_the_error_shape
);

async fn enrol(app: &App, laptop: &Device, person: &str, keys: usize) {
    let keys: Vec<SoftKey> = (0..keys).map(|_| SoftKey::new()).collect();
    common::enrol_first_keys(app, laptop, person, &keys.iter().collect::<Vec<_>>()).await;
}

fn status_of<'a>(report: &'a Value, user: &str) -> &'a str {
    report["people"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user_name"] == user)
        .map(|p| p["status"].as_str().unwrap())
        .unwrap_or("absent")
}

async fn coverage_by_person_population_model_and_signal(app: App) {
    let laptop = app.device("pc-1").await;
    assert_eq!(laptop.report(&app, false).await.0, StatusCode::OK);
    let ann = app.hr_person("ann").await;
    let bob = app.person("bob").await;
    app.person("cy").await;
    let dee = app.person("dee").await;
    let eve = app.person("eve").await;
    let gone = app.person("zed").await;
    enrol(&app, &laptop, &ann, 2).await;
    enrol(&app, &laptop, &bob, 1).await;
    enrol(&app, &laptop, &eve, 2).await;
    // Contractors (a SCIM group) must hold a roaming hardware key; eve has two software keys.
    let hr = app.hr_feed().await;
    hr.create_group("Contractors", &[&eve]).await;
    let (s, v) = app
        .call("PUT", "/api/v1/admin/populations/contractors", &app.admin,
            Some(json!({"priority": 1, "selector": {"kind": "group", "value": "contractors"},
                        "policy": {"min_authenticators": 2, "required_device_classes": ["roaming"], "min_device_classes": 2}})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = app
        .call(
            "POST",
            "/api/v1/admin/exceptions",
            &app.admin,
            Some(
                json!({"person_id": dee, "owner": "it-lead", "reason": "key on order", "days": 7}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = hr.patch(&format!("/scim/v2/Users/{gone}"), json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "active", "value": "false"}]}))
        .await;
    assert_eq!(s, StatusCode::OK);

    // Ann audits too (a staff token is issued to a person; a new one would count here).
    let auditor = app.token_for(Role::Auditor, &ann).await;
    let (s, r) = app
        .call("GET", "/api/v1/admin/coverage", &auditor, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(status_of(&r, "ann"), "compliant");
    assert_eq!(status_of(&r, "bob"), "below_minimum");
    assert_eq!(status_of(&r, "cy"), "no_authenticator");
    assert_eq!(status_of(&r, "dee"), "under_exception");
    assert_eq!(status_of(&r, "eve"), "single_device_class");
    assert_eq!(
        status_of(&r, "zed"),
        "absent",
        "inactive people are not counted"
    );
    let pops = r["populations"].as_array().unwrap();
    let default = pops.iter().find(|p| p["name"] == "default").unwrap();
    assert_eq!(default["people"], 4);
    assert_eq!(default["compliant"], 1);
    assert_eq!(default["share_compliant"], 0.25);
    let contractors = pops.iter().find(|p| p["name"] == "contractors").unwrap();
    assert_eq!(contractors["people"], 1);
    assert_eq!(contractors["share_compliant"], 0.0);
    assert_eq!(r["keys_by_model"][0]["aaguid"], SOFT_KEY_AAGUID);
    assert_eq!(r["keys_by_model"][0]["credentials"], 5);
    assert_eq!(
        r["credentials_by_class"],
        json!({"software": 5}),
        "counted per class"
    );
    assert_eq!(r["synced_credentials"], 0);
    assert_eq!(contractors["people_by_class"], json!({"software": 1}));
    let signal = |name: &str| {
        let all = r["posture"].as_array().unwrap();
        all.iter().find(|s| s["signal"] == name).unwrap().clone()
    };
    assert_eq!(signal("disk_encryption")["non_compliant"], 1);
    assert_eq!(signal("firewall")["unknown"], 1);
    let (_, only) = app
        .call(
            "GET",
            "/api/v1/admin/coverage?status=below_minimum",
            &auditor,
            None,
        )
        .await;
    assert_eq!(only["people"].as_array().unwrap().len(), 1);
    let (s, v) = app
        .call("GET", "/api/v1/admin/coverage?status=bogus", &auditor, None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // The same from the command line.
    let run = |args: &[&str]| {
        let out = app.server_cli(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(&["report", "coverage"]);
    let default_line = text.lines().find(|l| l.starts_with("default")).unwrap();
    assert!(default_line.contains("25.0%"), "{text}");
    assert!(
        text.contains("below_minimum") && text.contains("under_exception"),
        "{text}"
    );
    let people = run(&["report", "people", "--status", "below_minimum"]);
    assert!(
        people.contains("bob") && !people.contains("ann"),
        "{people}"
    );
    // A value the command does not know is refused before anything runs, naming those it does.
    for (args, allowed) in [
        (
            &["report", "people", "--status", "bogus"][..],
            "compliant, below_minimum, single_device_class, no_authenticator, under_exception",
        ),
        (&["report", "csf", "--format", "pdf"][..], "json, html"),
        (
            &["issue-token", "--role", "root", "--label", "x"][..],
            "admin, helpdesk, auditor, scim",
        ),
        (
            &["device", "retire", "some-id", "--reason", "broken"][..],
            "retired, lost",
        ),
    ] {
        let out = app.server_cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            err.contains(&format!("[possible values: {allowed}]")),
            "{args:?}: {err}"
        );
    }
    let csf = run(&["report", "csf", "--format", "html"]);
    assert!(csf.trim_start().starts_with("<!doctype html>"), "{csf}");
    let keys = run(&["report", "keys"]);
    assert!(keys.contains(SOFT_KEY_AAGUID), "{keys}");
    let posture = run(&["report", "posture"]);
    assert!(
        posture.lines().any(|l| l.contains("disk_encryption")
            && l.split_whitespace().collect::<Vec<_>>() == ["disk_encryption", "0", "1", "0"]),
        "{posture}"
    );
}

/// Regression (found by the contract run, tests/contract): a query string that did not parse
/// (`?expired=null`) got axum's plain-text 400, not the service's error shape, and the
/// exceptions list did not document a 400 at all.
async fn a_bad_query_string_is_refused_in_the_error_shape(app: App) {
    for path in [
        "/api/v1/admin/exceptions?expired=null",
        "/api/v1/admin/exceptions?expired=true&expired=false",
        "/api/v1/admin/coverage?people=maybe",
    ] {
        let (s, ct, v) = app
            .raw("GET", path, Some(&app.admin), "application/json", vec![])
            .await;
        common::assert_error(s, &v, StatusCode::BAD_REQUEST, "query_invalid");
        assert_eq!(ct, "application/json", "{path}");
    }
    let (s, v) = app
        .call(
            "GET",
            "/api/v1/admin/exceptions?expired=true",
            &app.admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}
