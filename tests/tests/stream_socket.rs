//! Stream WebSockets over real connections (tokio-tungstenite) against real `h200 backend` and
//! `h200 edge` processes: ordered results for 1 000 batches sent back to back, a refused message
//! that leaves the socket usable, a revoked token that closes the socket within the revocation
//! horizon, a ticket that works once and only for its stream, a foreign `Origin` refused. The
//! edge runs with the route table's rate classes raised a thousandfold, so a thousand batches
//! test ordering, not the `heavy` class (which counts every message like an HTTP request).

use std::sync::OnceLock;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use h200_e2e::harness::{
    ALLOWED_ORIGIN, Backend, PASSWORD, Running, free_port, h200, wait_healthy,
};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// A backend (one worker inside it) and a native edge in front of it.
struct System {
    edge_url: String,
    _edge: Running,
    _backend: Backend,
}

/// Where the tests find the system [`main`] started (the system itself stays in `main`, so it is
/// dropped, and its processes killed, when the tests are done; a static would never be).
struct Shared {
    edge_url: String,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn system() -> &'static Shared {
    SHARED
        .get()
        .expect("main starts the system before the tests")
}

fn start() -> System {
    let backend = Backend::start("stream-socket");
    let routes = backend.data.join("routes-raised.toml");
    let raised: String = shared::route_policy::DEFAULT_ROUTE_POLICY_TOML
        .lines()
        .map(|line| match line.split_once(" = ") {
            Some((key @ ("limit" | "burst"), value)) if value.parse::<u64>().is_ok() => {
                format!("{key} = {value}000")
            }
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&routes, raised).expect("route table written");
    let port = free_port();
    let edge_url = format!("http://127.0.0.1:{port}");
    let edge = Running(
        h200(&backend.binary, &backend.data)
            .args(["edge", "--addr", &format!("127.0.0.1:{port}")])
            .args(["--backend-url", &backend.url])
            .args(["--cors-origins", ALLOWED_ORIGIN])
            .arg("--route-policy")
            .arg(&routes)
            .spawn()
            .expect("edge starts"),
    );
    wait_healthy(&edge_url, Duration::from_secs(30));
    System {
        edge_url,
        _edge: edge,
        _backend: backend,
    }
}

/// One test per behaviour (libtest-mimic), against one system that is stopped at the end: a
/// static would never be dropped, and its processes would outlive the tests.
fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let tests: [(&str, fn()); 5] = [
        (
            "a_thousand_batches_sent_back_to_back_come_back_in_order",
            a_thousand_batches_sent_back_to_back_come_back_in_order,
        ),
        (
            "a_refused_message_answers_an_error_and_the_socket_stays_usable",
            a_refused_message_answers_an_error_and_the_socket_stays_usable,
        ),
        (
            "a_revoked_token_loses_its_socket_within_the_revocation_horizon",
            a_revoked_token_loses_its_socket_within_the_revocation_horizon,
        ),
        (
            "a_ticket_opens_one_socket_and_only_for_its_stream",
            a_ticket_opens_one_socket_and_only_for_its_stream,
        ),
        (
            "an_upgrade_from_a_foreign_origin_is_refused",
            an_upgrade_from_a_foreign_origin_is_refused,
        ),
    ];
    let trials: Vec<Trial> = tests
        .into_iter()
        .map(|(name, test)| {
            Trial::test(name, move || {
                std::panic::catch_unwind(test).map_err(|panic| {
                    let why = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_else(|| "the test panicked".to_owned());
                    Failed::from(why)
                })
            })
        })
        .collect();
    let selected = trials
        .iter()
        .any(|trial| !args.is_filtered_out(trial) && !args.is_ignored(trial));
    let system = (selected && !args.list).then(start);
    if let Some(system) = &system {
        let _ = SHARED.set(Shared {
            edge_url: system.edge_url.clone(),
        });
    }
    let conclusion = libtest_mimic::run(&args, trials);
    drop(system);
    conclusion.exit_code()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// POSTs `body` as JSON to `url` (with `token` as Bearer): the status and the JSON answer.
async fn post(url: String, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the edge answers");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("an answer");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// An access token of the fixture user with the `user` role (clusters:write).
async fn token(edge_url: &str) -> String {
    let (_, answer) = post(
        format!("{edge_url}/auth/login"),
        None,
        &json!({ "username": "e2e-user", "password": PASSWORD }),
    )
    .await;
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {answer}"))
        .to_owned()
}

/// A ticket for `stream`, asked with `token`.
async fn ticket(edge_url: &str, token: &str, stream: &str) -> String {
    let (status, answer) = post(
        format!("{edge_url}/api/v1/ws-tickets"),
        Some(token),
        &json!({ "stream": stream }),
    )
    .await;
    assert_eq!(status, 201, "a ticket is issued: {answer}");
    assert_eq!(answer["stream"], stream);
    assert_eq!(answer["expires_in"], 30);
    answer["ticket"].as_str().expect("a ticket").to_owned()
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `stream`'s socket with `ticket` from `origin`: the socket, or the refusal's status and
/// problem code.
async fn open(
    edge_url: &str,
    stream: &str,
    ticket: &str,
    origin: &str,
) -> Result<Socket, (u16, String)> {
    let url = format!(
        "{}/api/v1/streams/{stream}/ws?ticket={ticket}",
        edge_url.replacen("http", "ws", 1)
    );
    let mut request = url.into_client_request().expect("a socket request");
    request
        .headers_mut()
        .insert("origin", HeaderValue::from_str(origin).expect("origin"));
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(WsError::Http(response)) => {
            let body: Value = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((
                response.status().as_u16(),
                body["code"].as_str().unwrap_or("").to_owned(),
            ))
        }
        Err(other) => panic!("the upgrade failed: {other}"),
    }
}

/// The next text message as JSON (pings are answered by the client library).
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .expect("a message within a minute")
            .expect("the socket is open")
            .expect("a frame");
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON message"),
            Message::Close(frame) => panic!("the socket closed: {frame:?}"),
            _ => {}
        }
    }
}

