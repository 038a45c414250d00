//! The tunable parameters of the NeuroCluster Streamer: the defaults of NCS.md, and the request's
//! [`AlgorithmOverrides`] applied within their ranges ([`shared::body::points::ranges`], the same
//! the request body is checked against).

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};
use shared::body::points::ranges;
use thiserror::Error;

/// A parameter outside the range NCS.md allows for it.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("algorithm parameter `{name}` = {value} is outside {min}..={max}")]
pub struct ParamsError {
    /// The parameter's name as it appears in `algorithm_params`.
    pub name: &'static str,
    /// The value that was refused.
    pub value: f64,
    /// Smallest allowed value.
    pub min: f64,
    /// Largest allowed value.
    pub max: f64,
}

/// Everything that steers one stream. Built from [`AlgorithmParams::default`], optionally with a
/// request's [`AlgorithmOverrides`]; always validated before a stream uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlgorithmParams {
    /// Cosine similarity a point needs to join a cluster until the adaptive threshold takes over.
    pub base_threshold: f32,
    /// Base step size of a centroid update.
    pub learning_rate: f32,
    /// Confidence lost by every cluster at each maintenance.
    pub decay_rate: f32,
    /// Clusters whose confidence falls below this are dropped.
    pub min_confidence: f32,
    /// Merge score at which two clusters become one.
    pub merge_threshold: f32,
    /// Outlier score above which a point is an outlier.
    pub outlier_threshold: f32,
    /// Length of the distance and similarity histories.
    pub stability_window: usize,
    /// Most clusters a stream holds at once.
    pub max_clusters: usize,
    /// Most points one request may carry.
    pub max_batch_size: usize,
    /// Most dimensions a point may have.
    pub max_point_dimensions: usize,
}

impl Default for AlgorithmParams {
    fn default() -> Self {
        Self {
            base_threshold: 0.71,
            learning_rate: 0.06,
            decay_rate: 0.002,
            min_confidence: 0.2,
            merge_threshold: 0.9,
            outlier_threshold: 0.2,
            stability_window: 100,
            max_clusters: 30,
            max_batch_size: 10_000,
            max_point_dimensions: 1_000,
        }
    }
}

pub use shared::body::AlgorithmOverrides;

/// Largest value a point coordinate may have in absolute terms (as the public API enforces).
pub const MAX_ABS_VALUE: f32 = 1e10;

/// Compares in f32: the bounds round to f32 like the value did, so a bound such as 0.01 means the
/// f32 the request parses to.
fn check(name: &'static str, value: f32, range: RangeInclusive<f64>) -> Result<(), ParamsError> {
    let (min, max) = (*range.start() as f32, *range.end() as f32);
    // `contains` is false for NaN, so a NaN is refused too.
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ParamsError {
            name,
            value: value.into(),
            min: min.into(),
            max: max.into(),
        })
    }
}

fn check_count(
    name: &'static str,
    value: usize,
    range: RangeInclusive<usize>,
) -> Result<(), ParamsError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(ParamsError {
            name,
            value: value as f64,
            min: *range.start() as f64,
            max: *range.end() as f64,
        })
    }
}

/// The overrides as a stream applies them: each value as the f32 (or count) it becomes.
fn applied(o: &AlgorithmOverrides) -> (Option<f32>, Option<f32>, Option<u32>, Option<f32>) {
    let narrow = |v: Option<f64>| v.map(|v| v as f32);
    (
        narrow(o.base_threshold),
        narrow(o.learning_rate),
        o.max_clusters,
        narrow(o.outlier_threshold),
    )
}

/// Whether two sets of overrides set the same parameters to the same values as a stream applies
/// them (in f32): how a later job's overrides are compared with those its stream was created with.
pub fn overrides_agree(a: &AlgorithmOverrides, b: &AlgorithmOverrides) -> bool {
    applied(a) == applied(b)
}

impl AlgorithmParams {
    /// The defaults with `overrides` applied, validated.
    pub fn with_overrides(overrides: &AlgorithmOverrides) -> Result<Self, ParamsError> {
        let mut params = Self::default();
        let (base_threshold, learning_rate, max_clusters, outlier_threshold) = applied(overrides);
        if let Some(v) = base_threshold {
            params.base_threshold = v;
        }
        if let Some(v) = learning_rate {
            params.learning_rate = v;
        }
        if let Some(v) = max_clusters {
            params.max_clusters = v as usize;
        }
        if let Some(v) = outlier_threshold {
            params.outlier_threshold = v;
        }
        params.validate()?;
        Ok(params)
    }

