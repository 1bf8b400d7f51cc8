//! SCIM 2.0 where Entra ID and Okta rely on RFC 7643/7644 beyond the basic conversation: every
//! attribute kept as sent, PUT replacing whole, unknown attributes refused with nothing applied,
//! `attributes` / `excludedAttributes` on reads, `Location` on create.
#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{App, ScimClient, ENTERPRISE, PATCH_OP};
use serde_json::{json, Value};
use tower::ServiceExt as _;

both_backends!(
    every_attribute_is_kept_and_returned_as_sent,
    put_replaces_complex_attributes_whole,
    unknown_attributes_are_refused_and_nothing_is_applied,
    attributes_and_excluded_attributes_on_every_read,
    create_answers_with_the_location_of_the_resource,
    people_provisioned_before_attributes_were_kept,
    names_beyond_ascii_are_answered_not_dropped,
);

/// A user as Entra ID or Okta sends it, with every core and enterprise attribute they map.
fn full_user(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": "00u7",
        "userName": user_name,
        "active": true,
        "displayName": "Katherine Johnson",
        "nickName": "Kate",
        "name": {"givenName": "Katherine", "familyName": "Johnson", "middleName": "Coleman",
                 "formatted": "Katherine Coleman Johnson", "honorificPrefix": "Dr."},
        "emails": [
            {"value": user_name, "type": "work", "primary": true},
            {"value": "kj@home.example", "type": "home", "primary": false},
        ],
        "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}, {"value": "+1 555 0199", "type": "mobile"}],
        "addresses": [{"type": "work", "streetAddress": "1 Langley Blvd", "locality": "Hampton",
                       "region": "VA", "postalCode": "23681", "country": "US", "primary": true}],
        "title": "Research Mathematician",
        "userType": "Employee",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "America/New_York",
        "password": "never-kept-Pa55",
        ENTERPRISE: {
            "employeeNumber": "E42",
            "costCenter": "CC-7",
            "organization": "NASA",
            "division": "Flight Research",
            "department": "Analysis",
            "manager": {"value": "m-77"},
        },
    })
}

/// Create [`full_user`] `user_name` over SCIM; returns the answer and the new id.
async fn create_full_user(hr: &ScimClient<'_>, user_name: &str) -> (Value, String) {
    let (s, created) = hr.post("/scim/v2/Users", full_user(user_name)).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    (created, id)
}

/// Each attribute of `sent` (except `password`, write-only) is in `got` with the same value.
fn assert_returned_as_sent(sent: &Value, got: &Value) {
    for (k, v) in sent.as_object().unwrap() {
        match k.as_str() {
            "password" => assert!(got.get("password").is_none(), "password returned: {got}"),
            "schemas" => {}
            ENTERPRISE => {
                for (ek, ev) in v.as_object().unwrap() {
                    assert_eq!(&got[ENTERPRISE][ek], ev, "{ENTERPRISE}:{ek} in {got}");
                }
            }
            _ => assert_eq!(&got[k], v, "{k} in {got}"),
        }
    }
}

