//! The `h200` command line: its arguments only. Every flag is also an `H200_*` environment
//! variable; the commands themselves live in [`crate::command`], one file each.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use gpu_backend::keys::KeyOverrides;

/// The H200 System: secure edge gateway and GPU backend.
#[derive(Debug, Parser)]
#[command(name = "h200", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        env = "H200_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

// Parsed once per process: the size of the largest variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the backend API (signed requests only).
    Backend(BackendArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Manage key material.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Inspect the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Find and position the mugs in an image; prints the analysis as JSON.
    Detect(DetectArgs),
    /// Train the mug detector on synthetic scenes (progress on stderr, resumable).
    TrainDetector(TrainDetectorArgs),
    /// Serve the edge gateway (the public API) in front of a backend.
    Edge(edge_native::args::EdgeArgs),
    /// Run the whole system on this machine: backend and edge, SQLite in the data folder.
    Dev(crate::command::dev::DevArgs),
    /// Pull jobs from the queue and run them on this machine's kernels.
    Worker(WorkerArgs),
    /// Ask a URL once and exit 0 on a 2xx answer (the containers' health check).
    Probe(crate::command::probe::ProbeArgs),
    /// Cluster a stream of points (one JSON array per line) with NCS; one JSON answer per line
    /// on stdout, points/s on stderr. Also the NCS benchmark.
    Ncs {
        /// `exact` follows the reference point by point; `batched` scores chunks of points
        /// against the centroids with one matrix product (on CUDA when built with `cuda`).
        #[arg(long, env = "H200_NCS_MODE", value_enum, default_value = "exact")]
        mode: NcsMode,
        /// Read points from this file instead of standard input.
        #[arg(long, env = "H200_NCS_INPUT")]
        input: Option<std::path::PathBuf>,
        /// Where batched mode computes its products.
        #[arg(long, env = "H200_DEVICE", value_enum, default_value = "auto")]
        device: DeviceChoice,
    },
    /// Measure parts of the system.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `h200 worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Name shown in `GET /api/v1/servers` (default: worker-PID).
    #[arg(long, env = "H200_WORKER_NAME")]
    pub name: Option<String>,
    /// Job kinds to run, comma separated (default: every kernel this build has).
    #[arg(long, env = "H200_WORKER_KINDS", value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// Most jobs claimed at once.
    #[arg(long, env = "H200_WORKER_BATCH", default_value_t = 64)]
    pub batch: usize,
    /// Seconds a claim holds before another worker may take the job.
    #[arg(long, env = "H200_WORKER_LEASE_SECS", default_value_t = 30)]
    pub lease_secs: u64,
    /// Milliseconds between heartbeats (and lease-expiry sweeps).
    #[arg(long, env = "H200_WORKER_HEARTBEAT_MS", default_value_t = 2000)]
    pub heartbeat_ms: u64,
    /// Longest idle wait, in milliseconds, before looking for work without a wake-up.
    #[arg(long, env = "H200_WORKER_POLL_MS", default_value_t = 1000)]
    pub poll_ms: u64,
    /// The machine's name shown in `GET /api/v1/servers` (default: `/etc/hostname`).
    #[arg(long = "host", env = "HOSTNAME")]
    pub host: Option<String>,
    #[command(flatten)]
    pub kernels: KernelArgs,
}

/// Which kernels a worker builds: the NCS mode and the detector weights.
#[derive(Debug, Clone, clap::Args)]
pub struct KernelArgs {
    /// NCS kernel mode: `exact` follows the reference point by point; `batched` scores each
    /// batch against the centroids in one matrix product (on CUDA when built with `cuda`).
    #[arg(long, env = "H200_NCS_MODE", value_enum, default_value = "exact")]
    pub ncs_mode: NcsMode,
    /// YOLOv8 weights in safetensors for the `analysis` kernel; the shipped mug detector when
    /// absent.
    #[arg(long, env = "H200_MUG_MODEL")]
    pub mug_model: Option<PathBuf>,
    /// Where the kernels compute.
    #[arg(long, env = "H200_DEVICE", value_enum, default_value = "auto")]
    pub device: DeviceChoice,
}

