//! The `ncs` job kind: a batch of points for one stream, run on the stream's saved state and
//! saved back with the result. Jobs of a stream share a partition key, so they run one at a time
//! and in order, on whichever worker claims them.

use std::time::Instant;

use serde_json::json;

use crate::batched::{BatchError, BatchedNcs};
use crate::exact::NcsStream;
use crate::jsonl::Mode;
use crate::params::{AlgorithmParams, overrides_agree};
use crate::point::PointResult;
use crate::ring::ScalarRing;
use kernel::{ClaimedJob, JobOutput, Kernel, KernelError, KernelResult, device_name, refusal};

pub use crate::record::StreamRecord;
pub use kernel::ncs::{AlgorithmOverrides, NCS_KIND, NcsJob};

/// Per-point latencies kept for the percentiles of `algorithm_status`.
pub const LATENCY_WINDOW: usize = 1024;

/// Runs `ncs` jobs in exact or batched mode.
#[derive(Debug, Clone)]
pub struct NcsKernel {
    mode: Mode,
    device: candle_core::Device,
}

impl NcsKernel {
    pub fn new(mode: Mode, device: candle_core::Device) -> NcsKernel {
        NcsKernel { mode, device }
    }

    fn run_one(&self, job: &ClaimedJob) -> KernelResult {
        let request: NcsJob = serde_json::from_value(job.payload.clone())
            .map_err(|e| KernelError::Invalid(format!("ncs payload: {e}")))?;
        let mut record = match job.partition_state.as_deref() {
            Some(saved) => serde_json::from_str::<StreamRecord>(saved).map_err(|e| {
                KernelError::Failed(format!("saved stream state is unreadable: {e}"))
            })?,
            None => {
                let params = match AlgorithmParams::with_overrides(&request.overrides) {
                    Ok(params) => params,
                    Err(e) => return refusal(shared::ErrorCode::ValidationFailed, e.to_string()),
                };
                let stream =
                    NcsStream::new(params).map_err(|e| KernelError::Invalid(e.to_string()))?;
                StreamRecord {
                    stream,
                    overrides: request.overrides,
                    processing_secs: 0.0,
                    jobs: 0,
                    latencies_us: ScalarRing::new(LATENCY_WINDOW),
                }
            }
        };
        if job.partition_state.is_some()
            && request.overrides != AlgorithmOverrides::default()
            && !overrides_agree(&request.overrides, &record.overrides)
        {
            return refusal(
                shared::ErrorCode::Conflict,
                format!(
                    "stream {} already runs with other algorithm_params; start a new stream to change them",
                    request.stream
                ),
            );
        }
        // All or nothing: check every point against the stream before changing it.
        let mut dimension = record.stream.stats().dimension;
        for (index, point) in request.points.iter().enumerate() {
            let expected = *dimension.get_or_insert(point.len());
            if point.len() != expected {
                return refusal(
                    shared::ErrorCode::DimensionMismatch,
                    format!(
                        "point {index} has {} dimensions; the stream's points have {expected}",
                        point.len()
                    ),
                );
            }
        }
        let started = Instant::now();
        let mut results: Vec<PointResult> = Vec::with_capacity(request.points.len());
        match self.mode {
            Mode::Exact => {
                for (index, point) in request.points.iter().enumerate() {
                    let point_started = Instant::now();
                    match record.stream.process(point) {
                        Ok(result) => results.push(result),
                        Err(e) => return refusal(e.code(), format!("point {index}: {e}")),
                    }
                    record
                        .latencies_us
                        .push(point_started.elapsed().as_secs_f32() * 1e6);
                }
            }
            Mode::Batched => {
                let mut batched = BatchedNcs::new(record.stream.clone(), self.device.clone());
                if let Err(e) = batched.process_batch(&request.points, &mut results) {
                    return match e {
                        BatchError::Point { index, source } => {
                            refusal(source.code(), format!("point {index}: {source}"))
                        }
                        BatchError::Device(e) => Err(KernelError::Failed(format!("device: {e}"))),
                    };
                }
                record.stream = batched.into_stream();
                let per_point =
                    started.elapsed().as_secs_f32() * 1e6 / request.points.len().max(1) as f32;
                for _ in 0..request.points.len().min(LATENCY_WINDOW) {
                    record.latencies_us.push(per_point);
                }
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        record.processing_secs += elapsed;
        record.jobs += 1;
        let outliers: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_outlier)
            .map(|(i, _)| i)
            .collect();
        let result = json!({
            "stream": request.stream,
            "results": results,
            "outliers": outliers,
            "algorithm_quality": record.stream.metrics().clustering_quality,
            "processing_time_ms": elapsed * 1e3,
            "points_processed": results.len(),
            "clusters_found": record.stream.stats().clusters,
        });
        let state = serde_json::to_string(&record)
            .map_err(|e| KernelError::Failed(format!("saving the stream: {e}")))?;
        Ok(JobOutput {
            result,
            partition_state: Some(state),
        })
    }
}

impl Kernel for NcsKernel {
    fn kind(&self) -> &'static str {
        NCS_KIND
    }