    /// Checks every parameter: the overridable ones against their NCS.md ranges, the others
    /// against ranges that keep the algorithm well defined.
    pub fn validate(&self) -> Result<(), ParamsError> {
        let clusters = ranges::MAX_CLUSTERS;
        check(
            "base_threshold",
            self.base_threshold,
            ranges::BASE_THRESHOLD,
        )?;
        check("learning_rate", self.learning_rate, ranges::LEARNING_RATE)?;
        check_count(
            "max_clusters",
            self.max_clusters,
            *clusters.start() as usize..=*clusters.end() as usize,
        )?;
        check(
            "outlier_threshold",
            self.outlier_threshold,
            ranges::OUTLIER_THRESHOLD,
        )?;
        check("decay_rate", self.decay_rate, 0.0..=0.1)?;
        check("min_confidence", self.min_confidence, 0.0..=1.0)?;
        check("merge_threshold", self.merge_threshold, 0.0..=1.0)?;
        check_count("stability_window", self.stability_window, 10..=10_000)?;
        check_count("max_batch_size", self.max_batch_size, 1..=10_000)?;
        check_count("max_point_dimensions", self.max_point_dimensions, 1..=1_000)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_spec() {
        let p = AlgorithmParams::default();
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(p.base_threshold, 0.71);
        assert_eq!(p.max_clusters, 30);
        assert_eq!(p.stability_window, 100);
    }

    #[test]
    fn overrides_inside_their_ranges_apply() {
        let o = AlgorithmOverrides {
            base_threshold: Some(0.95),
            learning_rate: Some(0.01),
            max_clusters: Some(1000),
            outlier_threshold: Some(0.1),
        };
        let p = AlgorithmParams::with_overrides(&o).unwrap();
        assert_eq!(p.base_threshold, 0.95);
        assert_eq!(p.learning_rate, 0.01);
        assert_eq!(p.max_clusters, 1000);
        assert_eq!(p.outlier_threshold, 0.1);
    }

    #[test]
    fn overrides_outside_their_ranges_are_refused() {
        let cases = [
            (
                AlgorithmOverrides {
                    base_threshold: Some(0.96),
                    ..Default::default()
                },
                "base_threshold",
            ),
            (
                AlgorithmOverrides {
                    learning_rate: Some(0.005),
                    ..Default::default()
                },
                "learning_rate",
            ),
            (
                AlgorithmOverrides {
                    max_clusters: Some(4),
                    ..Default::default()
                },
                "max_clusters",
            ),
            (
                AlgorithmOverrides {
                    max_clusters: Some(1001),
                    ..Default::default()
                },
                "max_clusters",
            ),
            (
                AlgorithmOverrides {
                    outlier_threshold: Some(f64::NAN),
                    ..Default::default()
                },
                "outlier_threshold",
            ),
        ];
        for (o, name) in cases {
            let err = AlgorithmParams::with_overrides(&o).unwrap_err();
            assert_eq!(err.name, name);
        }
    }

    #[test]
    fn the_shared_range_ends_round_to_the_f32_the_spec_names() {
        // Validation compares in f32; these are the bounds it compared with before the ranges
        // moved to `shared`, so the same overrides pass and fail.
        let ends = [
            (ranges::BASE_THRESHOLD, 0.1f32, 0.95f32),
            (ranges::LEARNING_RATE, 0.01, 0.3),
            (ranges::OUTLIER_THRESHOLD, 0.1, 0.9),
        ];
        for (range, min, max) in ends {
            assert_eq!(*range.start() as f32, min);
            assert_eq!(*range.end() as f32, max);
        }
        assert_eq!(ranges::MAX_CLUSTERS, 5..=1000);
        let o = AlgorithmOverrides {
            learning_rate: Some(0.3000000001),
            ..Default::default()
        };
        assert_eq!(
            AlgorithmParams::with_overrides(&o).unwrap().learning_rate,
            0.3
        );
    }

    #[test]
    fn overrides_agree_when_they_apply_the_same_f32_values() {
        let saved = AlgorithmOverrides {
            base_threshold: Some(0.12345679),
            max_clusters: Some(50),
            ..Default::default()
        };
        let requested = AlgorithmOverrides {
            base_threshold: Some(0.123456789),
            ..saved
        };
        assert!(overrides_agree(&saved, &requested));
        let other = AlgorithmOverrides {
            max_clusters: Some(51),
            ..saved
        };
        assert!(!overrides_agree(&saved, &other));
        assert!(!overrides_agree(&saved, &AlgorithmOverrides::default()));
    }

    #[test]
    fn unknown_override_fields_are_refused() {
        let r: Result<AlgorithmOverrides, _> = serde_json::from_str(r#"{"decay_rate": 0.5}"#);
        assert!(r.is_err());
        let o: AlgorithmOverrides = serde_json::from_str(r#"{"max_clusters": 50}"#).unwrap();
        assert_eq!(o.max_clusters, Some(50));
    }
}