/// `--device`: where the candle kernels compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceChoice {
    /// The first CUDA GPU when this build has `cuda` and one answers (a warning says why when
    /// it does not), else the CPU.
    Auto,
    Cpu,
    /// The first CUDA GPU; refuses to start without one.
    Cuda,
}

/// `h200 ncs --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NcsMode {
    Exact,
    Batched,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Queue throughput (enqueue, claim, end to end) against a naive FOR UPDATE queue.
    Queue {
        /// Database to measure (use a scratch one): `postgres://…` or `sqlite:…`.
        #[arg(long, env = "H200_BENCH_DATABASE_URL", hide_env_values = true)]
        database_url: DatabaseUrl,
        /// Jobs per phase.
        #[arg(long, env = "H200_BENCH_JOBS", default_value_t = 20_000)]
        jobs: usize,
        /// Concurrent workers.
        #[arg(long, env = "H200_BENCH_WORKERS", default_value_t = 4)]
        workers: usize,
        /// Jobs per claim and per enqueue statement.
        #[arg(long, env = "H200_BENCH_BATCH", default_value_t = 256)]
        batch: usize,
        /// Jobs for the naive queue (Postgres only; 0 skips it).
        #[arg(long, env = "H200_BENCH_NAIVE_JOBS", default_value_t = 2_000)]
        naive_jobs: usize,
    },
    /// Requests/s, latency and CPU per request through the full edge pipeline against a plain
    /// pass-through proxy, all in this process on loopback, and each stage's cost alone.
    Edge {
        /// Measured requests per target (edge and pass-through each).
        #[arg(long, env = "H200_BENCH_REQUESTS", default_value_t = 20_000)]
        requests: usize,
        /// Concurrent keep-alive connections of the client.
        #[arg(long, env = "H200_BENCH_CONCURRENCY", default_value_t = 8)]
        concurrency: usize,
        /// Requests per target sent before measuring.
        #[arg(long, env = "H200_BENCH_WARMUP", default_value_t = 2_000)]
        warmup: usize,
    },
    /// The whole public path under wrk load (the native edge, the signed hop, the backend and its
    /// store, as separate processes) for an authenticated `GET /api/v1/clusters_summary`, against
    /// a FastAPI + uvicorn peer with one and two workers in alternating rounds: req/s, latency
    /// and CPU per request per process. Needs wrk, python3 and Redis.
    Api(BenchApiArgs),
    /// NCS kernels: exact mode on the CPU against batched mode on the CPU and on `--device`,
    /// points/s per dimension and cluster count, one stream and many at once, with the adjusted
    /// Rand index of each batched run against exact mode.
    Ncs(BenchNcsArgs),
    /// Queued `analysis` and `ncs` jobs drained by an `h200 worker` process: enqueues them,
    /// starts the worker, and prints jobs/s per kind and the device the worker reported.
    Worker(BenchWorkerArgs),
    /// Points/s of one stream through its WebSocket at the edge, end to end, against the same
    /// points as `process_points` HTTP batches of the same size, against a running system.
    Stream(BenchStreamArgs),
}

/// `h200 bench stream`.
#[derive(Clone, clap::Args)]
pub struct BenchStreamArgs {
    /// The edge of a running system (`h200 dev --route-policy` with raised rate limits: the
    /// `heavy` class counts every batch, 60 a minute by default).
    #[arg(
        long,
        env = "H200_BENCH_EDGE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub edge_url: String,
    /// A user holding `clusters:write`.
    #[arg(long, env = "H200_BENCH_USERNAME", default_value = "admin")]
    pub username: String,
    /// That user's password.
    #[arg(long, env = "H200_BENCH_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// Batches per measured round and way.
    #[arg(long, default_value_t = 500)]
    pub batches: usize,
    /// Points per batch.
    #[arg(long, default_value_t = 100)]
    pub points: usize,
    /// Values per point.
    #[arg(long, default_value_t = 8)]
    pub dims: usize,
    /// Rounds; each measures HTTP batches, then the socket.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

impl std::fmt::Debug for BenchStreamArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchStreamArgs")
            .field("edge_url", &self.edge_url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("batches", &self.batches)
            .finish_non_exhaustive()
    }
}

