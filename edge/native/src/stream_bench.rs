//! `h200 bench stream`: points/s of one stream through its WebSocket end to end (client → edge →
//! signed request → backend → queue → worker → back), against the same points sent as
//! `process_points` HTTP batches of the same size by a keep-alive client, in one run, against a
//! running system (`h200 dev` with raised rate limits: the `heavy` class counts every batch).

use std::time::Instant;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// What to measure.
#[derive(Debug, Clone)]
pub struct StreamBench {
    /// The edge, e.g. `http://127.0.0.1:8080`.
    pub edge_url: String,
    /// A user holding `clusters:write`.
    pub username: String,
    pub password: String,
    /// Batches per measured round and way.
    pub batches: usize,
    /// Points per batch.
    pub points: usize,
    /// Values per point.
    pub dims: usize,
    /// Rounds; each measures HTTP, then the socket.
    pub rounds: usize,
}

/// One measured way: `points` in `seconds`.
struct Figure {
    way: &'static str,
    points: usize,
    seconds: f64,
}

impl Figure {
    fn rate(&self) -> f64 {
        self.points as f64 / self.seconds.max(1e-9)
    }
}

/// Runs the rounds and returns the lines to print: each way's points/s per round, the ratio of
/// the medians and the load average.
pub async fn run(bench: StreamBench) -> anyhow::Result<Vec<String>> {
    let client = reqwest::Client::new();
    let token = login(&client, &bench).await?;
    let run = std::process::id();
    let mut lines = vec![format!(
        "stream bench: {} batches of {} points × {} dims per round and way, {} rounds, at {}",
        bench.batches, bench.points, bench.dims, bench.rounds, bench.edge_url
    )];
    let mut http = Vec::new();
    let mut socket = Vec::new();
    for round in 0..bench.rounds {
        let figure = over_http(
            &client,
            &bench,
            &token,
            &format!("bench-http-{run}-{round}"),
        )
        .await?;
        lines.push(line(round, &figure));
        http.push(figure.rate());
        let figure =
            over_socket(&client, &bench, &token, &format!("bench-ws-{run}-{round}")).await?;
        lines.push(line(round, &figure));
        socket.push(figure.rate());
    }
    let (http, socket) = (median(&mut http), median(&mut socket));
    lines.push(format!(
        "median: websocket {socket:.0} points/s, process_points over HTTP {http:.0} points/s ({:.2}×)",
        socket / http.max(1e-9)
    ));
    lines.push(format!("load average: {}", load_average()));
    Ok(lines)
}

fn line(round: usize, figure: &Figure) -> String {
    format!(
        "round {}: {}: {:.0} points/s ({} points in {:.3} s)",
        round + 1,
        figure.way,
        figure.rate(),
        figure.points,
        figure.seconds
    )
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// Batch `i`'s points: a few well-separated clusters, the same for both ways.
fn batch(bench: &StreamBench, i: usize) -> Vec<Vec<f64>> {
    (0..bench.points)
        .map(|k| {
            let n = i * bench.points + k;
            let center = (n % 4) as f64 * 10.0;
            (0..bench.dims)
                .map(|d| center + ((n * 31 + d * 17) % 100) as f64 / 100.0)
                .collect()
        })
        .collect()
}

async fn post_json(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: &Value,
) -> anyhow::Result<(u16, Value)> {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.context("the edge answers")?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.context("reading the answer")?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

async fn login(client: &reqwest::Client, bench: &StreamBench) -> anyhow::Result<String> {
    let (status, answer) = post_json(
        client,
        format!("{}/auth/login", bench.edge_url),
        None,
        &json!({ "username": bench.username, "password": bench.password }),
    )
    .await?;
    match answer["access_token"].as_str() {
        Some(token) if status == 200 => Ok(token.to_owned()),
        _ => bail!("login as {} failed ({status}): {answer}", bench.username),
    }
}

async fn over_http(
    client: &reqwest::Client,
    bench: &StreamBench,
    token: &str,
    stream: &str,
) -> anyhow::Result<Figure> {
    let url = format!("{}/api/v1/process_points", bench.edge_url);
    let body = |i: usize| json!({ "points": batch(bench, i), "stream": stream });
    // The stream's first batch creates it; it is not measured.
    post_json(client, url.clone(), Some(token), &body(0)).await?;
    let bodies: Vec<Value> = (1..=bench.batches).map(body).collect();
    let started = Instant::now();
    for body in &bodies {
        let (status, answer) = post_json(client, url.clone(), Some(token), body).await?;
        if status != 200 {
            bail!("process_points answered {status}: {answer}");
        }
    }
    Ok(Figure {
        way: "process_points over HTTP",
        points: bench.batches * bench.points,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn over_socket(
    client: &reqwest::Client,
    bench: &StreamBench,
    token: &str,
    stream: &str,
) -> anyhow::Result<Figure> {
    let (status, answer) = post_json(
        client,
        format!("{}/api/v1/ws-tickets", bench.edge_url),
        Some(token),
        &json!({ "stream": stream }),
    )
    .await?;
    let Some(url) = answer["url"].as_str().filter(|_| status == 201) else {
        bail!("no ticket ({status}): {answer}");
    };
    let ws_url = format!("{}{url}", bench.edge_url.replacen("http", "ws", 1));
    let mut request = ws_url.into_client_request().context("the socket URL")?;
    request.headers_mut().insert(
        "origin",
        HeaderValue::from_str(&bench.edge_url).context("the edge URL as an origin")?,
    );
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .context("opening the socket")?;
    let (mut sink, mut incoming) = socket.split();
    let message = |i: usize| {
        Message::Text(
            json!({ "type": "points", "id": format!("b{i}"), "points": batch(bench, i) })
                .to_string()
                .into(),
        )
    };
    sink.send(message(0)).await.context("sending")?;
    next_result(&mut incoming, 0).await?;
    let messages: Vec<Message> = (1..=bench.batches).map(message).collect();
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        for message in messages {
            sink.send(message).await?;
        }
        Ok::<_, tokio_tungstenite::tungstenite::Error>(sink)
    });
    for i in 1..=bench.batches {
        next_result(&mut incoming, i).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut sink = sender.await.context("the sender")?.context("sending")?;
    let _ = sink.close().await;
    Ok(Figure {
        way: "websocket",
        points: bench.batches * bench.points,
        seconds,
    })
}

async fn next_result<S>(incoming: &mut S, i: usize) -> anyhow::Result<()>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match incoming.next().await {
            Some(Ok(Message::Text(text))) => {
                let answer: Value = serde_json::from_str(&text).context("a JSON message")?;
                if answer["type"] != "result" || answer["id"] != format!("b{i}") {
                    bail!("batch {i}: {answer}");
                }
                return Ok(());
            }
            Some(Ok(Message::Close(frame))) => bail!("the socket closed: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(error)) => bail!("the socket failed: {error}"),
            None => bail!("the socket ended"),
        }
    }
}
