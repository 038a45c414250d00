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
