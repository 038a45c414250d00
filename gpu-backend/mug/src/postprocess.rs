//! Network predictions to detections: confidence threshold, class-aware non-maximum suppression,
//! and boxes mapped back through the letterbox.

use serde::{Deserialize, Serialize};

/// Detections below this confidence are dropped unless the caller says otherwise.
pub const DEFAULT_CONFIDENCE: f32 = 0.25;
/// Boxes of one class overlapping a better one by more than this IoU are suppressed.
pub const DEFAULT_IOU: f32 = 0.45;
/// Most candidates that enter suppression (the best-scoring ones).
pub const MAX_CANDIDATES: usize = 3_000;
/// Most detections returned for one image.
pub const MAX_DETECTIONS: usize = 300;

/// An axis-aligned box in pixels, `x1 <= x2`, `y1 <= y2`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoxXyxy {
    /// Left.
    pub x1: f32,
    /// Top.
    pub y1: f32,
    /// Right.
    pub x2: f32,
    /// Bottom.
    pub y2: f32,
}

impl BoxXyxy {
    /// The box's area (0 for an empty box).
    pub fn area(&self) -> f32 {
        (self.x2 - self.x1).max(0.0) * (self.y2 - self.y1).max(0.0)
    }

    /// Intersection over union with `other`, 0 when either box is empty.
    pub fn iou(&self, other: &BoxXyxy) -> f32 {
        let w = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let h = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }

    /// The centre point.
    pub fn centre(&self) -> (f32, f32) {
        ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)
    }
}

/// One scored box before names are attached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawDetection {
    /// The box, in the coordinates it was decoded in.
    pub bbox: BoxXyxy,
    /// The class probability, 0 to 1.
    pub score: f32,
    /// The class index.
    pub class: usize,
}

/// Thresholds for turning predictions into detections.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Minimum class probability, 0 to 1.
    pub confidence: f32,
    /// IoU above which a lower-scoring box of the same class is suppressed.
    pub iou: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            confidence: DEFAULT_CONFIDENCE,
            iou: DEFAULT_IOU,
        }
    }
}

/// Reads one image's predictions, laid out `(4 + classes, anchors)` row-major as the network
/// returns them (centre x, centre y, width, height, then class probabilities), keeps for each
/// anchor its best class among `allowed` (all classes when `None`) if it reaches
/// `thresholds.confidence`, and suppresses overlaps per class. The result is sorted by score,
/// best first, at most [`MAX_DETECTIONS`] long. A `pred` shorter than its layout yields nothing.
pub fn detections_from_predictions(
    pred: &[f32],
    classes: usize,
    anchors: usize,
    thresholds: &Thresholds,
    allowed: Option<&[usize]>,
) -> Vec<RawDetection> {
    if pred.len() < (4 + classes) * anchors {
        return Vec::new();
    }
    let at = |row: usize, a: usize| pred[row * anchors + a];
    let mut candidates = Vec::new();
    for a in 0..anchors {
        let best = (0..classes)
            .filter(|c| allowed.is_none_or(|list| list.contains(c)))
            .map(|c| (c, at(4 + c, a)))
            .filter(|(_, s)| s.is_finite())
            .max_by(|x, y| x.1.total_cmp(&y.1));
        let Some((class, score)) = best else { continue };
        if score < thresholds.confidence {
            continue;
        }
        let (cx, cy, w, h) = (at(0, a), at(1, a), at(2, a), at(3, a));
        if !(cx.is_finite() && cy.is_finite() && w.is_finite() && h.is_finite())
            || w <= 0.0
            || h <= 0.0
        {
            continue;
        }
        candidates.push(RawDetection {
            bbox: BoxXyxy {
                x1: cx - w / 2.0,
                y1: cy - h / 2.0,
                x2: cx + w / 2.0,
                y2: cy + h / 2.0,
            },
            score,
            class,
        });
    }
    non_max_suppression(candidates, thresholds.iou)
}

/// Class-aware NMS: walks the boxes best first and keeps one unless a kept box of the same class
/// overlaps it by more than `iou`. Returns at most [`MAX_DETECTIONS`], best first; only the
/// best [`MAX_CANDIDATES`] inputs are considered.
pub fn non_max_suppression(mut boxes: Vec<RawDetection>, iou: f32) -> Vec<RawDetection> {
    boxes.sort_by(|a, b| b.score.total_cmp(&a.score));
    boxes.truncate(MAX_CANDIDATES);
    let mut kept: Vec<RawDetection> = Vec::new();
    for candidate in boxes {
        let suppressed = kept
            .iter()
            .any(|k| k.class == candidate.class && k.bbox.iou(&candidate.bbox) > iou);
        if !suppressed {
            kept.push(candidate);
            if kept.len() == MAX_DETECTIONS {
                break;
            }
        }
    }
    kept
}

/// Maps a box from network input coordinates to the original image, clamped to the image.
#[cfg(feature = "detector")]
pub fn to_image_box(bbox: &BoxXyxy, letterbox: &crate::preprocess::Letterbox) -> BoxXyxy {
    let (x1, y1) = letterbox.to_image(bbox.x1, bbox.y1);
    let (x2, y2) = letterbox.to_image(bbox.x2, bbox.y2);
    BoxXyxy { x1, y1, x2, y2 }
}
