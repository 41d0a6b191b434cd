//! openapi.yaml describes exactly the template's routes: the same paths and methods,
//! every path parameter declared, and every operation answering with the envelope.

use chat_testkit::{parse_template, template, template_routes};
use serde_json::Value;
use std::collections::BTreeSet;

fn document() -> Value {
    let path = chat_testkit::repo_root().join("openapi.yaml");
    parse_template(&std::fs::read_to_string(path).expect("read openapi.yaml"))
}

#[test]
fn openapi_paths_and_methods_are_the_template_routes() {
    let doc = document();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "OpenAPI 3.1"
    );
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().unwrap() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let routes: BTreeSet<String> = template_routes(&template())
        .iter()
        .map(|r| r.key())
        .collect();
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(
        undocumented.is_empty(),
        "routes openapi.yaml lacks: {undocumented:?}"
    );
    assert!(
        extra.is_empty(),
        "openapi.yaml routes the template lacks: {extra:?}"
    );
}

#[test]
fn every_operation_declares_its_path_parameters_and_errors() {
    let doc = document();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let names: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert_eq!(declared, names, "{method} {path}: path parameters");
            let responses = op["responses"].as_object().unwrap();
            // A public operation (`security: []`, a signed link) has no 401.
            let public = op["security"].as_array().is_some_and(|s| s.is_empty());
            for code in ["401", "404", "500", "503"] {
                if code == "401" && public {
                    continue;
                }
                assert!(responses.contains_key(code), "{method} {path}: no {code}");
            }
            if op.get("requestBody").is_some() {
                for code in ["400", "413", "422"] {
                    assert!(responses.contains_key(code), "{method} {path}: no {code}");
                }
            }
        }
    }
}

#[test]
fn the_audit_actions_documented_are_the_ones_recorded() {
    let doc = document();
    let documented: BTreeSet<&str> = doc["components"]["schemas"]["AuditAction"]["enum"]
        .as_array()
        .expect("AuditAction")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let recorded: BTreeSet<&str> = chat_core::audit::actions().into_iter().collect();
    assert_eq!(documented, recorded);
}
