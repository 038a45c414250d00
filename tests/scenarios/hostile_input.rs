//! Hostile input, one table for every runtime: forged and oversized credentials, missing
//! permissions, bodies that are no JSON or nest without end, uploads with thousands of parts,
//! foreign origins, encoded paths, forged signature headers, oversized and numerous headers and
//! long URLs. Each case states the status and problem code every edge must answer with (or, where
//! the HTTP server itself refuses before the gateway sees the request, a 4xx); every case must be
//! answered within [`ANSWER_LIMIT`], never with a 5xx. All cases run, and a failure lists every
//! case that did not hold, so the three runtimes' tables compare line by line.

use std::time::Duration;

use base64::Engine;
use reqwest::{Method, RequestBuilder};

use crate::{Caller, Outcome, read};

/// The longest any refusal may take.
const ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// What a case must be answered with.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// This status and problem code, as `application/problem+json`.
    Problem(u16, &'static str),
    /// Any 4xx: the HTTP server in front of the gateway may refuse first (e.g. 431).
    ClientError,
    /// An answer that is no 5xx and grants no cross-origin read (no
    /// `access-control-allow-origin`): a simple request from a foreign origin is answered, and
    /// the browser keeps the answer from the page.
    NoCorsGrant,
    /// Any answer but a 5xx (a long query the route ignores).
    NoServerError,
}

/// The tokens the cases use.
struct Tokens {
    viewer: String,
    manager: String,
    analyst: String,
    user: String,
}

/// One case: its name, the request, and the answer every edge must give.
struct Case {
    name: &'static str,
    request: RequestBuilder,
    expect: Expect,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with `alg: none` that claims every permission.
fn unsigned_token() -> String {
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "sub": "00000000-0000-0000-0000-000000000001", "iss": "h200", "aud": "h200-api",
        "exp": 4_000_000_000u64, "iat": 1_700_000_000u64, "jti": "forged",
        "permissions": ["admin:users", "admin:audit"], "roles": ["admin"],
    });
    format!("{header}.{}.", b64url(claims.to_string().as_bytes()))
}

/// A multipart upload with `fields` tiny text parts besides the image.
fn many_part_form(fields: usize) -> Vec<u8> {
    let mut form = Vec::new();
    for i in 0..fields {
        form.extend_from_slice(
            format!("--b1\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nx\r\n")
                .as_bytes(),
        );
    }
    form.extend_from_slice(b"--b1--\r\n");
    form
}

