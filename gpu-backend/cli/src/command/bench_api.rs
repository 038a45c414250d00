//! `h200 bench api`: the whole public path under wrk load (the native edge, its signed hop, the
//! backend and its store, each its own `h200` process) for an authenticated
//! `GET /api/v1/clusters_summary`, against the seeds' stack (FastAPI + uvicorn, PyJWT EdDSA, a
//! permission dependency, a Redis sliding-window rate limit, the security headers) with one and
//! with two uvicorn workers, in alternating rounds of the same run. CPU per request comes from
//! the scheduler's accounting of each process (`/proc/PID/stat`, children included).
//!
//! The peer (`bench/fastapi_peer.py`) is installed by the bench into a virtualenv under the tools
//! folder (`H200_TOOLS_DIR`, default `~/.cache/h200/tools`), never shipped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::cli::BenchApiArgs;

/// The route every request takes.
const BENCH_PATH: &str = "/api/v1/clusters_summary";
/// The peer's source, a bench fixture.
const PEER_SOURCE: &str = include_str!("../../bench/fastapi_peer.py");
/// What the peer's virtualenv holds; a new pin gets a new folder.
const PEER_REQUIREMENTS: &[&str] = &[
    "fastapi==0.165.0",
    "uvicorn[standard]==0.54.0",
    "pyjwt[crypto]==2.15.1",
    "redis==8.1.0",
    "hiredis==3.5.0",
];
const PEER_VENV: &str = "fastapi-peer-1";
/// The peer's rate-limit budget during the run, as `edge_native::bench::unthrottled_route_table`
/// raises ours: every request is counted, none refused.
const UNTHROTTLED_LIMIT: u64 = 1_000_000_000;
const BENCH_USER: &str = "bench";
const BENCH_PASSWORD: &str = "Bench-Mug-2026!x";
/// Scheduler ticks per second of `/proc/PID/stat` (`USER_HZ`, 100 on every Linux ABI).
const TICKS_PER_SEC: f64 = 100.0;
/// Seconds of load on each target before the measured rounds.
const WARMUP_SECS: u64 = 2;

