//! The `h200` command line: one binary for the backend and its administration.

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use shared::api_key::ApiKey;
use shared::permissions::RoleSet;

use crate::auth::password::{PasswordHasher, check_policy};
use crate::config::{BackendArgs, StoreArgs};
use crate::keys::{
    BackendKeys, EdgeKeyRing, KeyOverrides, KeyPaths, SealKeyFile, TokenKeyRing, read_json,
    write_private_json,
};
use crate::server::{Backend, shutdown_signal};
use crate::store::users::NewUser;
use crate::store::{Store, now_ms};

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
    Edge(crate::edge::EdgeArgs),
    /// Run the whole system on this machine: backend and edge, SQLite in the data folder.
    Dev(crate::dev::DevArgs),
    /// Pull jobs from the queue and run them on this machine's kernels.
    Worker(WorkerArgs),
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
}

/// `h200 ncs --mode`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NcsMode {
    Exact,
    Batched,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Queue throughput (enqueue, claim, end to end) against a naive FOR UPDATE queue.
    Queue {
        /// Database to measure (use a scratch one): `postgres://…` or `sqlite:…`.
        #[arg(long, env = "H200_BENCH_DATABASE_URL")]
        database_url: String,
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
    #[arg(long, env = "H200_MUG_CONFIDENCE", default_value_t = crate::mug::postprocess::DEFAULT_CONFIDENCE)]
    pub confidence: f32,
    /// Overlap above which a weaker box of the same class is suppressed.
    #[arg(long, env = "H200_MUG_IOU", default_value_t = crate::mug::postprocess::DEFAULT_IOU)]
    pub iou: f32,
    /// Scale of the photo, for offsets in millimetres.
    #[arg(long, env = "H200_CALIBRATION_MM_PER_PIXEL")]
    pub calibration_mm_per_pixel: Option<f32>,
    /// Longer side of the network input (default: the model's own, 640 for COCO weights).
    #[arg(long, env = "H200_MUG_IMAGE_SIZE")]
    pub image_size: Option<u32>,
    /// Also time N more analyses of the image (decode included) and print images/s on
    /// standard error, with the device.
    #[arg(long, value_name = "N")]
    pub bench: Option<usize>,
}

