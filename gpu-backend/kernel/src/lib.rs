//! The contract between the job queue and the compute kernels, candle-free: the [`Kernel`] trait
//! (in the style of text-embeddings-inference's `Backend`: health, the largest batch it takes,
//! running a batch), the jobs a kernel is handed and what it answers, and the payloads of the job
//! kinds the backend queues. The queue knows nothing of models, and a kernel nothing of the queue.
//!
//! - this file: [`Kernel`], [`ClaimedJob`], [`JobOutput`], [`KernelError`], refusals.
//! - [`analysis`] and [`ncs`]: the payloads of the `analysis` and `ncs` job kinds.
//! - [`rng`]: the seeded generator of synthetic test data and training scenes.
//! - `device_name` (feature `candle`): how a candle device is named in figures and listings.

pub mod analysis;
pub mod ncs;
pub mod rng;

use serde_json::Value;

/// A job handed to a kernel.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: String,
    pub kind: String,
    pub owner: Option<String>,
    pub partition_key: Option<String>,
    pub payload: Value,
    /// 1 on the first attempt.
    pub attempt: i64,
    /// The partition's state saved by the previous job of the partition, if any.
    pub partition_state: Option<String>,
}

/// What a kernel made of one job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutput {
    pub result: Value,
    /// The partition's new state, saved atomically with the result.
    pub partition_state: Option<String>,
}

impl JobOutput {
    pub fn result(result: Value) -> JobOutput {
        JobOutput {
            result,
            partition_state: None,
        }
    }
}

/// Why a kernel could not finish a job.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KernelError {
    /// The payload can never succeed; retrying will not help.
    #[error("invalid job: {0}")]
    Invalid(String),
    /// This attempt failed; another may succeed.
    #[error("kernel failure: {0}")]
    Failed(String),
}

pub type KernelResult = Result<JobOutput, KernelError>;

/// How a device is named in `GET /api/v1/servers` and in figures: `cpu` or `cuda:0`.
#[cfg(feature = "candle")]
pub fn device_name(device: &candle_core::Device) -> String {
    match device {
        candle_core::Device::Cpu => "cpu".into(),
        candle_core::Device::Cuda(_) => "cuda:0".into(),
        other => format!("{other:?}"),
    }
}

/// A refusal of the job's input, reported as its result (the job itself ran, and running it
/// again would not help): `{"error": {"code", "detail"}}`.
pub fn refusal(code: shared::ErrorCode, detail: impl Into<String>) -> KernelResult {
    Ok(JobOutput::result(
        serde_json::json!({ "error": { "code": code.as_str(), "detail": detail.into() } }),
    ))
}

/// The refusal a finished job reported instead of a result, if any: `(code, detail)`.
pub fn job_refusal(result: &Value) -> Option<(String, String)> {
    let error = result.get("error")?;
    Some((
        error.get("code")?.as_str()?.to_owned(),
        error
            .get("detail")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    ))
}

/// A compute kernel for one kind of job.
pub trait Kernel: Send + Sync + 'static {
    /// The job kind this kernel runs, e.g. `ncs`.
    fn kind(&self) -> &'static str;

    /// Whether the kernel (and its device) can take work.
    fn health(&self) -> Result<(), KernelError> {
        Ok(())
    }

    /// The most jobs one [`run_batch`](Kernel::run_batch) call takes.
    fn max_batch_size(&self) -> usize;

    /// Where it computes: `cpu` or `cuda:N`.
    fn device(&self) -> String {
        "cpu".to_owned()
    }

    /// Runs a batch on the device; outcome `i` belongs to job `i`. Called on a blocking thread.
    fn run_batch(&self, jobs: &[ClaimedJob]) -> Vec<KernelResult>;
}
