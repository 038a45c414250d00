//! The queue's own kernel, `echo`: it returns its payload, after `sleep_ms` if the payload asks,
//! and fails on request. It measures the queue itself (`h200 bench queue`) and drives its fault
//! tests, with no model in the way.

use serde_json::{Value, json};

use kernel::{ClaimedJob, JobOutput, Kernel, KernelError, KernelResult};

/// The job kind of [`EchoKernel`].
pub const ECHO_KIND: &str = "echo";

/// Returns each job's payload as its result.
#[derive(Debug, Default)]
pub struct EchoKernel;

impl Kernel for EchoKernel {
    fn kind(&self) -> &'static str {
        ECHO_KIND
    }

    fn max_batch_size(&self) -> usize {
        512
    }

    fn run_batch(&self, jobs: &[ClaimedJob]) -> Vec<KernelResult> {
        let sleep_ms: u64 = jobs
            .iter()
            .filter_map(|job| job.payload.get("sleep_ms").and_then(Value::as_u64))
            .max()
            .unwrap_or(0);
        if sleep_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(sleep_ms.min(60_000)));
        }
        jobs.iter()
            .map(|job| {
                let fail_until = job.payload.get("fail_attempts").and_then(Value::as_i64).unwrap_or(0);
                if job.attempt <= fail_until {
                    return Err(KernelError::Failed(format!("asked to fail attempt {}", job.attempt)));
                }
                let count = job
                    .partition_state
                    .as_deref()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0)
                    + 1;
                Ok(JobOutput {
                    result: json!({ "echo": job.payload, "attempt": job.attempt, "partition_position": count }),
                    partition_state: job.partition_key.as_ref().map(|_| count.to_string()),
                })
            })
            .collect()
    }
}
