//! The answer for one point ([`PointResult`]) or why it was refused ([`NcsError`]).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shared::ErrorCode;
use thiserror::Error;

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

    /// The cluster id as a label, `-1` for an outlier (for [`crate::adjusted_rand_index`] and the
    /// wire).
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