fn cases(caller: &Caller, tokens: &Tokens, n: &mut usize) -> Vec<Case> {
    // Each case calls from an address of its own, so no refusal counts towards another's
    // intrusion or rate state.
    let mut edge = |method: Method, path: &str| {
        *n += 1;
        let ip = format!(
            "10.{}.{}.{}",
            200 + caller.index % 50,
            *n / 250,
            *n % 250 + 1
        );
        caller.edge_from(method, path, &ip).timeout(ANSWER_LIMIT)
    };
    let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    vec![
        Case {
            name: "token with alg none claiming admin",
            request: edge(Method::GET, "/api/v1/admin/users").bearer_auth(unsigned_token()),
            expect: Expect::Problem(401, "INVALID_TOKEN"),
        },
        Case {
            name: "token of 16 KiB",
            request: edge(Method::GET, "/api/v1/rules").bearer_auth("a".repeat(16 * 1024)),
            expect: Expect::Problem(401, "INVALID_TOKEN"),
        },
        Case {
            name: "token with three empty parts",
            request: edge(Method::GET, "/api/v1/rules").bearer_auth(".."),
            expect: Expect::Problem(401, "INVALID_TOKEN"),
        },
        Case {
            name: "API key of 5 000 characters",
            request: edge(Method::GET, "/api/v1/clusters_summary")
                .header("x-api-key", format!("ncs_{}", "k".repeat(5_000))),
            expect: Expect::Problem(401, "INVALID_API_KEY"),
        },
        Case {
            name: "viewer writes a rule",
            request: edge(Method::POST, "/api/v1/rules")
                .bearer_auth(&tokens.viewer)
                .header("content-type", "application/json")
                .body("{}"),
            expect: Expect::Problem(403, "INSUFFICIENT_PERMISSIONS"),
        },
        Case {
            name: "login body that is no JSON",
            request: edge(Method::POST, "/auth/login")
                .header("content-type", "application/json")
                .body(r#"{"username":"#),
            expect: Expect::Problem(422, "INVALID_JSON"),
        },
        Case {
            name: "points nested 20 000 arrays deep",
            request: edge(Method::POST, "/api/v1/process_points")
                .bearer_auth(&tokens.user)
                .header("content-type", "application/json")
                .body(format!(r#"{{"points":{}}}"#, deep(20_000))),
            expect: Expect::Problem(422, "INVALID_JSON"),
        },
        Case {
            name: "rule nested 20 000 arrays deep",
            request: edge(Method::POST, "/api/v1/rules")
                .bearer_auth(&tokens.manager)
                .header("content-type", "application/json")
                .body(format!(r#"{{"name":"r","conditions":{}}}"#, deep(20_000))),
            expect: Expect::Problem(422, "INVALID_JSON"),
        },
        Case {
            name: "upload with 10 000 form fields",
            request: edge(Method::POST, "/api/v1/analysis")
                .bearer_auth(&tokens.analyst)
                .header("content-type", "multipart/form-data; boundary=b1")
                .body(many_part_form(10_000)),
            expect: Expect::Problem(400, "BAD_REQUEST"),
        },
        Case {
            name: "upload without a boundary",
            request: edge(Method::POST, "/api/v1/analysis")
                .bearer_auth(&tokens.analyst)
                .header("content-type", "multipart/form-data")
                .body("--b1--\r\n"),
            expect: Expect::Problem(400, "BAD_REQUEST"),
        },
        Case {
            name: "upload cut off inside a part",
            request: edge(Method::POST, "/api/v1/analysis")
                .bearer_auth(&tokens.analyst)
                .header("content-type", "multipart/form-data; boundary=b1")
                .body("--b1\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\nPNG"),
            expect: Expect::Problem(400, "BAD_REQUEST"),
        },
        Case {
            name: "preflight from the null origin",
            request: edge(Method::OPTIONS, "/api/v1/rules")
                .header("origin", "null")
                .header("access-control-request-method", "POST"),
            expect: Expect::Problem(403, "CORS_ORIGIN_DENIED"),
        },
        Case {
            name: "request from a foreign origin",
            request: edge(Method::GET, "/api/v1/rules")
                .bearer_auth(&tokens.manager)
                .header("origin", "https://evil.example"),
            expect: Expect::NoCorsGrant,
        },
        Case {
            name: "encoded dot segments towards an admin route",
            request: edge(Method::GET, "/api/v1/%2e%2e/admin/users").bearer_auth(&tokens.manager),
            expect: Expect::Problem(404, "NOT_FOUND"),
        },
        Case {
            name: "NUL in the path",
            request: edge(Method::GET, "/api/v1/rules%00").bearer_auth(&tokens.manager),
            expect: Expect::Problem(404, "NOT_FOUND"),
        },
        Case {
            name: "unknown route",
            request: edge(Method::GET, "/api/v1/nowhere").bearer_auth(&tokens.manager),
            expect: Expect::Problem(404, "NOT_FOUND"),
        },
        Case {
            name: "wrong method on a known route",
            request: edge(Method::DELETE, "/api/v1/version"),
            expect: Expect::Problem(405, "METHOD_NOT_ALLOWED"),
        },
        Case {
            name: "signature headers forged by the client, no credentials",
            request: edge(Method::GET, "/api/v1/rules")
                .header("signature-input", r#"edge=("@method");created=1;keyid="edge-1""#)
                .header("signature", "edge=:AAAA:"),
            expect: Expect::Problem(401, "MISSING_CREDENTIALS"),
        },
        Case {
            name: "query of 16 KiB",
            request: edge(
                Method::GET,
                &format!("/api/v1/rules?context={}", "q".repeat(16 * 1024)),
            )
            .bearer_auth(&tokens.manager),
            expect: Expect::NoServerError,
        },
        Case {
            name: "path of 60 KiB",
            request: edge(Method::GET, &format!("/api/v1/{}", "p".repeat(60 * 1024))),
            expect: Expect::ClientError,
        },
        Case {
            name: "one header of 48 KiB",
            request: edge(Method::GET, "/api/v1/rules").header("x-pad", "v".repeat(48 * 1024)),
            expect: Expect::ClientError,
        },
        Case {
            name: "500 headers",
            request: (0..500).fold(edge(Method::GET, "/api/v1/rules"), |request, i| {
                request.header(format!("x-h{i}"), "v")
            }),
            expect: Expect::ClientError,
        },
    ]
}

/// Every case of the table against this edge; fails listing each case that did not hold.
pub async fn hostile_input_refused_alike(caller: &Caller) -> Outcome {
    let tokens = Tokens {
        viewer: caller.token("viewer").await?,
        manager: caller.token("manager").await?,
        analyst: caller.token("analyst").await?,
        user: caller.token("user").await?,
    };
    let mut n = 0;
    let mut failures = Vec::new();
    let mut table = Vec::new();
    for case in cases(caller, &tokens, &mut n) {
        let answer = match case.request.send().await {
            Ok(response) => read(response).await,
            Err(error) => Err(crate::error_chain(&error)),
        };
        let seen = match &answer {
            Ok(answer) => format!("{} {}", answer.status.as_u16(), answer.code()),
            Err(error) => format!("no answer: {error}"),
        };
        table.push(format!("{}: {seen}", case.name));
        let held = match (&answer, case.expect) {
            (Ok(answer), Expect::Problem(status, code)) => answer.refused(status, code),
            (Ok(answer), Expect::ClientError) if answer.status.is_client_error() => Ok(()),
            (Ok(answer), Expect::ClientError) => {
                Err(format!("expected a 4xx, got {seen}: {}", answer.body))
            }
            (Ok(answer), Expect::NoCorsGrant)
                if !answer.status.is_server_error()
                    && answer.header("access-control-allow-origin").is_none() =>
            {
                Ok(())
            }
            (Ok(answer), Expect::NoCorsGrant) => Err(format!(
                "expected no cross-origin grant, got {seen} with {:?}",
                answer.header("access-control-allow-origin")
            )),
            (Ok(answer), Expect::NoServerError) if !answer.status.is_server_error() => Ok(()),
            (Ok(answer), Expect::NoServerError) => Err(format!("a 5xx: {seen}: {}", answer.body)),
            (Err(error), _) => Err(format!("no answer within {ANSWER_LIMIT:?}: {error}")),
        };
        if let Err(why) = held {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    eprintln!("hostile input, as answered:\n  {}", table.join("\n  "));
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} cases did not hold:\n  {}",
            failures.len(),
            table.len(),
            failures.join("\n  ")
        ))
    }
}
