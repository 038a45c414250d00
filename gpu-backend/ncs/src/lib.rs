//! The NeuroCluster Streamer (NCS) kernels: adaptive streaming clustering with outlier scores.
//!
//! - [`exact`]: the algorithm of NCS.md point by point ([`NcsStream`]); its state serializes
//!   with serde and restores bit for bit.
//! - [`batched`]: the same stream driven a batch at a time, scoring the batch against the
//!   centroids with one candle matrix product ([`BatchedNcs`]).
//! - [`jsonl`]: the line-oriented entry point behind `h200 ncs` and the benches.
//! - [`kernel`]: the `ncs` job kind the queue's workers run; [`record`]: a stream's state as saved
//!   between jobs (the backend reads it for summaries); [`params`]: the algorithm's parameters.
//!
//! Without the `kernel` feature (the backend's build) `batched`, `jsonl` and `kernel` are left
//! out, and with them candle.
//! - [`quality`]: the adjusted Rand index, to compare clusterings; [`synthetic`]: seeded
//!   Gaussian mixtures for tests and benches.

#[cfg(feature = "kernel")]
pub mod batched;
pub mod exact;
#[cfg(feature = "kernel")]
pub mod jsonl;
#[cfg(feature = "kernel")]
pub mod kernel;
pub mod params;
pub mod quality;
pub mod record;
mod ring;
pub mod synthetic;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shared::ErrorCode;
use thiserror::Error;

#[cfg(feature = "kernel")]
pub use batched::{BatchError, BatchedNcs};
pub use exact::{ClusterSummary, GlobalMetrics, HealthStatus, NcsStream, StreamStats};
#[cfg(feature = "kernel")]
pub use jsonl::{Mode, RunError, RunStats, run_jsonl, run_jsonl_on};
pub use params::{AlgorithmOverrides, AlgorithmParams, ParamsError};
pub use quality::adjusted_rand_index;
pub use record::StreamRecord;

/// Why a point was refused; the stream is unchanged after a refusal.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NcsError {
    #[error("the point has no values")]
    EmptyPoint,
    #[error("the point has {got} dimensions but the stream's points have {expected}")]
    DimensionMismatch { expected: usize, got: usize },
    #[error("the point has {got} dimensions; at most {max} are allowed")]
    TooManyDimensions { max: usize, got: usize },
    #[error("value {index} of the point is not a finite number")]
    NonFinite { index: usize },
    #[error("value {index} of the point is beyond ±1e10")]
    OutOfRange { index: usize },
}

impl NcsError {
    /// The public API's machine code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::DimensionMismatch { .. } => ErrorCode::DimensionMismatch,
            Self::EmptyPoint
            | Self::TooManyDimensions { .. }
            | Self::NonFinite { .. }
            | Self::OutOfRange { .. } => ErrorCode::InvalidInput,
        }
    }
}

/// The answer for one point. On the wire a missing cluster id is `-1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PointResult {
    /// The cluster the point joined or founded; `None` for an outlier.
    #[serde(serialize_with = "id_to_wire", deserialize_with = "id_from_wire")]
    pub cluster_id: Option<u64>,
    pub is_outlier: bool,
    /// Outlier score in [0, 1]; 0 for a point that founded a cluster.
    pub outlier_score: f32,
}

impl PointResult {
    pub(crate) fn outlier(score: f32) -> Self {
        Self {
            cluster_id: None,
            is_outlier: true,
            outlier_score: score,
        }
    }

    pub(crate) fn member(id: u64, score: f32) -> Self {
        Self {
            cluster_id: Some(id),
            is_outlier: false,
            outlier_score: score,
        }
    }

    /// The cluster id as a label, `-1` for an outlier (for [`adjusted_rand_index`] and the wire).
    pub fn label(&self) -> i64 {
        self.cluster_id
            .map_or(-1, |id| i64::try_from(id).unwrap_or(i64::MAX))
    }
}

fn id_to_wire<S: Serializer>(id: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => serializer.serialize_u64(*id),
        None => serializer.serialize_i64(-1),
    }
}

fn id_from_wire<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let id = i64::deserialize(deserializer)?;
    Ok(u64::try_from(id).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_results_use_minus_one_for_outliers_on_the_wire() {
        let out = serde_json::to_string(&PointResult::outlier(0.5)).unwrap();
        assert_eq!(
            out,
            r#"{"cluster_id":-1,"is_outlier":true,"outlier_score":0.5}"#
        );
        let member = PointResult::member(7, 0.0);
        let json = serde_json::to_string(&member).unwrap();
        assert_eq!(
            json,
            r#"{"cluster_id":7,"is_outlier":false,"outlier_score":0.0}"#
        );
        let back: PointResult = serde_json::from_str(&json).unwrap();
        assert_eq!(back, member);
    }

    #[test]
    fn refusals_map_to_api_codes() {
        let e = NcsError::DimensionMismatch {
            expected: 2,
            got: 3,
        };
        assert_eq!(e.code(), ErrorCode::DimensionMismatch);
        assert_eq!(
            NcsError::NonFinite { index: 0 }.code(),
            ErrorCode::InvalidInput
        );
    }
}
