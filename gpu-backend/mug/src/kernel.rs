//! The `analysis` job kind: one uploaded image, decoded under the decode limits, searched for
//! mugs, each mug positioned, the rules of the request evaluated, and placement feedback written.
//!
//! The job carries the image (base64) and a snapshot of the caller's rules taken when the job was
//! queued; the payload is transient, so the queue drops the image once the job is final. A
//! problem with the image itself (it does not decode) is the job's result, not a failure: running
//! it again would not help.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use candle_core::Device;
use serde_json::{Value, json};
use shared::body::rules::ActionKind;

use super::positioning::{Point, PositionKey, Positioning};
use super::postprocess::Thresholds;
use super::rules::{Evaluation, evaluate_analysis};
use crate::analysis::Analysis;
use crate::detector::{AnalyzeOptions, Detector, Upload, default_device};
use crate::error::MugError;
use kernel::{ClaimedJob, JobOutput, Kernel, KernelError, KernelResult, device_name, refusal};

pub use kernel::analysis::{ANALYSIS_KIND, AnalysisJob};

/// Images one batch takes: those whose inputs have the same shape share one forward pass.
pub const MAX_BATCH: usize = 8;

/// Runs `analysis` jobs. The detector loads on first use (the first health check or batch) and is
/// shared by every clone of the kernel.
#[derive(Debug, Clone, Default)]
pub struct AnalysisKernel {
    /// YOLOv8 weights in safetensors; the shipped mug detector when `None`.
    model: Option<PathBuf>,
    /// Where the detector runs; [`default_device`] when `None`.
    device: Option<Device>,
    /// The loaded detector, or why it did not load; filled once.
    detector: Arc<OnceLock<Result<Arc<Detector>, String>>>,
}

impl AnalysisKernel {
    /// A kernel that loads the weights at `model`, or the shipped mug detector when `None`.
    pub fn new(model: Option<PathBuf>) -> AnalysisKernel {
        AnalysisKernel {
            model,
            device: None,
            detector: Arc::default(),
        }
    }

    /// A kernel that loads the weights at `model` (the shipped detector when `None`) on
    /// `device`.
    pub fn on_device(model: Option<PathBuf>, device: Device) -> AnalysisKernel {
        AnalysisKernel {
            device: Some(device),
            ..AnalysisKernel::new(model)
        }
    }

    /// A kernel with a detector already loaded.
    pub fn with_detector(detector: Detector) -> AnalysisKernel {
        let loaded = OnceLock::new();
        let _ = loaded.set(Ok(Arc::new(detector)));
        AnalysisKernel {
            model: None,
            device: None,
            detector: Arc::new(loaded),
        }
    }

    fn detector(&self) -> Result<Arc<Detector>, KernelError> {
        self.detector
            .get_or_init(|| {
                let device = self.device.clone().unwrap_or_else(default_device);
                let loaded = match &self.model {
                    Some(path) => Detector::from_file_on(path, &device)
                        .map_err(|e| format!("loading the model {}: {e}", path.display())),
                    None => Detector::shipped_on(&device)
                        .map_err(|e| format!("loading the shipped model: {e}")),
                };
                loaded.map(Arc::new)
            })
            .clone()
            .map_err(KernelError::Failed)
    }
}

/// A job's payload, read.
struct Parsed {
    request: AnalysisJob,
    image: Vec<u8>,
    analyze: AnalyzeOptions,
}

fn parse_job(job: &ClaimedJob) -> Result<Parsed, KernelError> {
    let request: AnalysisJob = serde_json::from_value(job.payload.clone())
        .map_err(|e| KernelError::Invalid(format!("analysis payload: {e}")))?;
    let image = base64::engine::general_purpose::STANDARD
        .decode(request.image_base64.as_bytes())
        .map_err(|e| KernelError::Invalid(format!("analysis image is not base64: {e}")))?;
    let options = &request.options;
    let analyze = AnalyzeOptions {
        thresholds: Thresholds {
            confidence: options.confidence_threshold,
            ..Thresholds::default()
        },
        reference_point: options.reference_point.map(|(x, y)| Point { x, y }),
        mm_per_pixel: options.calibration_mm_per_pixel,
        input_size: None,
    };
    Ok(Parsed {
        request,
        image,
        analyze,
    })
}

