//! Detection quality: average precision at an IoU threshold (all-point interpolation, as in
//! PASCAL VOC 2010+ and COCO's AP50), and its mean over classes.

use super::detector::Detector;
use super::error::MugError;
use super::postprocess::{BoxXyxy, RawDetection, Thresholds};
use super::synthetic::random_scene;
use super::train::EVAL_SEED_BASE;

/// The ground truth and predictions of one image.
#[derive(Debug, Clone, Default)]
pub struct ImageResult {
    /// True boxes with their class.
    pub truth: Vec<(BoxXyxy, usize)>,
    /// Predicted boxes with score and class.
    pub predictions: Vec<RawDetection>,
}

/// Average precision of one class over a set of images: predictions of that class are ranked
/// by score across all images; each is a true positive when it overlaps a not-yet-matched true
/// box of the class in its image by at least `iou` (the best-overlapping one), else a false
/// positive. Returns the area under the monotone precision envelope. With no true boxes, 1.0
/// when there are also no predictions and 0.0 otherwise.
pub fn average_precision(images: &[ImageResult], class: usize, iou: f32) -> f32 {
    let total: usize = images
        .iter()
        .map(|r| r.truth.iter().filter(|(_, c)| *c == class).count())
        .sum();
    let mut ranked: Vec<(f32, usize, BoxXyxy)> = images
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.predictions
                .iter()
                .filter(|d| d.class == class)
                .map(move |d| (d.score, i, d.bbox))
        })
        .collect();
    if total == 0 {
        return if ranked.is_empty() { 1.0 } else { 0.0 };
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut matched: Vec<Vec<bool>> = images.iter().map(|r| vec![false; r.truth.len()]).collect();
    let mut tp = 0usize;
    let mut points = Vec::with_capacity(ranked.len());
    for (rank, (_, image, bbox)) in ranked.iter().enumerate() {
        let best = images[*image]
            .truth
            .iter()
            .enumerate()
            .filter(|(j, (_, c))| *c == class && !matched[*image][*j])
            .map(|(j, (t, _))| (j, t.iou(bbox)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((j, _)) = best.filter(|(_, o)| *o >= iou) {
            matched[*image][j] = true;
            tp += 1;
        }
        points.push((tp as f32 / total as f32, tp as f32 / (rank + 1) as f32));
    }
    let mut envelope: Vec<f32> = points.iter().map(|p| p.1).collect();
    for k in (0..envelope.len().saturating_sub(1)).rev() {
        envelope[k] = envelope[k].max(envelope[k + 1]);
    }
    let mut ap = 0.0;
    let mut previous = 0.0;
    for (&(recall, _), precision) in points.iter().zip(envelope) {
        ap += (recall - previous) * precision;
        previous = recall;
    }
    ap
}

/// Mean of [`average_precision`] over classes `0..classes`.
pub fn mean_average_precision(images: &[ImageResult], classes: usize, iou: f32) -> f32 {
    if classes == 0 {
        return 0.0;
    }
    (0..classes)
        .map(|c| average_precision(images, c, iou))
        .sum::<f32>()
        / classes as f32
}

/// mAP@0.5 of `detector` on `images` held-out synthetic scenes (seeds from
/// [`EVAL_SEED_BASE`], never used in training) whose longer side is `size` pixels, detected at
/// that input size with confidence threshold 0.001 and NMS IoU 0.45 (the YOLOv8 validation
/// settings). Every class of the detector is scored as a mug.
pub fn evaluate_synthetic(detector: &Detector, images: usize, size: u32) -> Result<f32, MugError> {
    let thresholds = Thresholds {
        confidence: 0.001,
        iou: 0.45,
    };
    let mut results = Vec::with_capacity(images);
    for i in 0..images as u64 {
        let scene = random_scene(EVAL_SEED_BASE + i, size);
        let predictions = detector
            .detect(&scene.image, &thresholds, size)?
            .into_iter()
            .map(|d| RawDetection {
                bbox: d.bbox.to_xyxy(),
                score: d.bbox.confidence,
                class: 0,
            })
            .collect();
        results.push(ImageResult {
            truth: scene.mugs.iter().map(|b| (*b, 0)).collect(),
            predictions,
        });
    }
    Ok(average_precision(&results, 0, 0.5))
}
