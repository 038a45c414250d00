//! The NeuroCluster Streamer body of `POST /api/v1/process_points`, with the parameter
//! overrides it may carry and their [`ranges`] (those of NCS.md, which the algorithm enforces too).

use super::check::{Validate, check_range, check_some, refuse};
use crate::problem::{ErrorCode, Problem};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Most points in one request.
pub const MAX_POINTS: usize = 10_000;

/// Most dimensions of one point.
pub const MAX_DIMENSIONS: usize = 1_000;

/// Largest magnitude of a point value.
pub const MAX_ABS_VALUE: f64 = 1e10;

/// Most characters of a stream name.
pub const MAX_STREAM_CHARS: usize = 64;

/// Shortest and longest accepted `timeout`, in milliseconds.
pub const TIMEOUT_MS: (u64, u64) = (1_000, 300_000);

/// Shortest and longest `timeout` read as seconds, the unit of the published NCS SDK (its
/// `process_points_batch` sends `"timeout": 60`). Values from 301 to 999 are refused as
/// ambiguous.
pub const TIMEOUT_SECS: (u64, u64) = (1, 300);

/// A batch of vectors for one stream.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessPointsRequest {
    /// 1 to [`MAX_POINTS`] points, all of one dimension between 1 and [`MAX_DIMENSIONS`].
    /// Parsing keeps at most one point (and one value) past each limit, so an oversized batch
    /// costs no more memory than a full one before it is refused.
    #[serde(deserialize_with = "bounded_points")]
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 10_000))]
    pub points: Vec<Vec<f64>>,
    /// The stream the points belong to: 1 to 64 characters of `[A-Za-z0-9_.:-]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_.:-]{1,64}$"))]
    pub stream: Option<String>,
    /// Overrides of the clustering parameters for this batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm_params: Option<AlgorithmOverrides>,
    /// How long the caller waits for the result: 1 000 to 300 000 is milliseconds; 1 to 300 is
    /// seconds, as the published NCS SDK sends it. See [`ProcessPointsRequest::timeout_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 300_000))]
    pub timeout: Option<u64>,
    /// The published NCS contract's batch switch: `true` runs the request through the batched
    /// kernel (one matrix product per batch), `false` or absent through the exact one. Results
    /// agree with exact mode within the kernel's documented distance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_mode: Option<bool>,
}

/// Per-request overrides of the clustering parameters (`algorithm_params`), each within its
/// range in [`ranges`]. The `ncs` job carries them as they were parsed, and a stream keeps the
/// overrides it was created with.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlgorithmOverrides {
    /// [`ranges::BASE_THRESHOLD`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_threshold: Option<f64>,
    /// [`ranges::LEARNING_RATE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    /// [`ranges::MAX_CLUSTERS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_clusters: Option<u32>,
    /// [`ranges::OUTLIER_THRESHOLD`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_threshold: Option<f64>,
}

/// The range NCS.md allows each overridable parameter, inclusive at both ends.
pub mod ranges {
    use std::ops::RangeInclusive;

    /// `base_threshold`: the similarity a point needs before the adaptive threshold takes over.
    pub const BASE_THRESHOLD: RangeInclusive<f64> = 0.1..=0.95;
    /// `learning_rate`: the base step of a centroid update.
    pub const LEARNING_RATE: RangeInclusive<f64> = 0.01..=0.3;
    /// `max_clusters`: the most clusters a stream holds at once.
    pub const MAX_CLUSTERS: RangeInclusive<u32> = 5..=1000;
    /// `outlier_threshold`: the outlier score above which a point is an outlier.
    pub const OUTLIER_THRESHOLD: RangeInclusive<f64> = 0.1..=0.9;
}

impl ProcessPointsRequest {
    /// The dimension shared by every point (of the first point before validation).
    pub fn dimension(&self) -> usize {
        self.points.first().map_or(0, Vec::len)
    }

    /// The validated `timeout` in milliseconds: values up to [`TIMEOUT_SECS`]`.1` are seconds.
    pub fn timeout_ms(&self) -> Option<u64> {
        self.timeout
            .map(|t| if t <= TIMEOUT_SECS.1 { t * 1_000 } else { t })
    }
}