/// The job's result: the analysis with its rules evaluated, or the refusal of its image.
fn outcome(parsed: &Parsed, analysis: Result<Analysis, MugError>) -> KernelResult {
    let analysis = match analysis {
        Ok(analysis) => analysis,
        Err(MugError::Upload(e)) => return refusal(e.code(), e.to_string()),
        Err(MugError::Decode(detail)) => {
            return refusal(
                shared::ErrorCode::InvalidImageFormat,
                format!("the image does not decode: {detail}"),
            );
        }
        Err(e) => return Err(KernelError::Failed(e.to_string())),
    };
    let rules = &parsed.request.rules;
    let evaluation = evaluate_analysis(rules, &analysis);
    Ok(JobOutput::result(result_json(
        &analysis,
        &evaluation,
        rules.len(),
        parsed.request.options.include_feedback,
    )))
}

impl Kernel for AnalysisKernel {
    fn kind(&self) -> &'static str {
        ANALYSIS_KIND
    }

    fn health(&self) -> Result<(), KernelError> {
        self.detector().map(drop)
    }

    fn max_batch_size(&self) -> usize {
        MAX_BATCH
    }

    fn device(&self) -> String {
        match self.detector() {
            Ok(detector) => device_name(detector.device()),
            Err(_) => device_name(&self.device.clone().unwrap_or_else(default_device)),
        }
    }

    /// Runs the jobs of one batch: every decodable image of the same input shape goes through
    /// the network in one forward pass.
    fn run_batch(&self, jobs: &[ClaimedJob]) -> Vec<KernelResult> {
        let detector = match self.detector() {
            Ok(detector) => detector,
            Err(e) => return jobs.iter().map(|_| Err(e.clone())).collect(),
        };
        let parsed: Vec<Result<Parsed, KernelError>> = jobs.iter().map(parse_job).collect();
        let uploads: Vec<Upload<'_>> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .map(|p| Upload {
                bytes: &p.image,
                declared_type: p.request.declared_type.as_deref(),
                options: &p.analyze,
            })
            .collect();
        let mut analysed = detector.analyze_batch(&uploads).into_iter();
        parsed
            .iter()
            .map(|parsed| {
                let parsed = parsed.as_ref().map_err(Clone::clone)?;
                let analysis = analysed.next().ok_or_else(|| {
                    KernelError::Failed("the batch lost an analysis; this is a bug".into())
                })?;
                outcome(parsed, analysis)
            })
            .collect()
    }
}

/// The stored result of an analysis: `{detections, positioning, mug_count, rule_violations,
/// verdict, rules_evaluated, feedback, suggestions, processing_time_ms, model_version}`;
/// `feedback` and `suggestions` are `null` when the request asked for no feedback.
pub fn result_json(
    analysis: &Analysis,
    evaluation: &Evaluation,
    rules_evaluated: usize,
    include_feedback: bool,
) -> Value {
    let (feedback, suggestions) = if include_feedback {
        (
            json!(feedback_lines(analysis, evaluation)),
            json!(suggestions(analysis, evaluation)),
        )
    } else {
        (Value::Null, Value::Null)
    };
    json!({
        "detections": analysis.detections,
        "positioning": analysis.positioning,
        "mug_count": analysis.mug_count,
        "rule_violations": evaluation.matches,
        "verdict": evaluation.verdict,
        "rules_evaluated": rules_evaluated,
        "rules_skipped": evaluation.skipped,
        "feedback": feedback,
        "suggestions": suggestions,
        "processing_time_ms": analysis.processing_time_ms,
        "model_version": analysis.model_version,
    })
}

