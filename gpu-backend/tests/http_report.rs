//! The compliance report (`GET /api/v1/admin/reports/access`) over real HTTP on SQLite and
//! Postgres: the events of a window by principal and type and its totals, as JSON and as CSV.

mod common;

use common::Backend;
use common::backend::TestBackend;
use serde_json::{Value, json};

const PASSWORD: &str = "Sturdy-Mug-2026!";

async fn access_report(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    let started = now_ms();
    backend.add_user("root", PASSWORD, &["admin"]).await;
    let (root, _, _) = backend.session("root", PASSWORD).await;
    backend.add_user("ana", PASSWORD, &["manager"]).await;
    let (ana, _, _) = backend.session("ana", PASSWORD).await;
    assert_eq!(
        backend.login("ana", "Wrong-Mug-2026!", None).await.status(),
        401
    );
    assert_eq!(
        backend.get("/api/v1/me/export", Some(&ana)).await.status(),
        200
    );
    let gone = backend.add_user("gone", PASSWORD, &["viewer"]).await;
    let erased = backend
        .signed(
            "DELETE",
            &format!("/api/v1/admin/users/{gone}"),
            Some(&root),
            None,
            Vec::new(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), 204);
    let refused = backend.get("/api/v1/admin/audit", Some(&ana)).await;
    assert_eq!(refused.status(), 403, "a manager has no admin:audit");

    let window = format!("from={started}&to={}", now_ms() + 1);
    let report = backend
        .get(
            &format!("/api/v1/admin/reports/access?{window}"),
            Some(&root),
        )
        .await;
    assert_eq!(report.status(), 200);
    let report: Value = report.json().await.unwrap();
    let totals = &report["totals"];
    assert_eq!(totals["login_failures"], 1, "{report}");
    assert_eq!(totals["data_exports"], 1, "{report}");
    assert_eq!(totals["erasures"], 1, "{report}");
    assert_eq!(totals["permission_denials"], 1, "{report}");
    assert!(totals["admin_actions"].as_i64().unwrap() >= 1, "{report}");
    let rows = report["by_principal"].as_array().unwrap();
    let counted: i64 = rows.iter().map(|r| r["count"].as_i64().unwrap()).sum();
    assert_eq!(counted, totals["events"].as_i64().unwrap());
    assert!(
        rows.iter()
            .any(|r| r["principal"] == json!(root.subject) && r["event_type"] == "admin_action"),
        "{report}"
    );

    let csv = backend
        .get(
            &format!("/api/v1/admin/reports/access?{window}&format=csv"),
            Some(&root),
        )
        .await;
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    assert!(
        csv.starts_with("section,principal,event_type,count\r\n"),
        "{csv}"
    );
    assert!(csv.contains("total,,erasures,1\r\n"), "{csv}");
    assert!(csv.contains("total,,login_failures,1\r\n"), "{csv}");

    for bad in [
        format!("from={}&to={started}", started + 10),
        "format=xml".to_owned(),
        "since=1".to_owned(),
    ] {
        let response = backend
            .get(&format!("/api/v1/admin/reports/access?{bad}"), Some(&root))
            .await;
        assert_eq!(response.status(), 422, "{bad}");
    }
    // An empty window reports nothing.
    let empty: Value = backend
        .get("/api/v1/admin/reports/access?from=0&to=1", Some(&root))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(empty["totals"]["events"], 0);
}
on_both_stores!(access_report_over_http, access_report);

fn now_ms() -> i64 {
    gpu_backend::store::now_ms()
}
