//! The upload to `POST /api/v1/analysis` (one image part and the form fields that say how to
//! analyse it) and the body of `POST /api/v1/analysis/{id}/feedback`.

use super::check::{
    Validate, check_charset, check_length, check_range, check_some, invalid, is_context_char,
    refuse,
};
use super::multipart::{self, MultipartError};
use crate::problem::{ErrorCode, FieldError, Problem};
use crate::upload::{ImageInfo, MAX_IMAGE_DIMENSION};
use serde::{Deserialize, Serialize};

/// The confidence threshold when the form gives none.
pub const DEFAULT_CONFIDENCE_THRESHOLD: f32 = 0.25;

/// Largest accepted calibration, in millimetres per pixel.
pub const MAX_MM_PER_PIXEL: f32 = 100.0;

/// Longest rules context, in characters.
pub const MAX_RULES_CONTEXT_CHARS: usize = 100;

/// How an uploaded image is analysed. The form fields are strings; [`AnalysisOptions::from_fields`]
/// turns them into this. It also travels to the backend as JSON, where [`Validate`] applies the
/// same limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisOptions {
    /// Detections below this score are dropped: 0 to 1, [`DEFAULT_CONFIDENCE_THRESHOLD`] when
    /// absent.
    #[serde(default = "default_confidence_threshold")]
    pub confidence_threshold: f32,
    /// Which rules apply: 1 to 100 characters of `[A-Za-z0-9_\- ]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_context: Option<String>,
    /// Whether the result carries placement feedback; true when absent.
    #[serde(default = "default_include_feedback")]
    pub include_feedback: bool,
    /// Scale of the photo: above 0 and at most 100 mm per pixel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_mm_per_pixel: Option<f32>,
    /// A position in the image, in pixels: `x,y` in the form, each 0 to
    /// [`MAX_IMAGE_DIMENSION`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_point: Option<(f32, f32)>,
}

fn default_confidence_threshold() -> f32 {
    DEFAULT_CONFIDENCE_THRESHOLD
}

fn default_include_feedback() -> bool {
    true
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions {
            confidence_threshold: DEFAULT_CONFIDENCE_THRESHOLD,
            rules_context: None,
            include_feedback: true,
            calibration_mm_per_pixel: None,
            reference_point: None,
        }
    }
}

impl AnalysisOptions {
    /// Builds the options from decoded form fields (name, value), not counting the image part.
    /// An unknown name is `UNKNOWN_FIELD`; a repeated name, a value that does not parse or one
    /// out of range is `VALIDATION_FAILED`. Values are taken as sent, without trimming.
    /// `include_feedback` accepts `true`, `false` (any case), `1` and `0`.
    pub fn from_fields<'a>(
        fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, Problem> {
        let mut options = AnalysisOptions::default();
        let mut seen = [false; 5];
        for (name, value) in fields {
            let slot = match name {
                "confidence_threshold" => 0,
                "rules_context" => 1,
                "include_feedback" => 2,
                "calibration_mm_per_pixel" => 3,
                "reference_point" => 4,
                _ => {
                    return Err(refuse(
                        ErrorCode::UnknownField,
                        name,
                        "is not a field of this form",
                    ));
                }
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(invalid(name, "is given more than once"));
            }
            match slot {
                0 => options.confidence_threshold = parse_number(name, value)?,
                1 => options.rules_context = Some(value.to_owned()),
                2 => options.include_feedback = parse_flag(name, value)?,
                3 => options.calibration_mm_per_pixel = Some(parse_number(name, value)?),
                _ => options.reference_point = Some(parse_point(name, value)?),
            }
        }
        options.validate()?;
        Ok(options)
    }
}

impl Validate for AnalysisOptions {
    fn validate(&self) -> Result<(), Problem> {
        check_range("confidence_threshold", self.confidence_threshold, 0.0, 1.0)?;
        check_some(self.rules_context.as_deref(), |context| {
            check_charset(
                "rules_context",
                context,
                1,
                MAX_RULES_CONTEXT_CHARS,
                is_context_char,
                "letters, digits, '_', '-' and spaces",
            )
        })?;
        check_some(self.calibration_mm_per_pixel.as_ref(), |&mm| {
            if mm.is_finite() && mm > 0.0 && mm <= MAX_MM_PER_PIXEL {
                Ok(())
            } else {
                Err(invalid(
                    "calibration_mm_per_pixel",
                    format!("must be above 0 and at most {MAX_MM_PER_PIXEL}"),
                ))
            }
        })?;
        check_some(self.reference_point.as_ref(), |&(x, y)| {
            let max = MAX_IMAGE_DIMENSION as f32;
            check_range("reference_point", x, 0.0, max)?;
            check_range("reference_point", y, 0.0, max)
        })
    }
}

