//! The OpenAPI document as a client author gets it: fetched from the running service, validated
//! as OpenAPI 3.1 (its schemas as JSON Schema 2020-12, every `$ref` resolved), turned into
//! TypeScript types with openapi-typescript, and a small openapi-fetch client over them compiled
//! in strict mode (tests/openapi). Broken copies of the same document are refused, so the check
//! is known to bite.

use std::path::PathBuf;
use std::process::{Command, Output};

use keywarden_e2e::Server;
use serde_json::Value;

/// The Node project of the contract check, in the checkout being tested (named by cargo at run
/// time, as for the browser scenarios).
fn contract_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("openapi")
}

/// `node check.mjs [file]` with `KEYWARDEN_BASE_URL` set to `base`.
fn check(base: &str, file: Option<&std::path::Path>) -> Output {
    let dir = contract_dir();
    for package in [
        "@seriousme/openapi-schema-validator",
        "openapi-typescript",
        "typescript",
    ] {
        assert!(
            dir.join("node_modules").join(package).exists(),
            "the contract check's packages are not installed: run `npm ci` in {} (scripts/test.sh does)",
            dir.display()
        );
    }
    let out = Command::new("node")
        .arg("check.mjs")
        .args(file)
        .current_dir(&dir)
        .env("KEYWARDEN_BASE_URL", base)
        .output()
        .expect("node runs (install Debian's nodejs package)");
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn served_document_validates_and_a_generated_client_compiles() {
    let server = Server::start();
    let out = check(&server.url, None);
    assert!(
        out.status.success(),
        "the contract check failed; its output is above"
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("validated as OpenAPI 3.1"), "{said}");
    assert!(said.contains("generated client type-checks"), "{said}");
}

#[test]
fn a_broken_document_is_refused() {
    let server = Server::start();
    let doc: Value = reqwest::blocking::get(format!("{}/openapi.json", server.url))
        .unwrap()
        .json()
        .unwrap();
    let dangling = {
        let mut d = doc.clone();
        d["components"]["schemas"]
            .as_object_mut()
            .unwrap()
            .remove("PersonView");
        d
    };
    let two_ids = {
        let mut d = doc.clone();
        d["paths"]["/api/v1/admin/tokens"]["get"]["operationId"] = "list".into();
        d["paths"]["/api/v1/admin/populations"]["get"]["operationId"] = "list".into();
        d
    };
    let no_secret = {
        let mut d = doc.clone();
        let secret = &mut d["components"]["schemas"]["IssuedSecret"];
        secret["properties"]
            .as_object_mut()
            .unwrap()
            .remove("secret");
        secret["required"]
            .as_array_mut()
            .unwrap()
            .retain(|r| r != "secret");
        d
    };
    let bad_type = {
        let mut d = doc.clone();
        d["components"]["schemas"]["Health"]["properties"]["status"]["type"] = "strin".into();
        d
    };
    let dir = tempfile::tempdir().unwrap();
    for (name, broken, step) in [
        (
            "a $ref to a missing schema",
            dangling,
            "OpenAPI schema validation",
        ),
        ("two operations with one id", two_ids, "type generation"),
        (
            "a field the client reads dropped",
            no_secret,
            "type check of the generated client",
        ),
        (
            "a schema type that does not exist",
            bad_type,
            "JSON Schema 2020-12 validation",
        ),
    ] {
        let file = dir.path().join("broken.json");
        std::fs::write(&file, serde_json::to_vec(&broken).unwrap()).unwrap();
        let out = check(&server.url, Some(&file));
        assert!(!out.status.success(), "{name}: accepted");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(&format!("{step} failed")), "{name}: {said}");
    }
}
