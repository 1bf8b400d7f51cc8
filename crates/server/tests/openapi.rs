//! The OpenAPI 3.1 document is served by the service, covers every route but the HTML pages
//! (the same list the role matrix walks, itself compared with the router) and describes the
//! error shape.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{Access, App, Backend, ENDPOINTS};

#[tokio::test]
async fn document_covers_every_route_and_the_error_shape() {
    let app = App::new(Backend::Sqlite).await.unwrap();
    let (s, _, doc) = app.raw("GET", "/openapi.json", None, "", Vec::new()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    let mut routes: Vec<(String, String)> = ENDPOINTS
        .iter()
        .filter(|(_, _, access)| !matches!(access, Access::Page))
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    routes.sort();
    documented.sort();
    assert_eq!(
        documented, routes,
        "the document lists exactly the service's routes"
    );
    // Every documented operation exists on the router (none falls through to no_route / 405).
    for (method, path) in &routes {
        let concrete = path.replace("{id}", "x").replace("{name}", "x");
        let (s, _, v) = app.raw(method, &concrete, None, "", Vec::new()).await;
        assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_ne!(v["error"]["code"], "no_route", "{method} {path}");
    }
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(
        error["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorDetail"
    );
    let detail = &doc["components"]["schemas"]["ErrorDetail"]["properties"];
    assert!(detail.get("code").is_some() && detail.get("message").is_some());
    // Error responses point at the error shape.
    let refused = &doc["paths"]["/api/v1/admin/enrolment-tickets"]["post"]["responses"]["403"];
    assert!(refused.to_string().contains("ErrorBody"), "{refused}");
    assert!(doc["components"]["securitySchemes"].get("bearer").is_some());
    // Regression: several modules' handlers are named `list` or `issue`, and utoipa's default
    // operationId (the function's name) made them collide, which OpenAPI forbids and client
    // generators refuse.
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "operationIds are unique");
    // Regression: SCIM's caller check answers in SCIM's error shape, 401 included (the document
    // said the service's own shape).
    let scim = &doc["paths"]["/scim/v2/Users"]["get"]["responses"];
    for status in ["401", "403"] {
        assert_eq!(
            scim[status]["content"]["application/scim+json"]["schema"]["$ref"],
            "#/components/schemas/ScimErrorDoc",
            "{status}: {}",
            scim[status]
        );
    }
}

/// Every JSON body the service defines is described by its real type: a request or response
/// schema is a reference to a component with properties (or an array of one), never a free-form
/// placeholder object; only SCIM resources and PATCH bodies (whose shape is RFC 7643's, open by
/// design) are described in words.
#[tokio::test]
async fn bodies_are_described_by_their_real_types() {
    let app = App::new(Backend::Sqlite).await.unwrap();
    let (_, _, doc) = app.raw("GET", "/openapi.json", None, "", Vec::new()).await;
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let open_by_design = ["ScimResourceDoc", "ScimPatchDoc"];
    let mut placeholders = Vec::new();
    let mut check = |at: String, schema: &serde_json::Value| {
        let schema = schema.get("items").unwrap_or(schema);
        let Some(r) = schema["$ref"].as_str() else {
            return;
        };
        let name = r.trim_start_matches("#/components/schemas/");
        if open_by_design.contains(&name) {
            return;
        }
        let component = &schemas[name];
        let described = component.get("properties").is_some()
            || component.get("oneOf").is_some()
            || component.get("allOf").is_some()
            || component.get("enum").is_some();
        if !described {
            placeholders.push(format!("{at}: {name} {component}"));
        }
    };
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(body) =
                op["requestBody"]["content"]["application/json"]["schema"].as_object()
            {
                check(
                    format!("{method} {path} request"),
                    &serde_json::Value::Object(body.clone()),
                );
            }
            for (status, resp) in op["responses"].as_object().into_iter().flatten() {
                for (_, content) in resp["content"].as_object().into_iter().flatten() {
                    check(format!("{method} {path} {status}"), &content["schema"]);
                }
            }
        }
    }
    assert!(
        placeholders.is_empty(),
        "free-form placeholders:\n{}",
        placeholders.join("\n")
    );
}