async fn every_attribute_is_kept_and_returned_as_sent(app: App) {
    let hr = app.hr_feed().await;
    let sent = full_user("kj@example.com");
    let (s, created) = hr.post("/scim/v2/Users", sent.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_returned_as_sent(&sent, &created);
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, got) = hr.get(&format!("/scim/v2/Users/{id}")).await;
    assert_returned_as_sent(&sent, &got);
    let (_, listed) = hr
        .get("/scim/v2/Users?filter=userName%20eq%20%22kj%40example.com%22")
        .await;
    assert_returned_as_sent(&sent, &listed["Resources"][0]);
    // The password is neither returned nor stored.
    let stored = app
        .rows(&format!(
            "SELECT scim_attributes FROM people WHERE id = '{id}'"
        ))
        .await;
    assert!(!stored[0].contains("never-kept"), "{stored:?}");
    // The columns the service uses follow what was sent.
    assert_eq!(
        app.rows(&format!("SELECT user_name, display_name, external_id, department, user_type, employee_number, email FROM people WHERE id = '{id}'")).await,
        vec!["kj@example.com|Katherine Johnson|00u7|Analysis|Employee|E42|kj@example.com".to_owned()]
    );
    // Entra ID's PATCH: a mobile number by filtered path, the manager by id alone, a sub-attribute.
    let (s, u) = hr.patch(&format!("/scim/v2/Users/{id}"), json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0123"},
                {"op": "Add", "path": "phoneNumbers[type eq \"fax\"].value", "value": "+1 555 0111"},
                {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": "m-88"},
                {"op": "Replace", "path": "name.givenName", "value": "Katie"},
                {"op": "Replace", "path": format!("{ENTERPRISE}:costCenter"), "value": "CC-9"},
            ]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(
        u["phoneNumbers"],
        json!([{"value": "+1 555 0100", "type": "work"}, {"value": "+1 555 0123", "type": "mobile"},
               {"type": "fax", "value": "+1 555 0111"}])
    );
    assert_eq!(u[ENTERPRISE]["manager"], json!({"value": "m-88"}));
    assert_eq!(u[ENTERPRISE]["costCenter"], "CC-9");
    assert_eq!(u["name"]["givenName"], "Katie");
    assert_eq!(
        u["name"]["middleName"], "Coleman",
        "untouched sub-attributes stay"
    );
    assert_eq!(u["addresses"], sent["addresses"]);
    assert_eq!(u["timezone"], "America/New_York");
    let (_, again) = hr.get(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(again, u, "what PATCH_OP answered is what is stored");
    assert_eq!(
        app.rows(&format!(
            "SELECT manager_id, given_name FROM people WHERE id = '{id}'"
        ))
        .await,
        vec!["m-88|Katie".to_owned()]
    );
    // Deactivation by PUT keeps the attributes and the person is inactive for the service.
    let mut off = sent.clone();
    off["active"] = json!(false);
    let (s, u) = hr.put(&format!("/scim/v2/Users/{id}"), off.clone()).await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_returned_as_sent(&off, &u);
    let (s, v) = app.ticket(&id).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "person_inactive");
}

async fn put_replaces_complex_attributes_whole(app: App) {
    let hr = app.hr_feed().await;
    let (_, id) = create_full_user(&hr, "dv@example.com").await;
    let path = format!("/scim/v2/Users/{id}");
    // A PUT without emails, phone numbers, addresses or name removes them.
    let (s, u) = hr.put(&path, json!({"userName": "dv@example.com", "displayName": "Dorothy Vaughan", ENTERPRISE: {"department": "Analysis"}}))
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    for gone in [
        "emails",
        "phoneNumbers",
        "addresses",
        "name",
        "title",
        "timezone",
        "externalId",
    ] {
        assert!(u.get(gone).is_none(), "{gone} still in {u}");
    }
    assert_eq!(u[ENTERPRISE], json!({"department": "Analysis"}));
    let (_, got) = hr.get(&path).await;
    assert_eq!(got, u);
    assert_eq!(
        app.rows(&format!("SELECT email, given_name, title, manager_id, employee_number FROM people WHERE id = '{id}'")).await,
        vec!["NULL|NULL|NULL|NULL|NULL".to_owned()]
    );
    // A PUT with one email of another shape: exactly that list.
    let emails = json!([{"value": "dorothy@example.com", "type": "other"}]);
    let (s, u) = hr
        .put(
            &path,
            json!({"userName": "dv@example.com", "emails": emails}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["emails"], emails);
}

async fn scim_row(app: &App, id: &str) -> Vec<String> {
    app.rows(&format!("SELECT user_name, display_name, active, external_id, given_name, family_name, email, title, department, manager_id, scim_attributes, updated_at FROM people WHERE id = '{id}'")).await
}

async fn unknown_attributes_are_refused_and_nothing_is_applied(app: App) {
    let hr = app.hr_feed().await;
    let (_, id) = create_full_user(&hr, "mj@example.com").await;
    let path = format!("/scim/v2/Users/{id}");
    let gid = hr.create_group("Computers", &[&id]).await;
    let group_path = format!("/scim/v2/Groups/{gid}");
    let stored = scim_row(&app, &id).await;
    let (_, shown) = hr.get(&path).await;
    let groups_before = common::directory_state(&app).await;
    let deactivate = json!({"op": "replace", "path": "active", "value": false});
    let rename = json!({"op": "replace", "path": "displayName", "value": "Changed"});
    // method, path, body, scimType. Each PATCH starts with a valid operation: nothing is applied.
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "PATCH",
            &path,
            json!({"schemas": [PATCH_OP], "Operations": [deactivate, {"op": "replace", "path": "favouriteColour", "value": "blue"}]}),
            "invalidPath",
        ),
        (
            "PATCH",
            &path,
            json!({"schemas": [PATCH_OP], "Operations": [rename, {"op": "add", "path": "name.nickname", "value": "x"}]}),
            "invalidPath",
        ),
        (
            "PATCH",
            &path,
            json!({"schemas": [PATCH_OP], "Operations": [deactivate, {"op": "remove", "path": "shoeSize"}]}),
            "invalidPath",
        ),
        (
            "PATCH",
            &path,
            json!({"schemas": [PATCH_OP], "Operations": [deactivate, {"op": "replace", "path": format!("{ENTERPRISE}:badgeColour"), "value": "red"}]}),
            "invalidPath",
        ),
        (
            "PATCH",
            &path,
            json!({"schemas": [PATCH_OP], "Operations": [deactivate, {"op": "replace", "value": {"active": false, "favouriteColour": "blue"}}]}),
            "invalidPath",
        ),
        (
            "PATCH",
            &path,
            json!({"schemas": [PATCH_OP], "Operations": [deactivate, {"op": "add", "path": "emails[type eq \"work\"].colour", "value": "x"}]}),
            "invalidPath",
        ),
        (
            "PATCH",
            &path,
            json!({"schemas": [PATCH_OP], "Operations": [deactivate, {"op": "replace", "path": "urn:example:custom:1.0:User:badge", "value": "x"}]}),
            "invalidPath",
        ),
        // A filter that matches no value.
        (
            "PATCH",
            &path,
            json!({"schemas": [PATCH_OP], "Operations": [deactivate, {"op": "remove", "path": "emails[value eq \"nobody@example.com\"]"}]}),
            "noTarget",
        ),
        (
            "PATCH",
            &path,
            json!({"schemas": [PATCH_OP], "Operations": [deactivate, {"op": "replace", "path": "phoneNumbers[value eq \"+1 000\"].type", "value": "home"}]}),
            "noTarget",
        ),
        // PUT and POST with an attribute the schema does not have.
        (
            "PUT",
            &path,
            json!({"userName": "mj@example.com", "active": false, "favouriteColour": "blue"}),
            "invalidPath",
        ),
        (
            "PUT",
            &path,
            json!({"userName": "mj@example.com", "active": false, "name": {"givenName": "M", "nickname": "x"}}),
            "invalidPath",
        ),
        (
            "PUT",
            &path,
            json!({"userName": "mj@example.com", "active": false, ENTERPRISE: {"badgeColour": "red"}}),
            "invalidPath",
        ),
        (
            "PUT",
            &path,
            json!({"userName": "mj@example.com", "active": false, "urn:example:custom:1.0:User": {"badge": "x"}}),
            "invalidPath",
        ),
        (
            "POST",
            "/scim/v2/Users",
            json!({"userName": "new@example.com", "favouriteColour": "blue"}),
            "invalidPath",
        ),
        (
            "PUT",
            &group_path,
            json!({"displayName": "Computers", "members": [], "owner": "x"}),
            "invalidPath",
        ),
        (
            "PATCH",
            &group_path,
            json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "Other"}, {"op": "remove", "path": "members[value eq \"no-such\"]"}]}),
            "noTarget",
        ),
    ];
    for (method, p, body, scim_type) in cases {
        let (s, v) = hr.send(method, p, Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{method} {p} {body}: {v}");
        assert_eq!(v["scimType"], scim_type, "{method} {p} {body}: {v}");
        assert_eq!(v["status"], "400");
        assert_eq!(
            scim_row(&app, &id).await,
            stored,
            "{body} changed the person"
        );
        assert_eq!(
            common::directory_state(&app).await,
            groups_before,
            "{body} changed something"
        );
        let (_, now) = hr.get(&path).await;
        assert_eq!(now, shown, "{body} changed the resource");
    }
    // Nothing was offboarded: the person may still enrol.
    let (s, v) = app.ticket(&id).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn attributes_and_excluded_attributes_on_every_read(app: App) {
    let hr = app.hr_feed().await;
    let (created, id) = create_full_user(&hr, "ms@example.com").await;
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    // Only what was asked, with id and schemas; dotted names and the extension's URN.
    let q = format!(
        "attributes=userName,name.givenName,emails.value,emails.type,{ENTERPRISE}:department"
    );
    let (s, u) = hr.get(&format!("/scim/v2/Users/{id}?{q}")).await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(
        keys(&u),
        ["emails", "id", "name", "schemas", ENTERPRISE, "userName"]
    );
    assert_eq!(u["name"], json!({"givenName": "Katherine"}));
    assert_eq!(
        u["emails"],
        json!([{"value": "ms@example.com", "type": "work"}, {"value": "kj@home.example", "type": "home"}])
    );
    assert_eq!(u[ENTERPRISE], json!({"department": "Analysis"}));
    // Case-insensitive, with the core URN prefix, on a listing too.
    let (_, page) = hr
        .get("/scim/v2/Users?attributes=urn:ietf:params:scim:schemas:core:2.0:User:USERNAME,active")
        .await;
    assert_eq!(page["totalResults"], 1);
    assert_eq!(
        page["Resources"][0],
        json!({"id": id, "schemas": created["schemas"], "userName": "ms@example.com", "active": true})
    );
    // Excluded: everything else stays; id and schemas cannot be excluded.
    let (_, u) = hr
        .get(&format!(
            "/scim/v2/Users/{id}?excludedAttributes=id,schemas,emails,meta,name.middleName,{ENTERPRISE}"
        ))
        .await;
    assert_eq!(u["id"], id.as_str());
    assert_eq!(u["schemas"], created["schemas"]);
    for gone in ["emails", "meta", ENTERPRISE] {
        assert!(u.get(gone).is_none(), "{gone} in {u}");
    }
    assert!(u["name"].get("middleName").is_none(), "{u}");
    assert_eq!(u["name"]["familyName"], "Johnson");
    assert_eq!(u["phoneNumbers"], created["phoneNumbers"]);
    let (_, page) = hr
        .get("/scim/v2/Users?excludedAttributes=groups,addresses")
        .await;
    assert!(page["Resources"][0].get("addresses").is_none());
    assert_eq!(page["Resources"][0]["title"], "Research Mathematician");
    // Groups: members excluded (what Entra ID asks before a PATCH), or only displayName.
    let gid = hr.create_group("Analysts", &[&id]).await;
    let (_, g) = hr
        .get(&format!("/scim/v2/Groups/{gid}?excludedAttributes=members"))
        .await;
    assert!(g.get("members").is_none(), "{g}");
    assert_eq!(g["displayName"], "Analysts");
    let (_, page) = hr
        .get("/scim/v2/Groups?filter=displayName%20eq%20%22Analysts%22&attributes=displayName")
        .await;
    assert_eq!(
        keys(&page["Resources"][0]),
        ["displayName", "id", "schemas"]
    );
}

/// POST and read the `Location` header and the body.
async fn post_with_location(
    app: &App,
    token: &str,
    path: &str,
    body: &Value,
) -> (StatusCode, Option<String>, Value) {
    let resp = app
        .router
        .clone()
        .oneshot(
            Request::builder()
                .method("POST")
                .uri(path)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/scim+json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, location, serde_json::from_slice(&bytes).unwrap())
}

async fn create_answers_with_the_location_of_the_resource(app: App) {
    let hr = app.hr_feed().await;
    for (path, body) in [
        ("/scim/v2/Users", json!({"userName": "ah@example.com"})),
        ("/scim/v2/Groups", json!({"displayName": "Pilots"})),
    ] {
        let (s, location, created) = post_with_location(&app, hr.token(), path, &body).await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        let location = location.unwrap_or_else(|| panic!("POST {path} answered without Location"));
        let id = created["id"].as_str().unwrap();
        assert_eq!(
            location,
            format!("https://keywarden.localhost{path}/{id}"),
            "absolute, at the service's origin"
        );
        assert_eq!(created["meta"]["location"], location.as_str());
        // The Location is where the resource is read.
        let (s, got) = hr
            .get(location.trim_start_matches("https://keywarden.localhost"))
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(got["meta"]["location"], location.as_str());
        assert_eq!(got["id"], id);
    }
}

/// A person provisioned before `scim_attributes` existed (the column is NULL) reads from the
/// columns, and the first PATCH keeps what the columns held.
async fn people_provisioned_before_attributes_were_kept(app: App) {
    let hr = app.hr_feed().await;
    let id = hr
        .create_user(common::scim_user("old@example.com", "00u3", "Legal"))
        .await;
    sqlx::query("UPDATE people SET scim_attributes = NULL WHERE id = $1")
        .bind(&id)
        .execute(&app.state.db)
        .await
        .unwrap();
    let path = format!("/scim/v2/Users/{id}");
    let (s, u) = hr.get(&path).await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(
        u["name"],
        json!({"givenName": "Ada", "familyName": "Lovelace"})
    );
    assert_eq!(
        u["emails"],
        json!([{"value": "old@example.com", "type": "work", "primary": true}])
    );
    assert_eq!(u[ENTERPRISE]["department"], "Legal");
    let (s, u) = hr.patch(&path, json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "locale", "value": "en-GB"}]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["locale"], "en-GB");
    assert_eq!(u["emails"][0]["value"], "old@example.com");
    assert_eq!(u["title"], "Engineer");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM people WHERE id = '{id}' AND scim_attributes IS NOT NULL"
        ))
        .await,
        1
    );
}

