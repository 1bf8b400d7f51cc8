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
    let error = &doc["components"]["schemas"]["ErrorBodyDoc"];
    assert_eq!(
        error["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorDetailDoc"
    );
    let detail = &doc["components"]["schemas"]["ErrorDetailDoc"]["properties"];
    assert!(detail.get("code").is_some() && detail.get("message").is_some());
    // Error responses point at the error shape.
    let refused = &doc["paths"]["/api/v1/admin/enrolment-tickets"]["post"]["responses"]["403"];
    assert!(refused.to_string().contains("ErrorBodyDoc"), "{refused}");
    assert!(doc["components"]["securitySchemes"].get("bearer").is_some());
}
