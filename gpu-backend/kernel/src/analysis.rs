//! The `analysis` job: an uploaded image, its options and the rules to evaluate on it.

use serde::{Deserialize, Serialize};
use shared::body::{AnalysisOptions, StoredRule};

/// The job kind the mug detector runs.
pub const ANALYSIS_KIND: &str = "analysis";

/// What an `analysis` job carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisJob {
    /// The image bytes, base64 (standard alphabet).
    pub image_base64: String,
    /// The type the upload declared for the image.
    #[serde(default)]
    pub declared_type: Option<String>,
    pub options: AnalysisOptions,
    /// The rules to evaluate, as they were when the job was queued.
    #[serde(default)]
    pub rules: Vec<StoredRule>,
}
