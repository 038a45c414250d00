//! What can go wrong in the mug pipeline, from the upload to the weights.

use shared::upload::UploadError;

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