/// Arguments of `h200 train-detector`.
#[derive(Debug, clap::Args)]
pub struct TrainDetectorArgs {
    /// Where the trained weights go; the checkpoint is written beside it (`.ckpt`).
    #[arg(
        long,
        env = "H200_TRAIN_OUT",
        default_value = "gpu-backend/models/mug-detector.safetensors"
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
        seal_keys: Option<String>,
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
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit hash chain; exits non-zero when a row was changed or deleted.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Sets up logging in the chosen format; `RUST_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Backend(args) => {
            let backend = Backend::prepare(&args).await?;
            backend.serve(shutdown_signal()).await
        }
        Command::User(UserCommand::Add {
            name,
            roles,
            email,
            store,
            seal_keys,
        }) => add_user(&name, &roles, email.as_deref(), &store, seal_keys).await,
        Command::Apikey(ApiKeyCommand::Create {
            user,
            name,
            expires_in_days,
            store,
        }) => {
            let db = open_store(&store).await?;
            let owner = db
                .user_by_username(&user)
                .await?
                .with_context(|| format!("no user named {user}"))?;
            let key = ApiKey::from_random(crate::keys::random_bytes::<16>()?);
            let expires = expires_in_days.map(|days| now_ms() + i64::from(days) * 86_400_000);
            let record = db
                .create_api_key(
                    &owner.id,
                    &name,
                    key.digest().as_str(),
                    &key.display_prefix(),
                    expires,
                )
                .await?;
            eprintln!(
                "created API key {} for {user}; it is shown only once:",
                record.id
            );
            println!("{}", key.as_str());
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate {
            data_dir,
            edge,
            seal,
        }) => rotate_keys(&data_dir, edge, seal),
        Command::Worker(args) => run_worker(args).await,
        Command::Ncs { mode, input } => run_ncs(mode, input),
        Command::Bench(BenchCommand::Queue {
            database_url,
            jobs,
            workers,
            batch,
            naive_jobs,
        }) => {
            let store = Store::open(&database_url)
                .await
                .context("opening the bench database")?;
            let bench = crate::queue::bench::QueueBench {
                jobs,
                workers,
                batch,
                naive_jobs,
            };
            eprintln!(
                "queue bench: {jobs} jobs, {workers} workers, batches of {batch}, on {:?}",
                store.dialect()
            );
            for figure in crate::queue::bench::run(&store, bench).await? {
                println!("{figure}");
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Edge {
            requests,
            concurrency,
            warmup,
        }) => {
            let bench = crate::bench_edge::EdgeBench {
                requests,
                concurrency,
                warmup,
            };
            for line in
                crate::bench_edge::on_own_thread(move || crate::bench_edge::run(bench)).await?
            {
                println!("{line}");
            }
            Ok(())
        }
        Command::Edge(args) => {
            let edge = args.bind().await?;
            edge.serve(shutdown_signal())
                .await
                .context("serving the edge")
        }
        Command::Dev(args) => crate::dev::run(args).await,
        Command::Detect(args) => detect(&args),
        Command::TrainDetector(args) => train_detector(&args),
        Command::Audit(AuditCommand::Verify { store }) => {
            let db = open_store(&store).await?;
            match db.verify_audit_chain().await {
                Ok(rows) => {
                    println!("audit chain intact: {rows} events");
                    Ok(())
                }
                Err(e) => bail!("audit chain broken: {e}"),
            }
        }
    }
}

fn run_ncs(mode: NcsMode, input: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let mode = match mode {
        NcsMode::Exact => crate::ncs::Mode::Exact,
        NcsMode::Batched => crate::ncs::Mode::Batched,
    };
    let device = candle_core::Device::cuda_if_available(0).unwrap_or(candle_core::Device::Cpu);
    let stdout = std::io::stdout().lock();
    let stats = match input {
        Some(path) => {
            let file = std::fs::File::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            crate::ncs::run_jsonl(mode, std::io::BufReader::new(file), stdout, &device)?
        }
        None => crate::ncs::run_jsonl(mode, std::io::stdin().lock(), stdout, &device)?,
    };
    eprintln!(
        "{} points in {:.3} s: {:.0} points/s ({:?} mode, {:?})",
        stats.points,
        stats.seconds,
        stats.points as f64 / stats.seconds.max(1e-9),
        mode,
        device
    );
    Ok(())
}

async fn run_worker(args: WorkerArgs) -> anyhow::Result<()> {
    let store = open_store(&args.store).await?;
    let available = crate::queue::available_kernels();
    let kernels: Vec<_> = if args.kinds.is_empty() {
        available
    } else {
        let mut chosen = Vec::new();
        for kind in &args.kinds {
            let kernel = available
                .iter()
                .find(|k| k.kind() == kind)
                .with_context(|| format!("no kernel for job kind {kind}"))?;
            chosen.push(kernel.clone());
        }
        chosen
    };
    let url = args.store.url();
    let options = crate::queue::WorkerOptions {
        name: args
            .name
            .unwrap_or_else(|| format!("worker-{}", std::process::id())),
        batch_size: args.batch.max(1),
        lease: std::time::Duration::from_secs(args.lease_secs.max(1)),
        heartbeat: std::time::Duration::from_millis(args.heartbeat_ms.max(50)),
        poll: std::time::Duration::from_millis(args.poll_ms.max(5)),
        listen_url: url.starts_with("postgres").then_some(url),
    };
    let worker = crate::queue::Worker::register(store, kernels, options).await?;
    println!("{}", worker.id());
    let exit = worker.run(shutdown_signal()).await?;
    eprintln!("worker stopped: {exit:?}");
    Ok(())
}

async fn open_store(args: &StoreArgs) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    Store::open(&args.url()).await.context("opening the store")
}

async fn add_user(
    name: &str,
    roles: &[String],
    email: Option<&str>,
    store: &StoreArgs,
    seal_keys: Option<String>,
) -> anyhow::Result<()> {
    let known = RoleSet::default();
    for role in roles {
        if known.role(role).is_none() {
            bail!(
                "unknown role {role}; known roles: {}",
                known.names().collect::<Vec<_>>().join(", ")
            );
        }
    }
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    check_policy(password).map_err(|e| anyhow::anyhow!("password refused: {e}"))?;
    let db = open_store(store).await?;
    let overrides = KeyOverrides {
        edge_keys: None,
        seal_keys,
    };
    let (keys, _) = BackendKeys::load_or_generate(&store.data_dir, &overrides, now_ms())?;
    let hash = PasswordHasher::new()
        .hash(password)
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
    let user = db
        .create_user(NewUser {
            username: name,
            password_hash: &hash,
            roles,
            email_sealed: None,
        })
        .await
        .with_context(|| format!("creating user {name}"))?;
    if let Some(email) = email {
        let sealed = keys
            .seal
            .seal(
                &crate::http::admin::email_context(&user.id),
                email.as_bytes(),
            )
            .map_err(|e| anyhow::anyhow!("sealing the email: {e}"))?;
        db.update_sealed_fields(&user.id, Some(&sealed), None)
            .await?;
    }
    println!("{}", user.id);
    eprintln!("added user {name} with roles {}", roles.join(", "));
    Ok(())
}

pub fn rotate_keys(data_dir: &std::path::Path, edge: bool, seal: bool) -> anyhow::Result<()> {
    let paths = KeyPaths::new(data_dir);
    let now = now_ms();
    // Make sure every file exists first, so rotation always has something to rotate.
    BackendKeys::load_or_generate(data_dir, &KeyOverrides::default(), now)?;
    let mut ring: TokenKeyRing = read_json(&paths.token())?.unwrap_or_default();
    let kid = ring.rotate(now)?.kid.clone();
    write_private_json(&paths.token(), &ring)?;
    println!("token signing key rotated: new kid {kid}");
    if edge {
        let mut ring: EdgeKeyRing = read_json(&paths.edge())?.unwrap_or_default();
        let next = format!("edge-{}", now / 1000);
        ring.rotate(next.clone())?;
        write_private_json(&paths.edge(), &ring)?;
        println!(
            "edge signing key rotated: new key id {next} (restart the edge and backend to use it)"
        );
    }
    if seal {
        let mut file: SealKeyFile = read_json(&paths.seal())?.unwrap_or_default();
        let version = file.rotate()?;
        write_private_json(&paths.seal(), &file)?;
        println!("seal key rotated: new version {version}");
    }
    Ok(())
}

fn detect(args: &DetectArgs) -> anyhow::Result<()> {
    use crate::mug::{AnalyzeOptions, Detector, postprocess::Thresholds};
    for (name, value) in [("confidence", args.confidence), ("iou", args.iou)] {
        if !(0.0..=1.0).contains(&value) {
            bail!("--{name} must be between 0 and 1");
        }
    }
    if let Some(mm) = args.calibration_mm_per_pixel
        && !(mm.is_finite() && mm > 0.0 && mm <= shared::body::analysis::MAX_MM_PER_PIXEL)
    {
        bail!("--calibration-mm-per-pixel must be above 0 and at most 100");
    }
    let detector = match &args.model {
        Some(path) => Detector::from_file(path)
            .with_context(|| format!("loading the model {}", path.display()))?,
        None => Detector::shipped().context("loading the shipped mug detector")?,
    };
    let bytes =
        std::fs::read(&args.image).with_context(|| format!("reading {}", args.image.display()))?;
    let options = AnalyzeOptions {
        thresholds: Thresholds {
            confidence: args.confidence,
            iou: args.iou,
        },
        reference_point: None,
        mm_per_pixel: args.calibration_mm_per_pixel,
        input_size: args.image_size,
    };
    let analysis = detector
        .analyze(&bytes, None, &options)
        .with_context(|| format!("analysing {}", args.image.display()))?;
    println!("{}", serde_json::to_string_pretty(&analysis)?);
    if let Some(runs) = args.bench.filter(|&n| n > 0) {
        let started = std::time::Instant::now();
        for _ in 0..runs {
            detector.analyze(&bytes, None, &options)?;
        }
        let seconds = started.elapsed().as_secs_f64();
        let device = crate::queue::kernel::device_name(detector.device());
        eprintln!(
            "{runs} analyses at {} px on {device}: {:.2} images/s ({:.1} ms/image)",
            args.image_size.unwrap_or(detector.input_size()),
            runs as f64 / seconds,
            seconds * 1000.0 / runs as f64
        );
    }
    Ok(())
}

fn train_detector(args: &TrainDetectorArgs) -> anyhow::Result<()> {
    use crate::mug::train::{TrainConfig, train};
    if args.batch == 0 || args.image_size < 32 || !args.image_size.is_multiple_of(32) {
        bail!("--batch must be at least 1 and --image-size a multiple of 32");
    }
    let config = TrainConfig {
        out: args.out.clone(),
        steps: args.steps,
        batch: args.batch,
        image_size: args.image_size,
        seed: args.seed,
        resume: args.resume,
        learning_rate: args.learning_rate,
        ..TrainConfig::default()
    };
    if !args.evaluate_only {
        let summary = train(&config).context("training the detector")?;
        eprintln!(
            "trained {} steps in {:.0} s this run; mean loss of the last steps {:.3}; weights in {}",
            summary.steps,
            summary.seconds,
            summary.final_loss,
            args.out.display()
        );
    }
    if args.eval_images > 0 {
        let detector = crate::mug::Detector::from_file(&args.out)
            .with_context(|| format!("loading {}", args.out.display()))?;
        let started = std::time::Instant::now();
        let map =
            crate::mug::metrics::evaluate_synthetic(&detector, args.eval_images, args.image_size)?;
        println!(
            "mAP@0.5 on {} held-out synthetic scenes ({} px): {map:.4} ({:.1} s)",
            args.eval_images,
            args.image_size,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