fn points_message(id: &str, seed: usize) -> Message {
    let points: Vec<Vec<f64>> = (0..8)
        .map(|k| {
            let x = ((seed * 8 + k) % 17) as f64;
            vec![x, x * 0.5, 1.0]
        })
        .collect();
    Message::Text(
        json!({ "type": "points", "id": id, "points": points })
            .to_string()
            .into(),
    )
}

fn a_thousand_batches_sent_back_to_back_come_back_in_order() {
    let system = system();
    runtime().block_on(async {
        let token = token(&system.edge_url).await;
        let ticket = ticket(&system.edge_url, &token, "ordered").await;
        let socket = open(&system.edge_url, "ordered", &ticket, ALLOWED_ORIGIN)
            .await
            .expect("the socket opens");
        let (mut sink, mut incoming) = socket.split();
        let sender = tokio::spawn(async move {
            for i in 0..1000 {
                sink.send(points_message(&format!("b{i}"), i))
                    .await
                    .expect("sent");
            }
            sink
        });
        let mut processed = 0;
        for i in 0..1000 {
            let message = loop {
                let frame = tokio::time::timeout(Duration::from_secs(60), incoming.next())
                    .await
                    .expect("a result within a minute")
                    .expect("open")
                    .expect("a frame");
                if let Message::Text(text) = frame {
                    break serde_json::from_str::<Value>(&text).expect("JSON");
                }
            };
            assert_eq!(message["type"], "result", "batch {i}: {message}");
            assert_eq!(message["id"], format!("b{i}"), "results in send order");
            assert_eq!(message["results"].as_array().map(Vec::len), Some(8));
            processed = message["points_processed"].as_u64().unwrap_or(processed);
        }
        let _sink = sender.await.expect("sender ends");
        assert!(processed > 0, "the results report the points processed");
    });
}