/// "12 px right and 3 px up", or "on the spot".
fn describe_offset(offset: Point, unit: &str) -> String {
    let mut parts = Vec::new();
    if offset.x.abs() >= 0.5 {
        let side = if offset.x > 0.0 { "right" } else { "left" };
        parts.push(format!("{:.0} {unit} {side}", offset.x.abs()));
    }
    if offset.y.abs() >= 0.5 {
        let side = if offset.y > 0.0 { "down" } else { "up" };
        parts.push(format!("{:.0} {unit} {side}", offset.y.abs()));
    }
    if parts.is_empty() {
        "on the spot".to_owned()
    } else {
        parts.join(" and ")
    }
}

fn position_words(key: PositionKey) -> &'static str {
    match key {
        PositionKey::Center => "in the centre",
        PositionKey::LeftEdge => "near the left edge",
        PositionKey::RightEdge => "near the right edge",
        PositionKey::TopEdge => "near the top edge",
        PositionKey::BottomEdge => "near the bottom edge",
        PositionKey::TopLeft => "in the top-left corner",
        PositionKey::TopRight => "in the top-right corner",
        PositionKey::BottomLeft => "in the bottom-left corner",
        PositionKey::BottomRight => "in the bottom-right corner",
    }
}

fn offset_text(position: &Positioning) -> String {
    match position.offset_mm {
        Some(mm) => format!(
            "{} ({}) from the reference",
            describe_offset(mm, "mm"),
            describe_offset(position.offset_px, "px")
        ),
        None => format!(
            "{} from the reference",
            describe_offset(position.offset_px, "px")
        ),
    }
}

/// Sentences for the person who took the picture: what was found, where, and what the rules
/// said.
pub fn feedback_lines(analysis: &Analysis, evaluation: &Evaluation) -> Vec<String> {
    let mut lines = Vec::new();
    match analysis.mug_count {
        0 => lines.push(
            "No mug was found. Check that the mug is in the picture and well lit, or lower confidence_threshold."
                .to_owned(),
        ),
        1 => {}
        n => lines.push(format!("{n} mugs were found.")),
    }
    for position in &analysis.positioning {
        lines.push(format!(
            "Mug {} is {}, {}.",
            position.detection_index + 1,
            position_words(position.position_key),
            offset_text(position)
        ));
    }
    lines.extend(evaluation.messages.iter().cloned());
    lines
}

/// Moves that would bring each mug onto the reference point, and the adjustments asked for by
/// matched `adjust` rules.
pub fn suggestions(analysis: &Analysis, evaluation: &Evaluation) -> Vec<Value> {
    let mut out = Vec::new();
    for position in &analysis.positioning {
        if position.distance_px < 1.0 {
            continue;
        }
        let towards = Point {
            x: -position.offset_px.x,
            y: -position.offset_px.y,
        };
        let mut suggestion = json!({
            "mug_index": position.detection_index,
            "action": "move",
            "dx_px": towards.x,
            "dy_px": towards.y,
            "message": format!(
                "Move mug {} {} to reach the reference point.",
                position.detection_index + 1,
                match position.offset_mm {
                    Some(mm) => describe_offset(Point { x: -mm.x, y: -mm.y }, "mm"),
                    None => describe_offset(towards, "px"),
                }
            ),
        });
        if let Some(mm) = position.offset_mm {
            suggestion["dx_mm"] = json!(-mm.x);
            suggestion["dy_mm"] = json!(-mm.y);
        }
        out.push(suggestion);
    }
    for matched in &evaluation.matches {
        for action in matched
            .actions
            .iter()
            .filter(|a| a.action == ActionKind::Adjust)
        {
            out.push(json!({
                "mug_index": matched.mug_index,
                "action": "adjust",
                "rule_id": matched.rule_id,
                "parameters": action.parameters.clone().unwrap_or_default(),
                "message": action.message,
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_read_as_directions() {
        assert_eq!(
            describe_offset(Point { x: 12.4, y: -3.0 }, "px"),
            "12 px right and 3 px up"
        );
        assert_eq!(
            describe_offset(Point { x: -40.0, y: 7.6 }, "mm"),
            "40 mm left and 8 mm down"
        );
        assert_eq!(
            describe_offset(Point { x: 0.2, y: -0.1 }, "px"),
            "on the spot"
        );
    }
}