/// The credential the document names for each route, and the refusals it documents for it, are
/// the ones the role matrix tests the route with: staff and SCIM routes take a bearer token,
/// agent routes a device signature, and each of those documents 401 and 403; public and
/// self-service routes name no scheme.
#[tokio::test]
async fn each_route_documents_the_credential_it_takes() {
    let app = App::new(Backend::Sqlite).await.unwrap();
    let (_, _, doc) = app.raw("GET", "/openapi.json", None, "", Vec::new()).await;
    for (method, path, access) in ENDPOINTS {
        let scheme = match access {
            Access::Page => continue,
            Access::Roles(_) => Some("bearer"),
            Access::Device => Some("device_signature"),
            Access::Public | Access::Browser => None,
        };
        let op = &doc["paths"][path][method.to_lowercase()];
        let documented = op["security"][0]
            .as_object()
            .and_then(|s| s.keys().next().cloned());
        assert_eq!(documented.as_deref(), scheme, "{method} {path}");
        if scheme.is_some() {
            for status in ["401", "403"] {
                assert!(
                    op["responses"].get(status).is_some(),
                    "{method} {path} {status}"
                );
            }
        }
    }
}

/// Regressions found by the contract run (tests/contract): a listed population's `name` was
/// refused by its own schema (`allOf` of `{name}` and a spec closed to other fields), and the
/// error codes were documented as the Rust variant names (`MalformedJson`), so no error answer
/// matched the document.
#[tokio::test]
async fn answers_match_the_schemas_they_are_documented_with() {
    let app = App::new(Backend::Sqlite).await.unwrap();
    let (_, _, doc) = app.raw("GET", "/openapi.json", None, "", Vec::new()).await;
    let schemas = &doc["components"]["schemas"];

    let (s, listed) = app
        .call(
            "PUT",
            "/api/v1/admin/populations/contractors",
            &app.admin,
            Some(serde_json::json!({"priority": 1, "selector": {"kind": "group", "value": "contractors"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{listed}");
    let population = &schemas["Population"];
    assert_eq!(population["additionalProperties"], false, "{population}");
    for field in listed.as_object().unwrap().keys() {
        assert!(
            population["properties"].get(field).is_some(),
            "the service sends `{field}`, which Population does not declare: {population}"
        );
    }

    let (s, refused) = app
        .call(
            "PUT",
            "/api/v1/admin/populations/contractors",
            &app.admin,
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{refused}");
    let codes = schemas["ErrorCode"]["enum"].as_array().unwrap();
    assert!(
        codes.contains(&refused["error"]["code"]),
        "{refused} not in {codes:?}"
    );
}

/// Regression (found by the contract run's check that invalid requests are refused): the
/// coverage report's query parameters were documented as required path parameters of a path
/// that has none, and the provisioning-token body as required though an empty POST is taken.
#[tokio::test]
async fn parameters_are_where_the_service_reads_them() {
    let app = App::new(Backend::Sqlite).await.unwrap();
    let (_, _, doc) = app.raw("GET", "/openapi.json", None, "", Vec::new()).await;
    let mut misplaced = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                let in_template = path.contains(&format!("{{{name}}}"));
                if (p["in"] == "path") != in_template {
                    misplaced.push(format!("{method} {path}: {name} in {}", p["in"]));
                }
            }
        }
    }
    assert!(misplaced.is_empty(), "{misplaced:#?}");
    let coverage = &doc["paths"]["/api/v1/admin/coverage"]["get"]["parameters"];
    assert!(!coverage.as_array().unwrap().is_empty(), "{coverage}");

    let body = &doc["paths"]["/api/v1/admin/provisioning-tokens"]["post"]["requestBody"];
    assert_ne!(body["required"], true, "{body}");
    let (s, _, issued) = app
        .raw(
            "POST",
            "/api/v1/admin/provisioning-tokens",
            Some(&app.admin),
            "",
            Vec::new(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{issued}");
}
