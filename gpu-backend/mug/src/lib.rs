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
//! - [`analysis`]: [`Analysis`] and its parts, the result types shared with the backend;
//!   [`classes`]: which class names count as a mug; [`error`]: [`MugError`].
//!
//! Without the `detector` feature (the backend's build) only the result types, positioning, the
//! rules engine and the natural-language parser are compiled: no candle, no image decoding.
//! The shipped weights (`models/mug-detector.safetensors`) are compiled into the crate with
//! `include_bytes!`, so the binary works wherever it is copied; `--model` loads another file.

pub mod analysis;
pub mod classes;
#[cfg(feature = "detector")]
mod detector;
pub mod error;
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

pub use analysis::{Analysis, BoundingBox, Detection};
pub use classes::{COCO_CLASSES, MUG_LIKE_CLASSES};
#[cfg(feature = "detector")]
pub use detector::{
    AnalyzeOptions, DEFAULT_INPUT_SIZE, Detector, SHIPPED_WEIGHTS, Upload, default_device,
};
pub use error::MugError;