/// Runs the bench and prints its lines.
pub fn run(args: &BenchApiArgs) -> anyhow::Result<()> {
    let wrk = which("wrk").context(
        "wrk is needed for the load (Debian: apt-get install wrk; https://github.com/wg/wrk)",
    )?;
    let exe = std::env::current_exe().context("finding the h200 binary")?;
    let scratch = Scratch::new()?;
    let policy = scratch.path.join("route_policy.toml");
    std::fs::write(&policy, edge_native::bench::unthrottled_route_table()?)
        .context("writing the bench route table")?;

    // Ours: a bench user, the backend, the edge in front of it, a token from the edge's login.
    let data_dir = scratch.path.join("data");
    add_bench_user(&exe, &data_dir)?;
    let backend_addr = free_port()?;
    let edge_addr = free_port()?;
    let log = |name: &str| -> anyhow::Result<Stdio> {
        Ok(std::fs::File::create(scratch.path.join(name))?.into())
    };
    let backend = Process::spawn(
        "backend",
        Command::new(&exe)
            .args(["backend", "--addr", &backend_addr.to_string()])
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--route-policy")
            .arg(&policy)
            .stdout(Stdio::null())
            .stderr(log("backend.log")?),
    )?;
    wait_healthy(backend_addr, &backend)?;
    let edge = Process::spawn(
        "edge",
        Command::new(&exe)
            .args(["edge", "--addr", &edge_addr.to_string()])
            .args(["--backend-url", &format!("http://{backend_addr}")])
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--route-policy")
            .arg(&policy)
            .stdout(Stdio::null())
            .stderr(log("edge.log")?),
    )?;
    wait_healthy(edge_addr, &edge)?;
    let token = login(edge_addr)?;
    let jwks = http(backend_addr, "GET", "/.well-known/jwks.json", &[], "")?.1;

    let mut targets = vec![Target {
        name: "h200",
        addr: edge_addr,
        processes: vec![("edge", edge), ("backend", backend)],
        redis: None,
        rounds: Vec::new(),
    }];
    if !args.no_peer {
        let python = install_peer(&args.python)?;
        let redis_pid = redis_pid(&args.redis_url)?;
        std::fs::write(scratch.path.join("fastapi_peer.py"), PEER_SOURCE)?;
        for workers in [1, 2] {
            let addr = free_port()?;
            let peer = Process::spawn(
                if workers == 1 {
                    "uvicorn-1"
                } else {
                    "uvicorn-2"
                },
                Command::new(&python)
                    .args(["-m", "uvicorn", "fastapi_peer:app", "--no-access-log"])
                    .args(["--log-level", "warning", "--host", "127.0.0.1"])
                    .args(["--port", &addr.port().to_string()])
                    .args(["--workers", &workers.to_string()])
                    .current_dir(&scratch.path)
                    .env("PEER_JWKS", &jwks)
                    .env("PEER_REDIS_URL", &args.redis_url)
                    .env(
                        "PEER_REDIS_PREFIX",
                        format!("h200-bench-api:{}:{workers}", std::process::id()),
                    )
                    .env("PEER_RATE_LIMIT", UNTHROTTLED_LIMIT.to_string())
                    .stdout(Stdio::null())
                    .stderr(log(&format!("uvicorn-{workers}.log"))?),
            )?;
            wait_healthy(addr, &peer)?;
            targets.push(Target {
                name: if workers == 1 {
                    "fastapi 1 worker"
                } else {
                    "fastapi 2 workers"
                },
                addr,
                processes: vec![("uvicorn", peer)],
                redis: redis_pid,
                rounds: Vec::new(),
            });
        }
    }

    let script = scratch.path.join("bench.lua");
    std::fs::write(&script, wrk_script(&token)).context("writing the wrk script")?;
    for target in &targets {
        let answer = http(
            target.addr,
            "GET",
            BENCH_PATH,
            &[("authorization", &format!("Bearer {token}"))],
            "",
        )?;
        if answer.0 != 200 {
            bail!(
                "{} answers {} to the bench request: {}",
                target.name,
                answer.0,
                answer.1
            );
        }
    }

    println!(
        "api bench: authenticated GET {BENCH_PATH}, wrk {} threads, {} connections, {} rounds of {} s per target, alternating; load average {}",
        args.threads,
        args.connections,
        args.rounds,
        args.duration_secs,
        load_average()
    );
    let wrk_run = |target: &Target, secs: u64| {
        run_wrk(
            &wrk,
            &script,
            target.addr,
            args.threads,
            args.connections,
            secs,
        )
    };
    for target in &targets {
        wrk_run(target, WARMUP_SECS)?;
    }
    for round in 1..=args.rounds {
        for target in &mut targets {
            let before = target.cpu_ticks();
            let load = wrk_run(target, args.duration_secs)?;
            let after = target.cpu_ticks();
            let measured = Round {
                load,
                cpu_ticks: after
                    .iter()
                    .zip(&before)
                    .map(|(a, b)| a.saturating_sub(*b))
                    .collect(),
            };
            println!(
                "round {round} {:<18} {}",
                target.name,
                target.line(&measured)
            );
            target.rounds.push(measured);
        }
    }
    println!("over all rounds (load average {}):", load_average());
    for target in &targets {
        println!("{:<18} {}", target.name, target.line(&target.total()));
    }
    let ours = targets[0].total();
    let cpu_us = ours.cpu_per_request_us().iter().sum::<f64>();
    println!(
        "h200 server CPU per request (edge + backend): {cpu_us:.0} µs (target ≤ 100 µs: {})",
        if cpu_us <= 100.0 { "met" } else { "not met" }
    );
    for peer in targets.iter().skip(1) {
        let theirs = peer.total();
        let ratio = ours.load.rate() / theirs.load.rate();
        let target = if peer.name.contains('2') {
            format!(
                " (target ≥ 10×: {})",
                if ratio >= 10.0 { "met" } else { "not met" }
            )
        } else {
            String::new()
        };
        println!(
            "h200 / {}: {ratio:.1}× the req/s, {:.1}× less server CPU per request{target}",
            peer.name,
            theirs.cpu_per_request_us().iter().sum::<f64>() / cpu_us
        );
    }
    Ok(())
}

