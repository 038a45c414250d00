//! A stream as the `ncs` kernel saves it between jobs, and as the backend reads it for summaries.

use serde::{Deserialize, Serialize};

use crate::exact::NcsStream;
use crate::params::AlgorithmOverrides;
use crate::ring::ScalarRing;

/// A stream as saved between jobs: the algorithm state and its running statistics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamRecord {
    pub stream: NcsStream,
    /// Overrides the stream was created with; later jobs must not ask for others.
    pub overrides: AlgorithmOverrides,
    /// Seconds spent processing points, over the stream's life.
    pub processing_secs: f64,
    /// Jobs processed.
    pub jobs: u64,
    /// Seconds the last job spent processing its points (0 in records saved before the field).
    #[serde(default)]
    pub last_job_secs: f64,
    /// Recent per-point processing times, in microseconds.
    pub latencies_us: ScalarRing,
}

impl StreamRecord {
    /// Percentile `p` (0–100) of the recent per-point latencies, in microseconds.
    pub fn latency_percentile(&self, p: f64) -> Option<f32> {
        let mut values: Vec<f32> = self.latencies_us.values().to_vec();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f32::total_cmp);
        let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
        values.get(rank.min(values.len() - 1)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::AlgorithmParams;

    #[test]
    fn records_saved_with_f32_overrides_and_nulls_still_load() {
        let mut stream = NcsStream::new(AlgorithmParams::default()).unwrap();
        stream.process(&[1.0, 2.0]).unwrap();
        let mut latencies = ScalarRing::new(4);
        latencies.push(3.0);
        // The shape records were saved in while the overrides were f32 with explicit nulls.
        let saved = serde_json::json!({
            "stream": stream,
            "overrides": {
                "base_threshold": 0.5,
                "learning_rate": null,
                "max_clusters": 40,
                "outlier_threshold": null
            },
            "processing_secs": 0.25,
            "jobs": 1,
            "latencies_us": latencies,
        });
        let record: StreamRecord = serde_json::from_value(saved).unwrap();
        assert_eq!(record.overrides.base_threshold, Some(0.5));
        assert_eq!(record.overrides.max_clusters, Some(40));
        assert_eq!(record.overrides.learning_rate, None);
        assert_eq!(record.stream.stats().points_processed, 1);
        assert_eq!(record.latency_percentile(50.0), Some(3.0));
    }
}
