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
                    last_job_secs: 0.0,
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
        let mode = if request.batch_mode {
            Mode::Batched
        } else {
            self.mode
        };
        match mode {
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
        record.last_job_secs = elapsed;
        let outlier_indices: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_outlier)
            .map(|(i, _)| i)
            .collect();
        let outliers: Vec<&Vec<f32>> = outlier_indices
            .iter()
            .map(|&i| &request.points[i])
            .collect();
        let result = json!({
            "stream": request.stream,
            "results": results,
            "clusters": batch_clusters(&record.stream, &request.points, &results),
            "outliers": outliers,
            "outlier_indices": outlier_indices,
            "algorithm_quality": record.stream.metrics().clustering_quality,
            "processing_time_ms": elapsed * 1e3,
            "points_processed": results.len(),
            "clusters_found": record.stream.stats().clusters,
            "mode": match mode {
                Mode::Exact => "exact",
                Mode::Batched => "batched",
            },
        });
        let state = serde_json::to_string(&record)
            .map_err(|e| KernelError::Failed(format!("saving the stream: {e}")))?;
        Ok(JobOutput {
            result,
            partition_state: Some(state),
        })
    }
}

/// The clusters this batch's points joined, in order of first use, in the published NCS
/// contract's shape: `id`, `center` (the centroid after the batch; the mean of the batch's points
/// when maintenance merged or dropped the cluster before the batch ended), the batch's `points`
/// of the cluster, their count as `size`, and the cluster's health as `quality` (0 once gone).
fn batch_clusters(
    stream: &NcsStream,
    points: &[Vec<f32>],
    results: &[PointResult],
) -> Vec<serde_json::Value> {
    let mut order: Vec<u64> = Vec::new();
    let mut members: std::collections::HashMap<u64, Vec<&Vec<f32>>> = Default::default();
    for (point, result) in points.iter().zip(results) {
        if let Some(id) = result.cluster_id {
            let list = members.entry(id).or_default();
            if list.is_empty() {
                order.push(id);
            }
            list.push(point);
        }
    }
    let alive: std::collections::HashMap<u64, _> = stream
        .clusters_summary()
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    order
        .into_iter()
        .map(|id| {
            let list = &members[&id];
            let (center, quality) = match alive.get(&id) {
                Some(c) => (c.centroid.clone(), c.health_score),
                None => (mean(list), 0.0),
            };
            json!({
                "id": id,
                "center": center,
                "points": list,
                "size": list.len(),
                "quality": quality,
            })
        })
        .collect()
}

fn mean(points: &[&Vec<f32>]) -> Vec<f32> {
    let dimension = points.first().map_or(0, |p| p.len());
    let mut sum = vec![0.0f32; dimension];
    for point in points {
        for (s, v) in sum.iter_mut().zip(point.iter()) {
            *s += v;
        }
    }
    let n = points.len().max(1) as f32;
    sum.into_iter().map(|s| s / n).collect()
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

    #[test]
    fn batch_mode_runs_the_batched_kernel_with_the_same_results() {
        let kernel = NcsKernel::new(Mode::Exact, candle_core::Device::Cpu);
        let points: Vec<Vec<f32>> = (0..120)
            .map(|i| {
                let c = (i % 3) as f32 * 10.0;
                vec![
                    c + (i as f32 * 0.37).sin() * 0.1,
                    c + 1.0 + (i as f32).cos() * 0.1,
                ]
            })
            .collect();
        let run = |batch: bool| {
            let payload = json!({ "stream": "s", "points": points, "batch_mode": batch });
            kernel.run_one(&job(payload, None)).unwrap().result
        };
        let (exact, batched) = (run(false), run(true));
        assert_eq!(exact["mode"], "exact");
        assert_eq!(batched["mode"], "batched");
        assert_eq!(exact["results"], batched["results"]);
        assert_eq!(exact["clusters"], batched["clusters"]);
        // The published contract's shape: clusters with their batch points, outlier points.
        let clusters = exact["clusters"].as_array().unwrap();
        assert!(!clusters.is_empty());
        let in_clusters: u64 = clusters.iter().map(|c| c["size"].as_u64().unwrap()).sum();
        let outliers = exact["outliers"].as_array().unwrap().len() as u64;
        assert_eq!(in_clusters + outliers, points.len() as u64);
        for cluster in clusters {
            assert_eq!(
                cluster["points"].as_array().unwrap().len() as u64,
                cluster["size"].as_u64().unwrap()
            );
            assert_eq!(cluster["center"].as_array().unwrap().len(), 2);
            assert!(cluster["quality"].as_f64().unwrap() >= 0.0);
        }
        assert_eq!(
            exact["outlier_indices"].as_array().unwrap().len() as u64,
            outliers
        );
    }
}