fn a_refused_message_answers_an_error_and_the_socket_stays_usable() {
    let system = system();
    runtime().block_on(async {
        let token = token(&system.edge_url).await;
        let ticket = ticket(&system.edge_url, &token, "refusals").await;
        let mut socket = open(&system.edge_url, "refusals", &ticket, ALLOWED_ORIGIN)
            .await
            .expect("the socket opens");
        let refused = [
            (
                json!({ "type": "points", "id": "dims", "points": [[1.0, 2.0], [3.0]] }),
                "DIMENSION_MISMATCH",
            ),
            (
                json!({ "type": "points", "id": "nan", "points": [[1e300, 1e300]] }),
                "INVALID_INPUT",
            ),
            (
                json!({ "type": "points", "id": "extra", "points": [[1.0]], "admin": true }),
                "UNKNOWN_FIELD",
            ),
            (
                json!({ "type": "points", "id": "other", "points": [[1.0]], "stream": "x" }),
                "VALIDATION_FAILED",
            ),
        ];
        for (message, code) in &refused {
            socket
                .send(Message::Text(message.to_string().into()))
                .await
                .expect("sent");
            let answer = next_json(&mut socket).await;
            assert_eq!(answer["type"], "error", "{answer}");
            assert_eq!(answer["code"], *code, "{answer}");
            assert_eq!(answer["id"], message["id"], "{answer}");
        }
        socket
            .send(Message::Text("not json".into()))
            .await
            .expect("sent");
        assert_eq!(next_json(&mut socket).await["type"], "error");
        socket.send(points_message("good", 1)).await.expect("sent");
        let answer = next_json(&mut socket).await;
        assert_eq!(answer["type"], "result", "{answer}");
        assert_eq!(answer["id"], "good");
        socket
            .send(Message::Text(r#"{"type":"status","id":"st"}"#.into()))
            .await
            .expect("sent");
        let status = next_json(&mut socket).await;
        assert_eq!(status["type"], "status", "{status}");
        assert_eq!(status["stream"], "refusals", "{status}");
        assert_eq!(status["id"], "st");
    });
}

fn a_revoked_token_loses_its_socket_within_the_revocation_horizon() {
    let system = system();
    runtime().block_on(async {
        let token = token(&system.edge_url).await;
        let ticket = ticket(&system.edge_url, &token, "revoked").await;
        let mut socket = open(&system.edge_url, "revoked", &ticket, ALLOWED_ORIGIN)
            .await
            .expect("the socket opens");
        socket
            .send(points_message("before", 0))
            .await
            .expect("sent");
        assert_eq!(next_json(&mut socket).await["type"], "result");
        let (status, answer) = post(
            format!("{}/auth/logout", system.edge_url),
            Some(&token),
            &json!({}),
        )
        .await;
        assert!((200..300).contains(&status), "logout: {status} {answer}");
        // The horizon: the revocation sync (5 s) plus the socket's recheck (5 s); 20 s of slack
        // for a loaded machine. The socket is idle meanwhile: the timer, not a message, finds it.
        let closed = tokio::time::timeout(Duration::from_secs(30), async {
            let mut told = None;
            while let Some(frame) = socket.next().await {
                match frame {
                    Ok(Message::Text(text)) => {
                        told = serde_json::from_str::<Value>(&text).ok();
                    }
                    Ok(Message::Close(frame)) => return (told, frame),
                    Ok(_) => {}
                    Err(_) => return (told, None),
                }
            }
            (told, None)
        })
        .await
        .expect("the socket closes within the horizon");
        let (told, frame) = closed;
        let told = told.expect("an error message before the close");
        assert_eq!(told["type"], "error");
        assert_eq!(told["code"], "REVOKED_TOKEN", "{told}");
        let frame = frame.expect("a close frame");
        assert_eq!(u16::from(frame.code), 1008);
        assert_eq!(frame.reason.as_str(), "REVOKED_TOKEN");
    });
}

fn a_ticket_opens_one_socket_and_only_for_its_stream() {
    let system = system();
    runtime().block_on(async {
        let token = token(&system.edge_url).await;
        let ticket = ticket(&system.edge_url, &token, "mine").await;
        assert_eq!(
            open(&system.edge_url, "theirs", &ticket, ALLOWED_ORIGIN)
                .await
                .err(),
            Some((401, "INVALID_TICKET".to_owned())),
            "a ticket for another stream"
        );
        let first = open(&system.edge_url, "mine", &ticket, ALLOWED_ORIGIN).await;
        assert!(first.is_ok(), "the ticket opens its stream once");
        assert_eq!(
            open(&system.edge_url, "mine", &ticket, ALLOWED_ORIGIN)
                .await
                .err(),
            Some((401, "INVALID_TICKET".to_owned())),
            "the ticket is spent"
        );
        assert_eq!(
            open(&system.edge_url, "mine", "bm90LWEtdGlja2V0", ALLOWED_ORIGIN)
                .await
                .err(),
            Some((401, "INVALID_TICKET".to_owned())),
            "a forged ticket"
        );
        let no_ticket = reqwest::Client::new()
            .get(format!("{}/api/v1/streams/mine/ws", system.edge_url))
            .bearer_auth(&token)
            .send()
            .await
            .expect("answers");
        assert_eq!(
            no_ticket.status().as_u16(),
            426,
            "a plain GET is told to upgrade"
        );
    });
}

fn an_upgrade_from_a_foreign_origin_is_refused() {
    let system = system();
    runtime().block_on(async {
        let token = token(&system.edge_url).await;
        let ticket = ticket(&system.edge_url, &token, "origin").await;
        assert_eq!(
            open(&system.edge_url, "origin", &ticket, "https://evil.example")
                .await
                .err(),
            Some((403, "CORS_ORIGIN_DENIED".to_owned()))
        );
        // The refusal came before the ticket was spent: from an allowed origin it still opens.
        assert!(
            open(&system.edge_url, "origin", &ticket, ALLOWED_ORIGIN)
                .await
                .is_ok()
        );
    });
}
