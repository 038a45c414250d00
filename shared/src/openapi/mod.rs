//! The public API as an OpenAPI 3.1 document: [`DOCUMENT`] is the committed `shared/openapi.json`
//! that every edge serves at `GET /openapi.json`.
//!
//! With the `openapi` feature (native only), [`document`] builds it from the code: the route
//! table gives the operations, their security, rate-limit headers and refusals; the body types
//! of [`crate::body`] give the request schemas (the same types the edge validates with);
//! [`crate::problem`] gives the error schema and the stable codes. A test fails when the
//! committed file differs from what the code generates; regenerate with
//! `H200_UPDATE_OPENAPI=1 cargo test -p h200-shared openapi`.

/// The committed document, served as is by the edge (and the backend).
pub const DOCUMENT: &str = include_str!("../../openapi.json");

/// Where the document is served.
pub const PATH: &str = "/openapi.json";

#[cfg(feature = "openapi")]
mod generate;
#[cfg(feature = "openapi")]
mod operations;

#[cfg(feature = "openapi")]
pub use generate::{codes_of, document};

#[cfg(all(test, feature = "openapi"))]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::{DOCUMENT, document};
    use crate::route_policy::RoutePolicy;

    const REGENERATE: &str = "H200_UPDATE_OPENAPI=1 cargo test -p h200-shared openapi";

    fn committed() -> Value {
        serde_json::from_str(DOCUMENT).expect("shared/openapi.json is JSON")
    }

    #[test]
    fn the_committed_openapi_document_is_the_generated_one() {
        let generated = document(&RoutePolicy::default());
        if committed() == generated {
            return;
        }
        if std::env::var_os("H200_UPDATE_OPENAPI").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
            let text = serde_json::to_string_pretty(&generated).expect("a document serializes");
            std::fs::write(path, text + "\n").expect("writing shared/openapi.json");
            return;
        }
        panic!(
            "shared/openapi.json differs from the document the code generates; regenerate it with `{REGENERATE}` and review the diff"
        );
    }

    /// `METHOD /path` of every operation of a document.
    fn operations(document: &Value) -> BTreeSet<String> {
        let paths = document["paths"].as_object().cloned().unwrap_or_default();
        paths
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .into_iter()
                    .flat_map(|methods| methods.keys())
                    .map(move |method| format!("{} {path}", method.to_ascii_uppercase()))
            })
            .collect()
    }

    #[test]
    fn the_committed_openapi_document_covers_the_route_table_exactly() {
        let table: BTreeSet<String> = RoutePolicy::default()
            .routes()
            .iter()
            .map(|route| format!("{} {}", route.method, route.path))
            .collect();
        let documented = operations(&committed());
        let missing: Vec<_> = table.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&table).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "routes missing from shared/openapi.json: {missing:?}; documented but not in the table: {extra:?}; regenerate with `{REGENERATE}`"
        );
    }

    /// The codes a committed operation documents for `status`.
    fn codes(operation: &Value, status: &str) -> Vec<String> {
        operation["responses"][status]["content"]["application/problem+json"]["schema"]["allOf"][1]
            ["properties"]["code"]["enum"]
            .as_array()
            .map(|codes| {
                codes
                    .iter()
                    .filter_map(|code| code.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn each_operation_documents_the_refusals_its_policy_implies() {
        let doc = committed();
        for route in RoutePolicy::default().routes() {
            let name = format!("{} {}", route.method, route.path);
            let operation = &doc["paths"][&route.path][route.method.to_ascii_lowercase()];
            let has = |status: &str, code: &str| codes(operation, status).iter().any(|c| c == code);
            let public = route.auth == crate::route_policy::Auth::Public;
            if !public {
                assert!(has("401", "MISSING_CREDENTIALS"), "{name}");
            }
            assert_eq!(
                public,
                operation["security"] == serde_json::json!([]),
                "{name}"
            );
            if route.auth.permission().is_some() {
                assert!(has("403", "INSUFFICIENT_PERMISSIONS"), "{name}");
            }
            if !route.rate_classes.is_empty() {
                assert!(has("429", "RATE_LIMIT_EXCEEDED"), "{name}");
                assert!(
                    operation["responses"]["429"]["headers"]["Retry-After"].is_object(),
                    "{name}"
                );
            }
            let takes_body = route.body_limit > 0;
            assert_eq!(takes_body, has("413", "PAYLOAD_TOO_LARGE"), "{name}");
            assert_eq!(takes_body, has("415", "UNSUPPORTED_MEDIA_TYPE"), "{name}");
            if takes_body {
                assert!(has("422", "UNKNOWN_FIELD"), "{name}");
            }
            assert_eq!(!route.probe, has("403", "IP_BLOCKED"), "{name}");
        }
    }

    #[test]
    fn every_refusal_names_only_codes_of_its_status() {
        let doc = committed();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    let schema = &response["content"]["application/problem+json"]["schema"];
                    let Some(codes) = schema["allOf"][1]["properties"]["code"]["enum"].as_array()
                    else {
                        continue;
                    };
                    for code in codes {
                        let code = crate::ErrorCode::from_name(code.as_str().unwrap_or(""))
                            .unwrap_or_else(|| panic!("{method} {path}: unknown code {code}"));
                        assert_eq!(code.status().to_string(), *status, "{method} {path} {code}");
                    }
                }
            }
        }
    }
}
