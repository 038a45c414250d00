//! The `ncs` job: a batch of points for one stream, with the stream's parameter overrides.

use serde::{Deserialize, Serialize};

/// The parameters a request may override (`algorithm_params`): the request body's type, whose
/// ranges ([`shared::body::points::ranges`]) the algorithm checks again.
pub use shared::body::AlgorithmOverrides;

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
    /// The request's `batch_mode`: `true` asks for the batched kernel for this job, whatever
    /// mode the worker runs by default. Jobs queued before the field existed read `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub batch_mode: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_queued_with_f32_overrides_and_nulls_still_parse() {
        // The payload as jobs were queued before the overrides became the request body's type.
        let queued = r#"{"stream":"s","points":[[1.0]],"overrides":{"base_threshold":0.5,
            "learning_rate":null,"max_clusters":50,"outlier_threshold":null}}"#;
        let job: NcsJob = serde_json::from_str(queued).unwrap();
        assert_eq!(
            job.overrides,
            AlgorithmOverrides {
                base_threshold: Some(0.5),
                max_clusters: Some(50),
                ..AlgorithmOverrides::default()
            }
        );
        let unknown = r#"{"stream":"s","points":[],"overrides":{"decay_rate":0.5}}"#;
        assert!(serde_json::from_str::<NcsJob>(unknown).is_err());
    }
}