/// `h200 bench api`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchApiArgs {
    /// Seconds of each measured round of each target.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Rounds; each measures ours, then the peer with one uvicorn worker, then with two.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Keep-alive connections of wrk.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Threads of wrk.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Measure ours only, without the FastAPI peer.
    #[arg(long)]
    pub no_peer: bool,
    /// The Redis the peer's rate limit uses (the bench writes only keys of its own prefix).
    #[arg(
        long,
        env = "H200_BENCH_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/0"
    )]
    pub redis_url: String,
    /// The Python that creates the peer's virtualenv.
    #[arg(long, default_value = "python3")]
    pub python: String,
}

/// `h200 bench ncs`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchNcsArgs {
    /// Where batched mode runs besides the CPU (`auto`: CUDA when present).
    #[arg(long, env = "H200_DEVICE", value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Dimensions to measure.
    #[arg(long, value_delimiter = ',', default_value = "16,128,1000")]
    pub dims: Vec<usize>,
    /// True clusters of each stream's Gaussian mixture.
    #[arg(long, value_delimiter = ',', default_value = "8,30")]
    pub clusters: Vec<usize>,
    /// Points per measured stream.
    #[arg(long, default_value_t = 40_000)]
    pub points: usize,
    /// Points per matrix product of batched mode.
    #[arg(long, value_delimiter = ',', default_value = "256,4096")]
    pub chunks: Vec<usize>,
    /// Streams run at once in the many-streams round (0 skips it); each gets `--points`
    /// divided among them.
    #[arg(long, default_value_t = 64)]
    pub streams: usize,
}

/// `h200 bench worker`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchWorkerArgs {
    /// Database to fill and drain (use a scratch one): `sqlite:…` or `postgres://…`.
    #[arg(long, env = "H200_BENCH_DATABASE_URL", hide_env_values = true)]
    pub database_url: DatabaseUrl,
    /// Image for the `analysis` jobs (JPEG, PNG or WebP).
    #[arg(long)]
    pub image: PathBuf,
    /// `analysis` jobs to queue.
    #[arg(long, default_value_t = 200)]
    pub analyses: usize,
    /// `ncs` jobs to queue, spread over `--streams` streams.
    #[arg(long, default_value_t = 400)]
    pub ncs_jobs: usize,
    /// Points per `ncs` job.
    #[arg(long, default_value_t = 1_000)]
    pub points: usize,
    /// Dimension of the points.
    #[arg(long, default_value_t = 16)]
    pub dim: usize,
    /// Streams the `ncs` jobs belong to.
    #[arg(long, default_value_t = 64)]
    pub streams: usize,
    /// Seconds to wait for the queue to drain before giving up.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Passed to the worker.
    #[command(flatten)]
    pub kernels: KernelArgs,
}