/// One target: its address, the processes whose CPU counts, and its measured rounds.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    processes: Vec<(&'static str, Process)>,
    /// The Redis server the peer's rate limit runs on, whose CPU the peer's requests cost too
    /// (shared by both peers; each is measured alone, so its share is theirs).
    redis: Option<u32>,
    rounds: Vec<Round>,
}

impl Target {
    /// CPU ticks used so far, per process (and Redis last, when there is one).
    fn cpu_ticks(&self) -> Vec<u64> {
        let mut ticks: Vec<u64> = self
            .processes
            .iter()
            .map(|(_, p)| tree_cpu_ticks(p.child.id()))
            .collect();
        if let Some(pid) = self.redis {
            ticks.push(tree_cpu_ticks(pid));
        }
        ticks
    }

    fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.processes.iter().map(|(n, _)| *n).collect();
        if self.redis.is_some() {
            names.push("redis");
        }
        names
    }

    fn total(&self) -> Round {
        let mut total = Round::default();
        for round in &self.rounds {
            total.load.requests += round.load.requests;
            total.load.duration_us += round.load.duration_us;
            total.load.p50_us.push(round.load.p50_us[0]);
            total.load.p99_us.push(round.load.p99_us[0]);
            total.load.errors += round.load.errors;
            total.cpu_ticks.resize(round.cpu_ticks.len(), 0);
            for (sum, ticks) in total.cpu_ticks.iter_mut().zip(&round.cpu_ticks) {
                *sum += ticks;
            }
        }
        total
    }

    fn line(&self, round: &Round) -> String {
        let cpu = round.cpu_per_request_us();
        let parts: Vec<String> = self
            .names()
            .iter()
            .zip(&cpu)
            .map(|(name, us)| format!("{name} {us:.0}"))
            .collect();
        format!(
            "{:>7.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} non-2xx/errors; CPU µs per request: {} (sum {:.0})",
            round.load.rate(),
            median(&round.load.p50_us) / 1e3,
            median(&round.load.p99_us) / 1e3,
            round.load.errors,
            parts.join(", "),
            cpu.iter().sum::<f64>()
        )
    }
}

/// What one or more wrk runs measured.
#[derive(Debug, Default, Clone)]
struct Load {
    requests: u64,
    duration_us: u64,
    /// Per run.
    p50_us: Vec<f64>,
    p99_us: Vec<f64>,
    errors: u64,
}

impl Load {
    fn rate(&self) -> f64 {
        self.requests as f64 / (self.duration_us.max(1) as f64 / 1e6)
    }
}

#[derive(Debug, Default, Clone)]
struct Round {
    load: Load,
    cpu_ticks: Vec<u64>,
}

