//! The result of analysing one image: every mug found ([`Detection`] with its [`BoundingBox`])
//! and where each stands ([`Positioning`]); the type the backend stores and the rules read.

use serde::{Deserialize, Serialize};

use crate::positioning::{Point, Positioning};
use crate::postprocess::BoxXyxy;

/// A detected mug in the seed's response shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The box and its confidence.
    pub bbox: BoundingBox,
    /// The class name (`mug` for the shipped model; `cup`, `bottle`, … for COCO weights).
    pub class_name: String,
}

/// A box in image pixels with its detection confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox {
    /// Upper-left corner.
    pub top_left: Point,
    /// Lower-right corner.
    pub bottom_right: Point,
    /// Detection confidence, 0 to 1.
    pub confidence: f32,
}

impl BoundingBox {
    /// The box as corner coordinates.
    pub fn to_xyxy(&self) -> BoxXyxy {
        BoxXyxy {
            x1: self.top_left.x,
            y1: self.top_left.y,
            x2: self.bottom_right.x,
            y2: self.bottom_right.y,
        }
    }
}

/// The result of analysing one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Every mug found, best first.
    pub detections: Vec<Detection>,
    /// One entry per detection, same order.
    pub positioning: Vec<Positioning>,
    /// How many mugs were found.
    #[serde(default)]
    pub mug_count: usize,
    /// Wall time of decode, detection and positioning, in milliseconds.
    #[serde(default)]
    pub processing_time_ms: f64,
    /// Which weights produced the detections.
    #[serde(default)]
    pub model_version: String,
}
