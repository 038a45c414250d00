//! The `ncs` job: a batch of points for one stream, with the stream's parameter overrides.

use serde::{Deserialize, Serialize};

/// The job kind the NCS kernel runs.
pub const NCS_KIND: &str = "ncs";

/// What an `ncs` job carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NcsJob {
    pub stream: String,
    pub points: Vec<Vec<f32>>,
    #[serde(default)]
    pub overrides: AlgorithmOverrides,
}

/// The parameters a request may override (`algorithm_params`), each within its NCS.md range.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlgorithmOverrides {
    /// 0.1–0.95.
    pub base_threshold: Option<f32>,
    /// 0.01–0.3.
    pub learning_rate: Option<f32>,
    /// 5–1000.
    pub max_clusters: Option<usize>,
    /// 0.1–0.9.
    pub outlier_threshold: Option<f32>,
}