/// A whole analysis upload, read from a `multipart/form-data` body: exactly one `image` part that
/// passes [`crate::upload::inspect`] against its declared type, and the other parts as
/// [`AnalysisOptions`]. The edge checks an upload with it before forwarding, and the backend
/// reads the same body with it again.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisUpload<'a> {
    /// The image bytes, as sent.
    pub image: &'a [u8],
    /// The image part's declared `Content-Type`.
    pub declared_type: Option<String>,
    /// What the header of the image says: format and dimensions.
    pub info: ImageInfo,
    /// The other fields.
    pub options: AnalysisOptions,
}

impl<'a> AnalysisUpload<'a> {
    /// Reads `body` sent with `content_type`. A form that does not follow its boundary is
    /// `BAD_REQUEST`; no `image` part or more than one is `VALIDATION_FAILED`; an image refused
    /// by the upload policy carries the policy's code (`INVALID_IMAGE_FORMAT`,
    /// `IMAGE_TOO_LARGE`, …) with the field `image`; a field that is not UTF-8 is
    /// `VALIDATION_FAILED`; other fields as [`AnalysisOptions::from_fields`].
    pub fn parse(content_type: &str, body: &'a [u8]) -> Result<AnalysisUpload<'a>, Problem> {
        let malformed =
            |e: MultipartError| Problem::new(ErrorCode::BadRequest).with_detail(e.to_string());
        let boundary = multipart::boundary(content_type).map_err(malformed)?;
        let parts = multipart::parse(body, boundary).map_err(malformed)?;
        let mut images = parts.iter().filter(|p| p.name == "image");
        let (Some(image), None) = (images.next(), images.next()) else {
            return Err(field_problem(
                ErrorCode::ValidationFailed,
                "image",
                "exactly one image part is required",
            ));
        };
        let info = crate::upload::inspect(image.data, image.content_type.as_deref())
            .map_err(|e| field_problem(e.code(), "image", &e.to_string()))?;
        let mut texts = Vec::with_capacity(parts.len());
        for part in parts.iter().filter(|p| p.name != "image") {
            let text = std::str::from_utf8(part.data)
                .map_err(|_| invalid(&part.name, "must be UTF-8 text"))?;
            texts.push((part.name.as_str(), text));
        }
        let options = AnalysisOptions::from_fields(texts)?;
        Ok(AnalysisUpload {
            image: image.data,
            declared_type: image.content_type.clone(),
            info,
            options,
        })
    }
}

fn field_problem(code: ErrorCode, field: &str, message: &str) -> Problem {
    Problem::new(code)
        .with_detail(message)
        .with_field_error(FieldError {
            field: field.to_owned(),
            code,
            message: message.to_owned(),
        })
}

/// Longest feedback comment, in characters.
pub const MAX_FEEDBACK_COMMENT_CHARS: usize = 1_000;
/// Largest mug count a feedback may state.
pub const MAX_FEEDBACK_MUG_COUNT: u32 = 1_000;

/// Whether an analysis was right, from the person who asked for it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisFeedbackRequest {
    /// Whether the detections and positions were right.
    pub correct: bool,
    /// How many mugs the picture really shows, when the count was wrong: 0 to 1 000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_mug_count: Option<u32>,
    /// Free text, at most 1 000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Validate for AnalysisFeedbackRequest {
    fn validate(&self) -> Result<(), Problem> {
        check_some(self.actual_mug_count.as_ref(), |&count| {
            check_range("actual_mug_count", count, 0, MAX_FEEDBACK_MUG_COUNT)
        })?;
        check_some(self.comment.as_deref(), |comment| {
            check_length("comment", comment, 0, MAX_FEEDBACK_COMMENT_CHARS)
        })
    }
}

fn parse_number(field: &str, value: &str) -> Result<f32, Problem> {
    match value.parse::<f32>() {
        Ok(number) if number.is_finite() => Ok(number),
        _ => Err(invalid(field, "must be a finite number")),
    }
}

fn parse_flag(field: &str, value: &str) -> Result<bool, Problem> {
    if value == "1" || value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value == "0" || value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(invalid(field, "must be true, false, 1 or 0"))
    }
}