impl Validate for ProcessPointsRequest {
    fn validate(&self) -> Result<(), Problem> {
        if self.points.is_empty() {
            return Err(refuse(
                ErrorCode::EmptyPoints,
                "points",
                "at least one point is required",
            ));
        }
        if self.points.len() > MAX_POINTS {
            return Err(refuse(
                ErrorCode::TooManyPoints,
                "points",
                format!("at most {MAX_POINTS} points are accepted in one request"),
            ));
        }
        let dimension = self.dimension();
        for (i, point) in self.points.iter().enumerate() {
            if point.is_empty() || point.len() > MAX_DIMENSIONS {
                return Err(refuse(
                    ErrorCode::InvalidInput,
                    format!("points[{i}]"),
                    format!("a point has 1 to {MAX_DIMENSIONS} dimensions"),
                ));
            }
            if point.len() != dimension {
                return Err(refuse(
                    ErrorCode::DimensionMismatch,
                    format!("points[{i}]"),
                    format!(
                        "has {} dimensions but points[0] has {dimension}",
                        point.len()
                    ),
                ));
            }
            if let Some(j) = point
                .iter()
                .position(|v| !(v.is_finite() && v.abs() <= MAX_ABS_VALUE))
            {
                return Err(refuse(
                    ErrorCode::InvalidInput,
                    format!("points[{i}][{j}]"),
                    format!("must be a finite number with magnitude at most {MAX_ABS_VALUE:e}"),
                ));
            }
        }
        check_some(self.stream.as_deref(), super::stream::check_stream)?;
        check_some(self.timeout.as_ref(), |&timeout| {
            if timeout <= TIMEOUT_SECS.1 {
                check_range("timeout", timeout, TIMEOUT_SECS.0, TIMEOUT_SECS.1)
            } else {
                check_range("timeout", timeout, TIMEOUT_MS.0, TIMEOUT_MS.1)
            }
        })?;
        check_some(self.algorithm_params.as_ref(), AlgorithmOverrides::validate)
    }
}

impl Validate for AlgorithmOverrides {
    fn validate(&self) -> Result<(), Problem> {
        let ranges = [
            (
                "base_threshold",
                self.base_threshold,
                ranges::BASE_THRESHOLD,
            ),
            ("learning_rate", self.learning_rate, ranges::LEARNING_RATE),
            (
                "outlier_threshold",
                self.outlier_threshold,
                ranges::OUTLIER_THRESHOLD,
            ),
        ];
        for (name, value, range) in ranges {
            check_some(value.as_ref(), |&v| {
                check_range(
                    &format!("algorithm_params.{name}"),
                    v,
                    *range.start(),
                    *range.end(),
                )
            })?;
        }
        let clusters = ranges::MAX_CLUSTERS;
        check_some(self.max_clusters.as_ref(), |&v| {
            check_range(
                "algorithm_params.max_clusters",
                v,
                *clusters.start(),
                *clusters.end(),
            )
        })
    }
}

pub(super) fn is_stream_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

/// Deserializes the points, keeping at most `MAX_POINTS + 1` points of at most
/// `MAX_DIMENSIONS + 1` values and skipping the rest, so validation still sees that a limit was
/// passed.
fn bounded_points<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Vec<f64>>, D::Error> {
    deserializer.deserialize_seq(BoundedSeq {
        keep: MAX_POINTS + 1,
        element: BoundedSeq {
            keep: MAX_DIMENSIONS + 1,
            element: F64,
        },
    })
}

/// A sequence that keeps its first `keep` elements and skips the others.
#[derive(Clone, Copy)]
struct BoundedSeq<E> {
    keep: usize,
    element: E,
}

/// The seed of a plain `f64`.
#[derive(Clone, Copy)]
struct F64;

impl<'de> DeserializeSeed<'de> for F64 {
    type Value = f64;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<f64, D::Error> {
        f64::deserialize(deserializer)
    }
}

