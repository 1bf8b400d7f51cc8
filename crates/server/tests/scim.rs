//! SCIM 2.0: the conversation an IdP has with the service, in its order and shape, and bad
//! bodies refused with SCIM errors that change nothing. What the big IdPs rely on beyond that is
//! in `scim_rfc.rs`.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{App, ENTERPRISE, PATCH_OP};
use keywarden_server::auth::Role;
use serde_json::{json, Value};

both_backends!(
    idp_conversation,
    bad_bodies_are_refused_and_change_nothing,
    discovery_and_paging,
    only_the_scim_role_may_use_scim,
);

/// Create (after the IdP's probe for an existing userName), group membership, PATCH to change
/// department, PATCH active=false with a string boolean; the user stays readable.
async fn idp_conversation(app: App) {
    let hr = app.hr_feed().await;
    // 1. The IdP looks the user up first: nothing yet.
    let (s, v) = hr
        .get("/scim/v2/Users?filter=userName%20eq%20%22ada%40example.com%22")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["totalResults"], 0);
    // 2. Create.
    let (s, created) = hr
        .post(
            "/scim/v2/Users",
            common::scim_user("ada@example.com", "00u1", "Research"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created[ENTERPRISE]["department"], "Research");
    assert_eq!(created["active"], true);
    assert_eq!(created["meta"]["resourceType"], "User");
    // Found by userName (case-insensitive) and by externalId.
    let (_, v) = hr
        .get("/scim/v2/Users?filter=userName%20eq%20%22ADA%40example.com%22")
        .await;
    assert_eq!(v["totalResults"], 1);
    assert_eq!(v["Resources"][0]["id"], id.as_str());
    let (_, v) = hr
        .get("/scim/v2/Users?filter=externalId%20eq%20%2200u1%22")
        .await;
    assert_eq!(v["Resources"][0]["userName"], "ada@example.com");
    // 3. Group, then membership by PATCH add (Okta / Entra ID style).
    let (s, g) = hr.post("/scim/v2/Groups", json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Contractors", "members": []}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let gid = g["id"].as_str().unwrap().to_owned();
    let (s, g) = hr.patch(&format!("/scim/v2/Groups/{gid}"), json!({"schemas": [PATCH_OP], "Operations": [{"op": "Add", "path": "members", "value": [{"value": id}]}]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{g}");
    assert_eq!(g["members"][0]["value"], id.as_str());
    let (_, u) = hr.get(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(u["groups"][0]["display"], "Contractors");
    // 4. PATCH to change department: op name capitalised, URN path.
    let (s, u) = hr.patch(&format!("/scim/v2/Users/{id}"), json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "Operations"},
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "ada.l@example.com"},
            ]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u[ENTERPRISE]["department"], "Operations");
    assert_eq!(u["emails"][0]["value"], "ada.l@example.com");
    assert_eq!(
        u[ENTERPRISE]["employeeNumber"], "E1001",
        "untouched attributes stay"
    );
    // 5. Deactivate: path-less PATCH with a value object and a string boolean.
    let (s, u) = hr.patch(&format!("/scim/v2/Users/{id}"), json!({"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "value": {"active": "False"}}]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["active"], false);
    // Deactivated users stay readable, and the person is inactive for the service.
    let (s, u) = hr.get(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(u["active"], false);
    let (s, v) = app.ticket(&id).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "person_inactive");
    // Group removal by filtered path, then DELETE: gone for SCIM, kept for the audit trail.
    let (s, g) = hr.patch(&format!("/scim/v2/Groups/{gid}"), json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(g["members"], json!([]));
    let (s, _) = hr.delete(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, e) = hr.get(&format!("/scim/v2/Users/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        e["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    // The userName is free again for a rehire.
    let (s, _) = hr
        .post(
            "/scim/v2/Users",
            common::scim_user("ada@example.com", "00u2", "Research"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let actions = app.audit_actions().await;
    for a in [
        "scim.user.created",
        "scim.group.created",
        "scim.group.updated",
        "scim.user.updated",
        "scim.user.deactivated",
        "scim.user.deleted",
    ] {
        assert!(actions.iter().any(|x| x == a), "audit has {a}: {actions:?}");
    }
}

/// method, path, body, expected status, expected scimType.
type BadCase = (&'static str, String, Vec<u8>, u16, Option<&'static str>);

async fn bad_bodies_are_refused_and_change_nothing(app: App) {
    let hr = app.hr_feed().await;
    let id = hr
        .create_user(common::scim_user("grace@example.com", "00u9", "Navy"))
        .await;
    let gid = hr.create_group("Employees", &[&id]).await;
    let before = common::directory_state(&app).await;
    let user_path = format!("/scim/v2/Users/{id}");
    let group_path = format!("/scim/v2/Groups/{gid}");
    let cases: Vec<BadCase> = vec![
        ("POST", "/scim/v2/Users".into(), b"{not json".to_vec(), 400, Some("invalidSyntax")),
        ("POST", "/scim/v2/Users".into(), b"[1,2]".to_vec(), 400, Some("invalidSyntax")),
        ("POST", "/scim/v2/Users".into(), json!({"displayName": "no user name"}).to_string().into_bytes(), 400, Some("invalidValue")),
        ("POST", "/scim/v2/Users".into(), json!({"userName": "x@example.com", "active": "maybe"}).to_string().into_bytes(), 400, Some("invalidValue")),
        ("POST", "/scim/v2/Users".into(), json!({"userName": 42.5, "schemas": "wrong"}).to_string().into_bytes(), 400, Some("invalidSyntax")),
        ("POST", "/scim/v2/Users".into(), common::scim_user("GRACE@example.com", "x", "y").to_string().into_bytes(), 409, Some("uniqueness")),
        ("PUT", user_path.clone(), json!({"userName": ""}).to_string().into_bytes(), 400, Some("invalidValue")),
        ("PATCH", user_path.clone(), json!({"schemas": [PATCH_OP], "Operations": [{"op": "frobnicate", "path": "active", "value": false}]}).to_string().into_bytes(), 400, Some("invalidSyntax")),
        ("PATCH", user_path.clone(), json!({"schemas": [PATCH_OP], "Operations": []}).to_string().into_bytes(), 400, Some("invalidSyntax")),
        ("PATCH", user_path.clone(), json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove"}]}).to_string().into_bytes(), 400, Some("noTarget")),
        // The first operation is fine, the second is not: neither is applied.
        ("PATCH", user_path.clone(), json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "path": "displayName", "value": "Changed"},
            {"op": "replace", "path": "active", "value": "perhaps"}]}).to_string().into_bytes(), 400, Some("invalidValue")),
        ("PATCH", user_path.clone(), json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "userName", "value": ""}]}).to_string().into_bytes(), 400, Some("invalidValue")),
        ("PATCH", group_path.clone(), json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": "no-such-user"}]}]}).to_string().into_bytes(), 400, Some("invalidValue")),
        ("POST", "/scim/v2/Groups".into(), json!({"displayName": "employees"}).to_string().into_bytes(), 409, Some("uniqueness")),
        ("GET", "/scim/v2/Users?filter=userName%20co%20%22a%22".into(), Vec::new(), 400, Some("invalidFilter")),
        ("GET", "/scim/v2/Users?filter=title%20eq%20%22a%22".into(), Vec::new(), 400, Some("invalidFilter")),
        ("PUT", "/scim/v2/Users/unknown".into(), common::scim_user("z@example.com", "z", "z").to_string().into_bytes(), 404, None),
    ];
    for (method, path, body, status, scim_type) in cases {
        let (s, ct, v) = app
            .raw(
                method,
                &path,
                Some(hr.token()),
                "application/scim+json",
                body,
            )
            .await;
        assert_eq!(s.as_u16(), status, "{method} {path}: {v}");
        assert!(
            ct.starts_with("application/scim+json"),
            "{method} {path}: {ct}"
        );
        assert_eq!(
            v["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{v}"
        );
        assert_eq!(v["status"], status.to_string());
        assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()));
        if let Some(t) = scim_type {
            assert_eq!(v["scimType"], t, "{method} {path}: {v}");
        }
        assert_eq!(
            common::directory_state(&app).await,
            before,
            "{method} {path} changed nothing"
        );
    }
}

async fn discovery_and_paging(app: App) {
    let hr = app.hr_feed().await;
    let (s, spc) = hr.get("/scim/v2/ServiceProviderConfig").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["filter"]["supported"], true);
    let (_, schemas) = hr.get("/scim/v2/Schemas").await;
    let ids = common::field_of_each(&schemas["Resources"], "id");
    assert!(ids.contains(&ENTERPRISE), "{ids:?}");
    let (s, ent) = hr.get(&format!("/scim/v2/Schemas/{ENTERPRISE}")).await;
    assert_eq!(s, StatusCode::OK);
    let names = |schema: &Value| -> Vec<String> {
        schema["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for a in ["costCenter", "organization", "division", "manager"] {
        assert!(names(&ent).iter().any(|n| n == a), "{a} in {ent}");
    }
    // The User schema describes what is accepted: the password is write-only, never returned.
    let (_, core) = hr
        .get("/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
        .await;
    for a in [
        "phoneNumbers",
        "addresses",
        "preferredLanguage",
        "timezone",
        "locale",
    ] {
        assert!(names(&core).iter().any(|n| n == a), "{a} in {core}");
    }
    let password = core["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "password")
        .unwrap();
    assert_eq!(password["returned"], "never");
    let (_, rts) = hr.get("/scim/v2/ResourceTypes").await;
    assert_eq!(rts["totalResults"], 2);
    let (s, rt) = hr.get("/scim/v2/ResourceTypes/User").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(rt["schemaExtensions"][0]["schema"], ENTERPRISE);
    for i in 0..5 {
        let (s, _) = hr
            .post(
                "/scim/v2/Users",
                json!({"userName": format!("u{i}@example.com")}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        app.clock.advance_secs(1);
    }
    let (_, page) = hr.get("/scim/v2/Users?startIndex=2&count=2").await;
    assert_eq!(page["totalResults"], 5);
    assert_eq!(page["startIndex"], 2);
    assert_eq!(page["itemsPerPage"], 2);
    assert_eq!(page["Resources"][0]["userName"], "u1@example.com");
    assert_eq!(page["Resources"][1]["userName"], "u2@example.com");
    // PUT replaces the whole resource.
    let id = page["Resources"][0]["id"].as_str().unwrap().to_owned();
    let (s, u) = hr.put(&format!("/scim/v2/Users/{id}"), json!({"userName": "u1@example.com", "active": false, ENTERPRISE: {"department": "Sales", "manager": {"value": "m-1"}}}))
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["active"], false);
    assert_eq!(u[ENTERPRISE]["manager"]["value"], "m-1");
}

async fn only_the_scim_role_may_use_scim(app: App) {
    for role in [Role::Admin, Role::Helpdesk, Role::Auditor] {
        let t = app.token(role).await;
        let (s, v) = app.scim_as(t).get("/scim/v2/Users").await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{role:?}");
        assert_eq!(
            v["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:Error"
        );
    }
    let (s, _, _) = app.raw("GET", "/scim/v2/Users", None, "", Vec::new()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