impl Round {
    fn cpu_per_request_us(&self) -> Vec<f64> {
        self.cpu_ticks
            .iter()
            .map(|ticks| *ticks as f64 / TICKS_PER_SEC * 1e6 / self.load.requests.max(1) as f64)
            .collect()
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// A child process, killed when dropped.
struct Process {
    child: Child,
}

impl Process {
    fn spawn(name: &str, command: &mut Command) -> anyhow::Result<Process> {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Process { child })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SIGTERM first, so uvicorn's master takes its workers down with it.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch folder, removed when dropped.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let path = std::env::temp_dir().join(format!(
            "h200-bench-api-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn add_bench_user(exe: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let mut child = Command::new(exe)
        .args(["user", "add", BENCH_USER, "--role", "readonly"])
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting h200 user add")?;
    child
        .stdin
        .take()
        .context("h200 user add has no stdin")?
        .write_all(format!("{BENCH_PASSWORD}\n").as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "h200 user add failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn login(edge: SocketAddr) -> anyhow::Result<String> {
    let body = serde_json::json!({"username": BENCH_USER, "password": BENCH_PASSWORD}).to_string();
    let (status, answer) = http(
        edge,
        "POST",
        "/auth/login",
        &[("content-type", "application/json")],
        &body,
    )?;
    if status != 200 {
        bail!("the bench login answered {status}: {answer}");
    }
    let answer: Value = serde_json::from_str(&answer).context("reading the login answer")?;
    answer["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("the login answer has no access_token")
}

/// Installs the peer's virtualenv when it is missing; returns its python.
fn install_peer(python: &str) -> anyhow::Result<PathBuf> {
    let tools = std::env::var_os("H200_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/h200/tools")))
        .context("neither H200_TOOLS_DIR nor HOME is set")?;
    let venv = tools.join(PEER_VENV);
    let venv_python = venv.join("bin/python");
    let ready = venv.join(".installed");
    if ready.exists() {
        return Ok(venv_python);
    }
    eprintln!("installing the FastAPI peer into {}", venv.display());
    let status = Command::new(python)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .with_context(|| format!("running {python} -m venv (python3 is needed for the peer)"))?;
    if !status.success() {
        bail!("{python} -m venv failed");
    }
    let status = Command::new(&venv_python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PEER_REQUIREMENTS)
        .status()
        .context("running pip")?;
    if !status.success() {
        bail!("pip could not install the peer: {PEER_REQUIREMENTS:?}");
    }
    std::fs::write(&ready, PEER_REQUIREMENTS.join("\n"))?;
    Ok(venv_python)
}

/// The pid of the Redis server at `url` (from `INFO server`), so its CPU counts for the peer.
fn redis_pid(url: &str) -> anyhow::Result<Option<u32>> {
    let authority = url
        .strip_prefix("redis://")
        .context("--redis-url must be redis://HOST:PORT[/DB]")?;
    let host_port = authority.split('/').next().unwrap_or(authority);
    let mut stream = TcpStream::connect(host_port)
        .with_context(|| format!("connecting to Redis at {host_port} (the peer's rate limit)"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"INFO server\r\n")?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    while !String::from_utf8_lossy(&answer).contains("process_id:") || !answer.ends_with(b"\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&answer).contains("executable:") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let pid = text
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok());
    // A Redis in another namespace (a container) is not ours to account.
    Ok(pid.filter(|pid| Path::new(&format!("/proc/{pid}/stat")).exists()))
}

/// utime + stime of `pid` and every descendant, in ticks.
fn tree_cpu_ticks(pid: u32) -> u64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    let children: u64 = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .map(tree_cpu_ticks)
        .sum();
    own + children
}

fn wrk_script(token: &str) -> String {
    format!(
        r#"wrk.headers["Authorization"] = "Bearer {token}"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("H200-WRK %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"#
    )
}

fn run_wrk(
    wrk: &Path,
    script: &Path,
    addr: SocketAddr,
    threads: usize,
    connections: usize,
    secs: u64,
) -> anyhow::Result<Load> {
    let output = Command::new(wrk)
        .args(["-t", &threads.to_string(), "-c", &connections.to_string()])
        .args(["-d", &format!("{secs}s"), "-s"])
        .arg(script)
        .arg(format!("http://{addr}{BENCH_PATH}"))
        .output()
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("H200-WRK "))
        .with_context(|| format!("wrk printed no summary: {stdout}"))?;
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let [requests, duration_us, p50, p99, errors] = numbers[..] else {
        bail!("wrk's summary is malformed: {line}");
    };
    Ok(Load {
        requests,
        duration_us,
        p50_us: vec![p50 as f64],
        p99_us: vec![p99 as f64],
        errors,
    })
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

fn wait_healthy(addr: SocketAddr, process: &Process) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, _)) = http(addr, "GET", "/health", &[], "") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "nothing answers /health at {addr} (pid {})",
                process.child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 exchange on a fresh connection: the status and the body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer);
    let (head, rest) = text.split_once("\r\n\r\n").context("no HTTP head")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        status,
        if chunked {
            dechunk(rest)
        } else {
            rest.to_owned()
        },
    ))
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || tail.len() < size {
            break;
        }
        body.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    body
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn which(name: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .with_context(|| format!("{name} is not on PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk("4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n"), "abcdef");
    }

    #[test]
    fn the_peer_fixture_is_the_seeds_stack() {
        for part in [
            "EdDSA",
            "zremrangebyscore",
            "clusters:read",
            "X-Content-Type-Options",
        ] {
            assert!(PEER_SOURCE.contains(part), "{part}");
        }
    }
}