/// Regression (found by the contract run, tests/contract): an attribute name as long as the
/// enterprise extension's URN whose character straddled the URN's length (`000𐀀𐀀...`) panicked
/// while the service compared it with the URN, in `attributes` and in a PATCH path, and the
/// connection was dropped without an answer.
async fn names_beyond_ascii_are_answered_not_dropped(app: App) {
    let hr = app.hr_feed().await;
    let (_, id) = create_full_user(&hr, "wide@example.com").await;
    let name = format!("000{}", "\u{10000}".repeat(14));
    assert!(
        !name.is_char_boundary(ENTERPRISE.len()),
        "the name must straddle the URN's end"
    );
    let encoded = format!("000{}", "%F0%90%80%80".repeat(14));
    for query in ["attributes", "excludedAttributes"] {
        let (s, u) = hr
            .get(&format!("/scim/v2/Users/{id}?{query}={encoded}"))
            .await;
        assert_eq!(s, StatusCode::OK, "{u}");
        assert_eq!(u["id"], id.as_str());
    }
    let (s, e) = hr
        .patch(
            &format!("/scim/v2/Users/{id}"),
            json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": name, "value": "x"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(
        e["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"]),
        "{e}"
    );
    let (s, u) = hr.get(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["userName"], "wide@example.com", "nothing was changed");
}
