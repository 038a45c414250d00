//! The route table is the only source of permissions: the router serves exactly the routes the
//! table lists, and a replaced table moves a route's permission and its admin permission at the
//! backend too.

mod common;

use std::collections::BTreeSet;

use common::Backend;
use common::backend::{TestBackend, problem_code};
use gpu_backend::http::gate::INTERNAL_PREFIX;
use gpu_backend::http::{Exposure, routes};
use serde_json::{Value, json};
use shared::route_policy::{Auth, DEFAULT_ROUTE_POLICY_TOML, RoutePolicy};

const PASSWORD: &str = "Sturdy-Mug-2026!";

/// `METHOD /pattern` of every route the router serves but the internal ones.
fn served_public() -> BTreeSet<String> {
    routes()
        .into_iter()
        .filter(|(exposure, _, _)| *exposure != Exposure::Internal)
        .map(|(_, method, path)| format!("{method} {path}"))
        .collect()
}

/// `METHOD /pattern` of every route of `policy`.
fn listed(policy: &RoutePolicy) -> BTreeSet<String> {
    policy
        .routes()
        .iter()
        .map(|route| format!("{} {}", route.method, route.path))
        .collect()
}

fn lines(routes: BTreeSet<&String>) -> String {
    if routes.is_empty() {
        return "  (none)".into();
    }
    routes
        .into_iter()
        .map(|route| format!("  {route}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_router_serves_exactly_the_routes_of_the_table() {
    let served = served_public();
    let table = listed(&RoutePolicy::default());
    let not_listed: BTreeSet<&String> = served.difference(&table).collect();
    let not_served: BTreeSet<&String> = table.difference(&served).collect();
    assert!(
        not_listed.is_empty() && not_served.is_empty(),
        "the router and the route table differ\nserved but not in the table:\n{}\nin the table but not served:\n{}",
        lines(not_listed),
        lines(not_served),
    );
    assert_eq!(
        served.len(),
        routes()
            .iter()
            .filter(|(exposure, _, _)| *exposure != Exposure::Internal)
            .count(),
        "the router lists a route twice"
    );
}

#[test]
fn internal_routes_are_the_edges_own_and_not_in_the_table() {
    let policy = RoutePolicy::default();
    let internal: Vec<_> = routes()
        .into_iter()
        .filter(|(exposure, _, _)| *exposure == Exposure::Internal)
        .collect();
    assert!(!internal.is_empty());
    for (_, method, path) in internal {
        assert!(path.starts_with(INTERNAL_PREFIX), "{method} {path}");
        assert!(
            policy
                .routes()
                .iter()
                .all(|route| !route.path.starts_with(INTERNAL_PREFIX)),
            "the public table lists an internal route"
        );
    }
}

#[test]
fn routes_served_without_the_gate_are_public_in_the_table() {
    let policy = RoutePolicy::default();
    for (exposure, method, path) in routes() {
        let route = policy
            .routes()
            .iter()
            .find(|route| route.method == method.as_str() && route.path == path);
        if exposure == Exposure::Open {
            assert_eq!(route.map(|r| r.auth), Some(Auth::Public), "{method} {path}");
        }
    }
}

/// The default table with each `from` (which must occur exactly once) replaced by its `to`.
fn replaced(edits: &[(&str, &str)]) -> RoutePolicy {
    let mut text = DEFAULT_ROUTE_POLICY_TOML.to_owned();
    for (from, to) in edits {
        assert_eq!(
            text.matches(from).count(),
            1,
            "the default table holds `{from}` once"
        );
        text = text.replace(from, to);
    }
    RoutePolicy::from_toml(&text).expect("the replaced table is valid")
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "{:?}", response.url().path());
    response.json().await.unwrap()
}

async fn a_replaced_table_moves_a_route_permission(kind: Backend) {
    let policy = replaced(&[(
        "path = \"/api/v1/servers\"\nauth = \"servers:read\"",
        "path = \"/api/v1/servers\"\nauth = \"clusters:read\"",
    )]);
    let backend = TestBackend::start_configured(kind, |config| config.routes = policy).await;
    backend.add_user("ro", PASSWORD, &["readonly"]).await;
    backend.add_user("vic", PASSWORD, &["viewer"]).await;
    let (readonly, _, _) = backend.session("ro", PASSWORD).await;
    let (viewer, _, _) = backend.session("vic", PASSWORD).await;

    let listed = json_of(backend.get("/api/v1/servers", Some(&readonly)).await, 200).await;
    assert!(listed["servers"].is_array(), "{listed}");
    let refused = backend.get("/api/v1/servers", Some(&viewer)).await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "INSUFFICIENT_PERMISSIONS");
    assert_eq!(body["detail"], "requires clusters:read");
}
on_both_stores!(
    replaced_route_permission,
    a_replaced_table_moves_a_route_permission
);

