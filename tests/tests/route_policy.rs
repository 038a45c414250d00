//! An operator's route and role tables hold at the edge and at the backend alike: a real
//! `h200 dev --route-policy FILE --roles FILE` process, with `GET /api/v1/servers` moved from
//! `servers:read` to `clusters:read` and `clusters:read` added to the analyst role.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use h200_e2e::harness::{
    PASSWORD, Running, add_user, edge_key, free_port, h200, h200_binary, wait_healthy,
};
use serde_json::Value;
use shared::permissions::{DEFAULT_ROLES_TOML, Principal, PrincipalKind, RoleSet};
use shared::route_policy::DEFAULT_ROUTE_POLICY_TOML;
use shared::signing::{MessageSigningKey, SignableRequest, content_digest, sign_request};

/// A folder removed when the test ends, however it ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `text` with `from`, which must occur exactly once, replaced by `to`.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "`{from}` occurs once");
    text.replace(from, to)
}

/// Status and JSON body of a response.
async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn login(client: &reqwest::Client, edge: &str, name: &str) -> String {
    let body = serde_json::json!({ "username": name, "password": PASSWORD });
    let (status, body) = answer(
        client
            .post(format!("{edge}/auth/login"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("the edge answers"),
    )
    .await;
    assert_eq!(status, 200, "login of {name}: {body}");
    body["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

async fn servers_through_edge(client: &reqwest::Client, edge: &str, token: &str) -> (u16, Value) {
    answer(
        client
            .get(format!("{edge}/api/v1/servers"))
            .bearer_auth(token)
            .send()
            .await
            .expect("the edge answers"),
    )
    .await
}

/// `GET /api/v1/servers` straight to the backend, signed as the edge signs it, for a principal
/// of `role` under `roles`.
async fn servers_at_backend(
    client: &reqwest::Client,
    backend: &str,
    key: &MessageSigningKey,
    roles: &RoleSet,
    role: &str,
) -> (u16, Value) {
    let mut principal = Principal::anonymous();
    principal.subject = format!("e2e-{role}");
    principal.kind = PrincipalKind::User;
    principal.roles = vec![role.to_owned()];
    principal.permissions = roles.permissions_of(&[role]);
    let header = principal.encode_header();
    let digest = content_digest(b"");
    let request_id = format!("e2e-route-policy-{role}");
    let signable = SignableRequest {
        method: "GET",
        path: "/api/v1/servers",
        query: None,
        content_digest: Some(&digest),
        principal: Some(&header),
        request_id: &request_id,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs();
    let signed = sign_request(&signable, key, now, &format!("nonce-{role}")).expect("signed");
    answer(
        client
            .get(format!("{backend}/api/v1/servers"))
            .header("x-request-id", &request_id)
            .header("content-digest", signed.content_digest)
            .header("signature-input", signed.signature_input)
            .header("signature", signed.signature)
            .header(shared::signing::PRINCIPAL_HEADER, header)
            .send()
            .await
            .expect("the backend answers"),
    )
    .await
}

#[test]
fn a_replaced_route_table_holds_at_the_edge_and_the_backend() {
    let binary = h200_binary();
    let scratch =
        Scratch(std::env::temp_dir().join(format!("h200-e2e-route-policy-{}", std::process::id())));
    let data = scratch.0.clone();
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).expect("data folder");
    for (name, role) in [("ro", "readonly"), ("vic", "viewer"), ("al", "analyst")] {
        add_user(&binary, &data, name, role);
    }
    let routes = replace_once(
        DEFAULT_ROUTE_POLICY_TOML,
        "path = \"/api/v1/servers\"\nauth = \"servers:read\"",
        "path = \"/api/v1/servers\"\nauth = \"clusters:read\"",
    );
    let roles_text = replace_once(
        DEFAULT_ROLES_TOML,
        "permissions = [\"analysis:write\", \"rules:execute\"]",
        "permissions = [\"analysis:write\", \"rules:execute\", \"clusters:read\"]",
    );
    let roles = RoleSet::from_toml(&roles_text).expect("the replaced role table is valid");
    let routes_file = data.join("routes.toml");
    let roles_file = data.join("roles.toml");
    std::fs::write(&routes_file, routes).expect("route table written");
    std::fs::write(&roles_file, roles_text).expect("role table written");

    let (edge_port, backend_port) = (free_port(), free_port());
    let edge = format!("http://127.0.0.1:{edge_port}");
    let backend = format!("http://127.0.0.1:{backend_port}");
    let _dev = Running(
        h200(&binary, &data)
            .arg("dev")
            .args(["--edge-addr", &format!("127.0.0.1:{edge_port}")])
            .args(["--backend-addr", &format!("127.0.0.1:{backend_port}")])
            .arg("--route-policy")
            .arg(&routes_file)
            .arg("--roles")
            .arg(&roles_file)
            .args(["--workers", "0"])
            .stdout(Stdio::null())
            .spawn()
            .expect("h200 dev starts"),
    );
    wait_healthy(&backend, Duration::from_secs(30));
    wait_healthy(&edge, Duration::from_secs(30));
    let key = edge_key(&data);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::new();
        for (name, role, allowed) in [
            ("ro", "readonly", true),
            ("al", "analyst", true),
            ("vic", "viewer", false),
        ] {
            let token = login(&client, &edge, name).await;
            for (place, (status, body)) in [
                ("edge", servers_through_edge(&client, &edge, &token).await),
                (
                    "backend",
                    servers_at_backend(&client, &backend, &key, &roles, role).await,
                ),
            ] {
                if allowed {
                    assert_eq!(status, 200, "{role} at the {place}: {body}");
                    assert!(body["servers"].is_array(), "{role} at the {place}: {body}");
                } else {
                    assert_eq!(status, 403, "{role} at the {place}: {body}");
                    assert_eq!(body["code"], "INSUFFICIENT_PERMISSIONS", "{place}: {body}");
                    assert_eq!(body["detail"], "requires clusters:read", "{place}: {body}");
                }
            }
        }
    });
}
