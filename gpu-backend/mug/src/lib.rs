//! Mug Positioning: a YOLOv8 detector in candle, where each mug stands in the frame, placement
//! rules and their natural-language drafting, plus the synthetic scenes and training loop that
//! produce the shipped model.
//!
//! - [`model`]: the network (YOLOv8 n/s/m/l/x and the shipped pico variant) under the tensor
//!   names of YOLOv8 weights converted for candle.
//! - [`preprocess`] → [`Detector`] → [`postprocess`] → [`positioning`]: bytes to an [`Analysis`].
//! - [`rules`] evaluates placement rules against an analysis; [`language`] drafts a rule from a
//!   sentence.
//! - [`kernel`]: the `analysis` job kind the queue's workers run, with placement feedback.
//! - [`synthetic`], [`train`] and [`metrics`]: the scene generator, the training loop and mAP@0.5.
//! - [`Analysis`] and its parts: the result types, shared with the backend.
//!
//! Without the `detector` feature (the backend's build) only the result types, positioning, the
//! rules engine and the natural-language parser are compiled: no candle, no image decoding.
//! The shipped weights (`models/mug-detector.safetensors`) are compiled into the crate with
//! `include_bytes!`, so the binary works wherever it is copied; `--model` loads another file.

#[cfg(feature = "detector")]
mod detector;
#[cfg(feature = "detector")]
pub mod kernel;
pub mod language;
#[cfg(feature = "detector")]
pub mod metrics;
#[cfg(feature = "detector")]
pub mod model;
pub mod positioning;
pub mod postprocess;
#[cfg(feature = "detector")]
pub mod preprocess;
pub mod rules;
#[cfg(feature = "detector")]
pub mod synthetic;
#[cfg(feature = "detector")]
pub mod train;

#[cfg(feature = "detector")]
pub use detector::{AnalyzeOptions, Detector, SHIPPED_WEIGHTS, Upload, default_device};

use serde::{Deserialize, Serialize};
use shared::upload::UploadError;

use positioning::{Point, Positioning};

/// Class names that count as a mug: the shipped model's `mug`, and the COCO classes the seed
/// counted (`cup`, `wine glass`, `bottle`, `bowl`), plus `glass`.
pub const MUG_LIKE_CLASSES: [&str; 6] = ["mug", "cup", "glass", "wine glass", "bottle", "bowl"];

/// Longer side of the network input when the weights do not say.
pub const DEFAULT_INPUT_SIZE: u32 = 640;

/// The 80 COCO class names, in the order of YOLOv8's COCO checkpoints.
pub const COCO_CLASSES: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
    "mouse",
    "remote",
    "keyboard",
];

/// What went wrong in the mug pipeline.
#[derive(Debug, thiserror::Error)]
pub enum MugError {
    /// The upload fails the image policy (type, header, dimensions).
    #[error("image refused: {0}")]
    Upload(#[from] UploadError),
    /// The image passed the header check but does not decode within the limits.
    #[error("the image does not decode: {0}")]
    Decode(String),
    /// The weights are not a YOLOv8 checkpoint this code can run.
    #[error("unsupported model: {0}")]
    UnsupportedModel(String),
    /// A tensor operation failed.
    #[cfg(feature = "detector")]
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// Reading or writing a file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

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
    pub fn to_xyxy(&self) -> postprocess::BoxXyxy {
        postprocess::BoxXyxy {
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