impl<'de, E: DeserializeSeed<'de> + Copy> DeserializeSeed<'de> for BoundedSeq<E> {
    type Value = Vec<E::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, E: DeserializeSeed<'de> + Copy> Visitor<'de> for BoundedSeq<E> {
    type Value = Vec<E::Value>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut kept = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.keep).min(4096));
        while kept.len() < self.keep {
            match seq.next_element_seed(self.element)? {
                Some(element) => kept.push(element),
                None => return Ok(kept),
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{parse_json, parse_valid};
    use proptest::prelude::*;

    fn body(points: &str, rest: &str) -> String {
        format!(r#"{{"points":{points}{rest}}}"#)
    }

    fn refusal(json: &str) -> (ErrorCode, String) {
        let problem = parse_valid::<ProcessPointsRequest>(json.as_bytes()).unwrap_err();
        assert_eq!(problem.errors.len(), 1, "{problem:?}");
        assert_eq!(problem.errors[0].code, problem.code);
        (problem.code, problem.errors[0].field.clone())
    }

    fn grid(count: usize, dims: usize) -> String {
        let point = format!("[{}]", vec!["0.5"; dims].join(","));
        format!("[{}]", vec![point; count].join(","))
    }

    #[test]
    fn accepts_a_full_request() {
        let json = r#"{"points":[[1.0,2.0],[-3.5,1e10]],"stream":"sensor-1.a:b_c","timeout":30000,
            "algorithm_params":{"base_threshold":0.5,"learning_rate":0.1,"max_clusters":50,"outlier_threshold":0.3}}"#;
        let request = parse_valid::<ProcessPointsRequest>(json.as_bytes()).unwrap();
        assert_eq!(request.points, vec![vec![1.0, 2.0], vec![-3.5, 1e10]]);
        assert_eq!(request.stream.as_deref(), Some("sensor-1.a:b_c"));
        assert_eq!(request.timeout, Some(30_000));
        assert_eq!(request.algorithm_params.unwrap().max_clusters, Some(50));
        assert_eq!(request.dimension(), 2);
        let round_trip = serde_json::to_vec(&request).unwrap();
        assert_eq!(
            parse_valid::<ProcessPointsRequest>(&round_trip).unwrap(),
            request
        );
    }

    #[test]
    fn point_count_is_one_to_ten_thousand() {
        assert_eq!(
            refusal(&body("[]", "")),
            (ErrorCode::EmptyPoints, "points".to_owned())
        );
        assert_eq!(
            parse_valid::<ProcessPointsRequest>(body(&grid(1, 1), "").as_bytes())
                .unwrap()
                .points
                .len(),
            1
        );
        let full =
            parse_valid::<ProcessPointsRequest>(body(&grid(10_000, 2), "").as_bytes()).unwrap();
        assert_eq!(full.points.len(), 10_000);
        assert_eq!(
            refusal(&body(&grid(10_001, 2), "")),
            (ErrorCode::TooManyPoints, "points".to_owned())
        );
    }

    #[test]
    fn oversized_batches_are_kept_bounded_while_parsing() {
        let parsed: ProcessPointsRequest =
            parse_json(body(&grid(25_000, 1), "").as_bytes()).unwrap();
        assert_eq!(parsed.points.len(), MAX_POINTS + 1);
        let wide: ProcessPointsRequest = parse_json(body(&grid(1, 5_000), "").as_bytes()).unwrap();
        assert_eq!(wide.points[0].len(), MAX_DIMENSIONS + 1);
        // Values past the kept ones must still be well-formed JSON.
        let broken = body(
            &format!("[{}]", vec!["[0]"; 10_005].join(",") + ",[nope]"),
            "",
        );
        assert_eq!(
            parse_json::<ProcessPointsRequest>(broken.as_bytes())
                .unwrap_err()
                .code,
            ErrorCode::InvalidJson
        );
    }

    #[test]
    fn dimensions_are_one_to_a_thousand_and_shared() {
        assert_eq!(
            refusal(&body("[[]]", "")),
            (ErrorCode::InvalidInput, "points[0]".to_owned())
        );
        assert!(parse_valid::<ProcessPointsRequest>(body(&grid(2, 1000), "").as_bytes()).is_ok());
        assert_eq!(
            refusal(&body(&grid(1, 1001), "")),
            (ErrorCode::InvalidInput, "points[0]".to_owned())
        );
        assert_eq!(
            refusal(&body("[[1,2],[3,4],[5]]", "")),
            (ErrorCode::DimensionMismatch, "points[2]".to_owned())
        );
        assert_eq!(
            refusal(&body("[[1,2],[3,4,5]]", "")),
            (ErrorCode::DimensionMismatch, "points[1]".to_owned())
        );
    }

    #[test]
    fn values_are_finite_and_within_1e10() {
        assert!(parse_valid::<ProcessPointsRequest>(body("[[1e10,-1e10]]", "").as_bytes()).is_ok());
        assert_eq!(
            refusal(&body("[[0,0],[1,10000000001]]", "")),
            (ErrorCode::InvalidInput, "points[1][1]".to_owned())
        );
        assert_eq!(
            refusal(&body("[[-1.0000001e10]]", "")),
            (ErrorCode::InvalidInput, "points[0][0]".to_owned())
        );
        // JSON has no NaN or infinity; a literal that overflows f64 fails to parse.
        assert_eq!(
            refusal(&body("[[1e999]]", "")),
            (ErrorCode::InvalidJson, "points[0][0]".to_owned())
        );
        assert_eq!(
            refusal(&body("[[NaN]]", "")),
            (ErrorCode::InvalidJson, "points[0][0]".to_owned())
        );
        assert_eq!(
            refusal(&body("[[Infinity]]", "")),
            (ErrorCode::InvalidJson, "points[0][0]".to_owned())
        );
        assert_eq!(
            refusal(&body(r#"[[1,"2"]]"#, "")),
            (ErrorCode::InvalidJson, "points[0][1]".to_owned())
        );
        assert_eq!(
            refusal(&body("[[1,null]]", "")),
            (ErrorCode::InvalidJson, "points[0][1]".to_owned())
        );
        // Built in code rather than parsed, a non-finite value is refused all the same.
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let request = ProcessPointsRequest {
                points: vec![vec![0.0], vec![bad]],
                stream: None,
                algorithm_params: None,
                timeout: None,
                batch_mode: None,
            };
            let problem = request.validate().unwrap_err();
            assert_eq!(
                (problem.code, problem.errors[0].field.as_str()),
                (ErrorCode::InvalidInput, "points[1][0]")
            );
        }
    }

    #[test]
    fn stream_names_are_short_and_plain() {
        let ok = |s: &str| {
            parse_valid::<ProcessPointsRequest>(
                body("[[1]]", &format!(r#","stream":"{s}""#)).as_bytes(),
            )
        };
        assert!(ok("a").is_ok());
        assert!(ok(&"s".repeat(64)).is_ok());
        assert!(ok("A-z_0.9:x").is_ok());
        for bad in [
            String::new(),
            "s".repeat(65),
            "a b".into(),
            "a/b".into(),
            "é".into(),
            "a\\u0000".into(),
        ] {
            let problem = ok(&bad).unwrap_err();
            assert_eq!(
                (problem.code, problem.errors[0].field.as_str()),
                (ErrorCode::ValidationFailed, "stream"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn timeout_is_one_to_three_hundred_seconds() {
        let with = |t: &str| {
            parse_valid::<ProcessPointsRequest>(
                body("[[1]]", &format!(r#","timeout":{t}"#)).as_bytes(),
            )
        };
        assert!(with("1000").is_ok());
        assert!(with("300000").is_ok());
        assert_eq!(with("999").unwrap_err().errors[0].field, "timeout");
        assert_eq!(with("301").unwrap_err().errors[0].field, "timeout");
        assert_eq!(with("0").unwrap_err().errors[0].field, "timeout");
        // The SDK's seconds.
        assert_eq!(with("60").unwrap().timeout_ms(), Some(60_000));
        assert_eq!(with("300").unwrap().timeout_ms(), Some(300_000));
        assert_eq!(with("1000").unwrap().timeout_ms(), Some(1_000));
        assert_eq!(
            with("300001").unwrap_err().code,
            ErrorCode::ValidationFailed
        );
        assert_eq!(with("-1").unwrap_err().code, ErrorCode::InvalidJson);
        assert_eq!(with("1.5").unwrap_err().code, ErrorCode::InvalidJson);
    }

    #[test]
    fn algorithm_params_have_ranges_and_no_extra_fields() {
        let with = |p: &str| {
            parse_valid::<ProcessPointsRequest>(
                body("[[1]]", &format!(r#","algorithm_params":{{{p}}}"#)).as_bytes(),
            )
        };
        let cases = [
            ("base_threshold", "0.1", "0.95", "0.09", "0.96"),
            ("learning_rate", "0.01", "0.3", "0.009", "0.31"),
            ("max_clusters", "5", "1000", "4", "1001"),
            ("outlier_threshold", "0.1", "0.9", "0.099", "0.91"),
        ];
        for (name, low, high, under, over) in cases {
            assert!(with(&format!(r#""{name}":{low}"#)).is_ok(), "{name}={low}");
            assert!(
                with(&format!(r#""{name}":{high}"#)).is_ok(),
                "{name}={high}"
            );
            for bad in [under, over] {
                let problem = with(&format!(r#""{name}":{bad}"#)).unwrap_err();
                assert_eq!(problem.code, ErrorCode::ValidationFailed, "{name}={bad}");
                assert_eq!(problem.errors[0].field, format!("algorithm_params.{name}"));
            }
        }
        assert!(with("").is_ok());
        let unknown = with(r#""momentum":0.5"#).unwrap_err();
        assert_eq!(
            (unknown.code, unknown.errors[0].field.as_str()),
            (ErrorCode::UnknownField, "algorithm_params.momentum")
        );
        let nan = AlgorithmOverrides {
            learning_rate: Some(f64::NAN),
            ..AlgorithmOverrides::default()
        };
        assert_eq!(
            nan.validate().unwrap_err().errors[0].field,
            "algorithm_params.learning_rate"
        );
    }

    #[test]
    fn batch_mode_is_a_boolean() {
        let with = |b: &str| {
            parse_valid::<ProcessPointsRequest>(
                body("[[1]]", &format!(r#","batch_mode":{b}"#)).as_bytes(),
            )
        };
        assert_eq!(with("true").unwrap().batch_mode, Some(true));
        assert_eq!(with("false").unwrap().batch_mode, Some(false));
        assert_eq!(with(r#""yes""#).unwrap_err().code, ErrorCode::InvalidJson);
        assert_eq!(with("1").unwrap_err().code, ErrorCode::InvalidJson);
        // What the SDK's process_points_batch sends by default.
        let sdk = r#"{"points":[[1,2]],"batch_mode":true,"timeout":60}"#;
        let request = parse_valid::<ProcessPointsRequest>(sdk.as_bytes()).unwrap();
        assert_eq!(
            (request.batch_mode, request.timeout_ms()),
            (Some(true), Some(60_000))
        );
    }

    #[test]
    fn unknown_and_missing_fields_are_refused() {
        assert_eq!(
            refusal(r#"{"points":[[1]],"mode":"fast"}"#),
            (ErrorCode::UnknownField, "mode".to_owned())
        );
        assert_eq!(
            refusal(r#"{"stream":"a"}"#),
            (ErrorCode::InvalidJson, "points".to_owned())
        );
        assert_eq!(refusal(r#"[[1]]"#).0, ErrorCode::InvalidJson);
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_valid::<ProcessPointsRequest>(&bytes);
        }

        #[test]
        fn parsing_json_like_text_never_panics(text in r#"[\[\]{}",:0-9a-z.eE+\- ]{0,120}"#) {
            let _ = parse_valid::<ProcessPointsRequest>(format!(r#"{{"points":{text}"#).as_bytes());
        }

        #[test]
        fn accepted_requests_meet_every_limit(points in proptest::collection::vec(proptest::collection::vec(-2e10f64..2e10, 1..4), 1..6)) {
            let json = serde_json::to_vec(&serde_json::json!({ "points": points })).unwrap();
            if let Ok(request) = parse_valid::<ProcessPointsRequest>(&json) {
                let dimension = request.dimension();
                prop_assert!(request.points.iter().all(|p| p.len() == dimension));
                prop_assert!(request.points.iter().flatten().all(|v| v.abs() <= MAX_ABS_VALUE));
            }
        }
    }
}