fn parse_point(field: &str, value: &str) -> Result<(f32, f32), Problem> {
    let (x, y) = value
        .split_once(',')
        .ok_or_else(|| invalid(field, "must be two numbers as x,y"))?;
    Ok((parse_number(field, x)?, parse_number(field, y)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::parse_valid;

    fn refusal(fields: &[(&str, &str)]) -> (ErrorCode, String) {
        let problem = AnalysisOptions::from_fields(fields.iter().copied()).unwrap_err();
        assert_eq!(problem.errors.len(), 1);
        (problem.code, problem.errors[0].field.clone())
    }

    fn failed(field: &str) -> (ErrorCode, String) {
        (ErrorCode::ValidationFailed, field.to_owned())
    }

    #[test]
    fn defaults_apply_when_fields_are_absent() {
        let options = AnalysisOptions::from_fields([]).unwrap();
        assert_eq!(options, AnalysisOptions::default());
        assert_eq!(options.confidence_threshold, 0.25);
        assert!(options.include_feedback);
        assert_eq!(options.rules_context, None);
    }

    #[test]
    fn reads_every_field() {
        let options = AnalysisOptions::from_fields([
            ("confidence_threshold", "0.6"),
            ("rules_context", "office desk_2-B"),
            ("include_feedback", "0"),
            ("calibration_mm_per_pixel", "0.35"),
            ("reference_point", "120.5,88"),
        ])
        .unwrap();
        assert_eq!(options.confidence_threshold, 0.6);
        assert_eq!(options.rules_context.as_deref(), Some("office desk_2-B"));
        assert!(!options.include_feedback);
        assert_eq!(options.calibration_mm_per_pixel, Some(0.35));
        assert_eq!(options.reference_point, Some((120.5, 88.0)));
    }

    #[test]
    fn confidence_threshold_is_zero_to_one() {
        for ok in ["0", "1", "0.0", "1.0", "1e-3"] {
            assert!(
                AnalysisOptions::from_fields([("confidence_threshold", ok)]).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "-0.01", "1.01", "NaN", "inf", "-inf", "", "half", "0.5 ", "0,5",
        ] {
            assert_eq!(
                refusal(&[("confidence_threshold", bad)]),
                failed("confidence_threshold"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rules_context_has_a_charset_and_length() {
        assert!(AnalysisOptions::from_fields([("rules_context", "a")]).is_ok());
        let longest = "x".repeat(100);
        assert!(AnalysisOptions::from_fields([("rules_context", longest.as_str())]).is_ok());
        let too_long = "x".repeat(101);
        for bad in ["", too_long.as_str(), "a;b", "a/b", "café", "a\nb"] {
            assert_eq!(
                refusal(&[("rules_context", bad)]),
                failed("rules_context"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn include_feedback_takes_four_spellings() {
        for (text, flag) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("false", false),
            ("False", false),
            ("0", false),
        ] {
            assert_eq!(
                AnalysisOptions::from_fields([("include_feedback", text)])
                    .unwrap()
                    .include_feedback,
                flag,
                "{text}"
            );
        }
        for bad in ["yes", "2", "", "t"] {
            assert_eq!(
                refusal(&[("include_feedback", bad)]),
                failed("include_feedback"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn calibration_is_positive_and_at_most_a_hundred() {
        for ok in ["100", "0.0001", "1e-30"] {
            assert!(
                AnalysisOptions::from_fields([("calibration_mm_per_pixel", ok)]).is_ok(),
                "{ok}"
            );
        }
        for bad in ["0", "-1", "100.01", "inf", "NaN", "1e39"] {
            assert_eq!(
                refusal(&[("calibration_mm_per_pixel", bad)]),
                failed("calibration_mm_per_pixel"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn reference_point_is_x_comma_y_inside_the_largest_image() {
        assert_eq!(
            AnalysisOptions::from_fields([("reference_point", "0,4096")])
                .unwrap()
                .reference_point,
            Some((0.0, 4096.0))
        );
        for bad in [
            "1", "1,2,3", "1;2", ",", "a,b", "-1,0", "0,4097", "NaN,1", "1, 2",
        ] {
            assert_eq!(
                refusal(&[("reference_point", bad)]),
                failed("reference_point"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unknown_and_repeated_fields_are_refused() {
        assert_eq!(
            refusal(&[("threshold", "0.5")]),
            (ErrorCode::UnknownField, "threshold".to_owned())
        );
        assert_eq!(
            refusal(&[("image", "x")]),
            (ErrorCode::UnknownField, "image".to_owned())
        );
        assert_eq!(
            refusal(&[
                ("confidence_threshold", "0.5"),
                ("confidence_threshold", "0.5")
            ]),
            failed("confidence_threshold")
        );
    }

    #[test]
    fn json_form_applies_the_same_limits() {
        let options: AnalysisOptions =
            parse_valid(br#"{"rules_context":"desk","reference_point":[1,2]}"#).unwrap();
        assert_eq!(options.confidence_threshold, 0.25);
        assert!(options.include_feedback);
        assert_eq!(options.reference_point, Some((1.0, 2.0)));
        let round_trip: AnalysisOptions =
            parse_valid(&serde_json::to_vec(&options).unwrap()).unwrap();
        assert_eq!(round_trip, options);
        assert_eq!(
            parse_valid::<AnalysisOptions>(br#"{"confidence_threshold":2}"#)
                .unwrap_err()
                .code,
            ErrorCode::ValidationFailed
        );
        assert_eq!(
            parse_valid::<AnalysisOptions>(br#"{"extra":1}"#)
                .unwrap_err()
                .code,
            ErrorCode::UnknownField
        );
    }
}