/// Arguments of `h200 detect`.
#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// The image: JPEG, PNG or WebP, at most 4096 pixels a side.
    pub image: std::path::PathBuf,
    /// YOLOv8 weights in safetensors (candle naming); the shipped mug detector when absent.
    #[arg(long, env = "H200_MUG_MODEL")]
    pub model: Option<std::path::PathBuf>,
    /// Detections below this confidence are dropped.
    #[arg(long, env = "H200_MUG_CONFIDENCE", default_value_t = mug::postprocess::DEFAULT_CONFIDENCE)]
    pub confidence: f32,
    /// Overlap above which a weaker box of the same class is suppressed.
    #[arg(long, env = "H200_MUG_IOU", default_value_t = mug::postprocess::DEFAULT_IOU)]
    pub iou: f32,
    /// Scale of the photo, for offsets in millimetres.
    #[arg(long, env = "H200_CALIBRATION_MM_PER_PIXEL")]
    pub calibration_mm_per_pixel: Option<f32>,
    /// Longer side of the network input (default: the model's own, 640 for COCO weights).
    #[arg(long, env = "H200_MUG_IMAGE_SIZE")]
    pub image_size: Option<u32>,
    /// Also time N more analyses of the image (decode included, after a warm-up) and print
    /// images/s and p50/p95 ms on standard error, with the device.
    #[arg(long, value_name = "N")]
    pub bench: Option<usize>,
    /// With `--bench`: images per forward pass (copies of the image analysed as one batch).
    #[arg(long, default_value_t = 1, requires = "bench")]
    pub batch: usize,
    /// Where the detector runs.
    #[arg(long, env = "H200_DEVICE", value_enum, default_value = "auto")]
    pub device: DeviceChoice,
}