    fn max_batch_size(&self) -> usize {
        16
    }

    fn device(&self) -> String {
        device_name(&self.device)
    }

    fn run_batch(&self, jobs: &[ClaimedJob]) -> Vec<KernelResult> {
        jobs.iter().map(|job| self.run_one(job)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(payload: serde_json::Value, saved: Option<String>) -> ClaimedJob {
        ClaimedJob {
            id: "j".into(),
            kind: NCS_KIND.into(),
            owner: None,
            partition_key: Some("ncs:ana:s".into()),
            payload,
            attempt: 1,
            partition_state: saved,
        }
    }

    fn refusal_code(output: &JobOutput) -> Option<String> {
        kernel::job_refusal(&output.result).map(|(code, _)| code)
    }

    #[test]
    fn a_stream_keeps_the_overrides_it_was_created_with() {
        let kernel = NcsKernel::new(Mode::Exact, candle_core::Device::Cpu);
        let params = json!({ "base_threshold": 0.123456789, "max_clusters": 40 });
        let first = kernel
            .run_one(&job(
                json!({ "stream": "s", "points": [[1.0, 2.0]], "overrides": params }),
                None,
            ))
            .unwrap();
        assert_eq!(refusal_code(&first), None);
        let mut saved: serde_json::Value =
            serde_json::from_str(first.partition_state.as_deref().unwrap()).unwrap();
        assert_eq!(saved["stream"]["params"]["max_clusters"], 40);

        // The same overrides again, and once more against the record as it was saved while the
        // overrides were f32 (their shortest f32 text, nulls for the rest): both accepted.
        let again = json!({ "stream": "s", "points": [[2.0, 1.0]], "overrides": params });
        let same = kernel
            .run_one(&job(again.clone(), first.partition_state.clone()))
            .unwrap();
        assert_eq!(refusal_code(&same), None);
        saved["overrides"] = json!({ "base_threshold": 0.12345679, "learning_rate": null,
            "max_clusters": 40, "outlier_threshold": null });
        let from_f32 = kernel
            .run_one(&job(again, Some(saved.to_string())))
            .unwrap();
        assert_eq!(refusal_code(&from_f32), None);

        let other = json!({ "stream": "s", "points": [[2.0, 1.0]],
            "overrides": { "base_threshold": 0.123456789, "max_clusters": 41 } });
        let refused = kernel
            .run_one(&job(other, first.partition_state.clone()))
            .unwrap();
        assert_eq!(refusal_code(&refused).as_deref(), Some("CONFLICT"));
        // No overrides at all: the stream goes on with its own.
        let plain = json!({ "stream": "s", "points": [[2.0, 1.0]] });
        let kept = kernel.run_one(&job(plain, first.partition_state)).unwrap();
        assert_eq!(refusal_code(&kept), None);
    }
}