async fn a_replaced_table_moves_an_admin_permission(kind: Backend) {
    // Managers (rules:delete, not admin:users) may list everyone's rules; nobody may list
    // another principal's analyses, admins included.
    let rules =
        "path = \"/api/v1/rules\"\nauth = \"rules:read\"\nadmin_permission = \"admin:users\"";
    let analyses =
        "path = \"/api/v1/analysis\"\nauth = \"analysis:read\"\nadmin_permission = \"admin:users\"";
    let policy = replaced(&[
        (rules, &rules.replace("admin:users", "rules:delete")),
        (
            analyses,
            "path = \"/api/v1/analysis\"\nauth = \"analysis:read\"",
        ),
    ]);
    let backend = TestBackend::start_configured(kind, |config| config.routes = policy).await;
    let owner_id = backend.add_user("mia", PASSWORD, &["manager"]).await;
    backend.add_user("mo", PASSWORD, &["manager"]).await;
    backend.add_user("adm", PASSWORD, &["admin"]).await;
    backend.add_user("al", PASSWORD, &["analyst"]).await;
    let (mia, _, _) = backend.session("mia", PASSWORD).await;
    let (mo, _, _) = backend.session("mo", PASSWORD).await;
    let (adm, _, _) = backend.session("adm", PASSWORD).await;
    let (al, _, _) = backend.session("al", PASSWORD).await;
    json_of(
        backend
            .json(
                "POST",
                "/api/v1/rules",
                Some(&mia),
                json!({
                    "name": "keep mugs centred",
                    "conditions": [{ "field": "position_key", "operator": "!=", "value": "center" }],
                    "actions": [{ "action": "alert", "message": "A mug is off centre." }],
                }),
            )
            .await,
        201,
    )
    .await;

    let theirs = json_of(
        backend
            .get(&format!("/api/v1/rules?owner={owner_id}"), Some(&mo))
            .await,
        200,
    )
    .await;
    assert_eq!(theirs["total"], 1, "{theirs}");
    let refused = backend
        .get(&format!("/api/v1/analysis?owner={owner_id}"), Some(&adm))
        .await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "INSUFFICIENT_PERMISSIONS");
    assert_eq!(
        body["detail"],
        "this route gives no access to the analyses of another principal"
    );
    // The caller's own listing is untouched.
    json_of(backend.get("/api/v1/analysis", Some(&adm)).await, 200).await;
    // An analyst reads rules but holds no rules:delete.
    let refused = backend
        .get(&format!("/api/v1/rules?owner={owner_id}"), Some(&al))
        .await;
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "INSUFFICIENT_PERMISSIONS");
    assert_eq!(
        body["detail"],
        "access to the rules of another principal requires rules:delete"
    );
    assert_eq!(
        problem_code(
            backend
                .get(&format!("/api/v1/analysis?owner={owner_id}"), Some(&mo))
                .await
        )
        .await,
        "INSUFFICIENT_PERMISSIONS"
    );
}
on_both_stores!(
    replaced_admin_permission,
    a_replaced_table_moves_an_admin_permission
);