/// Arguments of `h200 train-detector`.
#[derive(Debug, clap::Args)]
pub struct TrainDetectorArgs {
    /// Where the trained weights go; the checkpoint is written beside it (`.ckpt`).
    #[arg(
        long,
        env = "H200_TRAIN_OUT",
        default_value = "gpu-backend/mug/models/mug-detector.safetensors"
    )]
    pub out: std::path::PathBuf,
    /// Total optimizer steps.
    #[arg(long, env = "H200_TRAIN_STEPS", default_value_t = 2000)]
    pub steps: usize,
    /// Scenes per step.
    #[arg(long, env = "H200_TRAIN_BATCH", default_value_t = 16)]
    pub batch: usize,
    /// Side of the square training input, a multiple of 32.
    #[arg(long, env = "H200_TRAIN_IMAGE_SIZE", default_value_t = 256)]
    pub image_size: u32,
    /// Seed of the scene stream.
    #[arg(long, env = "H200_TRAIN_SEED", default_value_t = 0)]
    pub seed: u64,
    /// Continue from the checkpoint beside `--out` when there is one.
    #[arg(long, env = "H200_TRAIN_RESUME")]
    pub resume: bool,
    /// Peak learning rate.
    #[arg(long, env = "H200_TRAIN_LEARNING_RATE", default_value_t = 2e-3)]
    pub learning_rate: f64,
    /// Held-out scenes to measure mAP@0.5 on after training (0 to skip).
    #[arg(long, env = "H200_TRAIN_EVAL_IMAGES", default_value_t = 200)]
    pub eval_images: usize,
    /// Only measure mAP@0.5 of the weights at `--out`; do not train.
    #[arg(long, env = "H200_TRAIN_EVALUATE_ONLY")]
    pub evaluate_only: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input (one line).
    Add {
        /// The login name.
        name: String,
        /// A role (repeat for several): viewer, analyst, manager, admin, readonly, user, service.
        #[arg(long = "role", env = "H200_USER_ROLE", required = true)]
        roles: Vec<String>,
        /// The user's email, stored sealed.
        #[arg(long, env = "H200_USER_EMAIL")]
        email: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        /// Seal keys as `version:base64` pairs (default: the key file in the data folder).
        #[arg(long, env = "H200_SEAL_KEYS", hide_env_values = true)]
        seal_keys: Option<Secret>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key for a user and print it (shown once).
    Create {
        /// The user who owns the key.
        #[arg(long, env = "H200_APIKEY_USER")]
        user: String,
        /// A label for the key.
        #[arg(long, env = "H200_APIKEY_NAME", default_value = "cli")]
        name: String,
        /// Days until it expires (default: never).
        #[arg(long, env = "H200_APIKEY_EXPIRES_IN_DAYS")]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Rotate the token signing key (the old public key stays published until its tokens
    /// expire); optionally the edge signing key and the seal key too.
    Rotate {
        /// Folder holding the key files.
        #[arg(long, env = "H200_DATA_DIR", default_value = "./data")]
        data_dir: std::path::PathBuf,
        /// Also add a new edge signing key (the previous one stays accepted beside it).
        #[arg(long, env = "H200_ROTATE_EDGE")]
        edge: bool,
        /// Also add a new seal key version (older versions stay readable).
        #[arg(long, env = "H200_ROTATE_SEAL")]
        seal: bool,
    },
    /// Revoke a token signing key at once (a compromised key): it leaves the JWKS now, the
    /// backend refuses its tokens now and every edge within 60 s; when it was the key that
    /// signs, a new one is made first.
    Revoke {
        /// The key's id (`kid`), as in the JWKS and in `keys/token-signing.json`.
        kid: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit hash chain; exits non-zero when a row was changed or deleted.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The compliance report of a window (what `GET /api/v1/admin/reports/access` answers):
    /// access events by principal and type, and totals; JSON or CSV on stdout.
    Report {
        /// Inclusive lower bound, unix milliseconds; default 30 days before `--to`.
        #[arg(long)]
        from: Option<i64>,
        /// Exclusive upper bound, unix milliseconds; default now.
        #[arg(long)]
        to: Option<i64>,
        /// `json` or `csv`.
        #[arg(long, default_value = "json", value_parser = ["json", "csv"])]
        format: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the backend keeps its state.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Folder for the SQLite database and the key files (created on first start).
    #[arg(long, env = "H200_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Database URL: `sqlite:…` or `postgres://…`. Default: `h200.db` in the data folder.
    /// `DATABASE_URL` is read when this is not set.
    #[arg(long, env = "H200_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<DatabaseUrl>,
}

impl StoreArgs {
    /// The database URL in force: the flag, then `DATABASE_URL`, then SQLite in the data folder.
    pub fn url(&self) -> String {
        self.database_url
            .as_ref()
            .map(|url| url.0.clone())
            .or_else(|| std::env::var("DATABASE_URL").ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| gpu_backend::store::default_sqlite_url(&self.data_dir))
    }
}

/// `h200 backend`.
#[derive(Clone, clap::Args)]
pub struct BackendArgs {
    /// Address to listen on.
    #[arg(long, env = "H200_BACKEND_ADDR", default_value = "127.0.0.1:8081")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub store: StoreArgs,
    /// `iss` of issued tokens.
    #[arg(long, env = "H200_TOKEN_ISSUER", default_value = shared::token::DEFAULT_ISSUER)]
    pub token_issuer: String,
    /// `aud` of issued tokens.
    #[arg(long, env = "H200_TOKEN_AUDIENCE", default_value = shared::token::DEFAULT_AUDIENCE)]
    pub token_audience: String,
    /// How long an access token lives, in seconds (60 to 86 400).
    #[arg(long, env = "H200_ACCESS_TOKEN_TTL_SECS", default_value_t = shared::token::DEFAULT_ACCESS_TTL_SECS, value_parser = clap::value_parser!(u64).range(60..=86_400))]
    pub access_token_ttl_secs: u64,
    /// How long a refresh token lives, in seconds (an hour to 90 days); at least the access
    /// token's lifetime.
    #[arg(long, env = "H200_REFRESH_TOKEN_TTL_SECS", default_value_t = shared::token::DEFAULT_REFRESH_TTL_SECS, value_parser = clap::value_parser!(u64).range(3_600..=7_776_000))]
    pub refresh_token_ttl_secs: u64,
    /// Edge signing keys as `key_id:base64` pairs, oldest first (at most two). Default: the
    /// key file in the data folder.
    #[arg(long, env = "H200_EDGE_SIGNING_KEYS", hide_env_values = true)]
    pub edge_signing_keys: Option<String>,
    /// Seal keys as `version:base64` pairs. Default: the key file in the data folder.
    #[arg(long, env = "H200_SEAL_KEYS", hide_env_values = true)]
    pub seal_keys: Option<String>,
    /// A route policy TOML to use instead of the embedded one.
    #[arg(long, env = "H200_ROUTE_POLICY")]
    pub route_policy: Option<PathBuf>,
    /// A role table TOML to use instead of the embedded one.
    #[arg(long, env = "H200_ROLES")]
    pub roles: Option<PathBuf>,
    /// Keep each uploaded image, sealed with the seal key (AES-256-GCM), with its analysis.
    /// Off by default: the image lives only in the queued job and is dropped once it is done.
    #[arg(long, env = "H200_RETAIN_IMAGES")]
    pub retain_images: bool,
    /// Workers to run inside the backend process (0: jobs wait for `h200 worker` processes).
    #[arg(long, env = "H200_BACKEND_WORKERS", default_value_t = 0)]
    pub workers: usize,
    #[command(flatten)]
    pub state: crate::command::backend::StateArgs,
    #[command(flatten)]
    pub tls: edge_native::tls::TlsArgs,
    #[command(flatten)]
    pub kernels: KernelArgs,
}

impl std::fmt::Debug for BackendArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendArgs")
            .field("addr", &self.addr)
            .field("data_dir", &self.store.data_dir)
            .field("token_issuer", &self.token_issuer)
            .field("token_audience", &self.token_audience)
            .field("keys", &self.key_overrides())
            .finish_non_exhaustive()
    }
}

impl BackendArgs {
    /// The secrets given on the command line or in the environment (redacted in `Debug`).
    pub fn key_overrides(&self) -> KeyOverrides {
        KeyOverrides {
            edge_keys: self.edge_signing_keys.clone(),
            seal_keys: self.seal_keys.clone(),
        }
    }
}

/// A database URL from the command line or the environment; `Debug` hides its password.
#[derive(Clone)]
pub struct DatabaseUrl(pub String);

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(DatabaseUrl(text.to_owned()))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&gpu_backend::config::redact_url(&self.0))
    }
}

/// A secret from the command line or the environment (key material); `Debug` never prints it.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Secret(text.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    fn printed(args: &[&str]) -> String {
        format!(
            "{:?}",
            Cli::try_parse_from(args).expect("the arguments parse")
        )
    }

    #[test]
    fn debug_never_prints_a_database_password_or_a_key() {
        let cases = [
            printed(&[
                "h200",
                "user",
                "add",
                "ana",
                "--role",
                "viewer",
                "--database-url",
                "postgres://app:s3cret-pw@db.internal/h200",
                "--seal-keys",
                "1:c2VhbC1rZXktbWF0ZXJpYWw=",
            ]),
            printed(&[
                "h200",
                "worker",
                "--database-url",
                "postgres://app:s3cret-pw@db.internal/h200",
            ]),
            printed(&[
                "h200",
                "bench",
                "queue",
                "--database-url",
                "postgres://app:s3cret-pw@db.internal/h200",
            ]),
            printed(&[
                "h200",
                "backend",
                "--database-url",
                "postgres://app:s3cret-pw@db.internal/h200",
                "--seal-keys",
                "1:c2VhbC1rZXktbWF0ZXJpYWw=",
                "--edge-signing-keys",
                "edge-1:c2VhbC1rZXktbWF0ZXJpYWw=",
            ]),
        ];
        for text in cases {
            assert!(!text.contains("s3cret-pw"), "{text}");
            assert!(!text.contains("c2VhbC1rZXktbWF0ZXJpYWw"), "{text}");
        }
        let user = printed(&[
            "h200",
            "user",
            "add",
            "ana",
            "--role",
            "viewer",
            "--database-url",
            "postgres://app:s3cret-pw@db.internal/h200",
        ]);
        assert!(
            user.contains("postgres://app:***@db.internal/h200"),
            "{user}"
        );
    }
}
