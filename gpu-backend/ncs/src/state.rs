//! Everything a stream keeps between points ([`StreamState`], what it serializes), the scratch
//! space its steps reuse ([`Workspace`]), and the checks on points and on restored state.

use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::lanes::norm;
use crate::params::{AlgorithmParams, MAX_ABS_VALUE};
use crate::point::NcsError;
use crate::ring::{PointRing, ScalarRing};

/// Capacity of the outlier buffer.
const OUTLIER_BUFFER: usize = 25;
/// Capacity of the quality history.
const QUALITY_WINDOW: usize = 50;

/// Everything that persists between points: what a stream serializes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StreamState {
    pub params: AlgorithmParams,
    /// Dimension of every point; 0 until the first point.
    pub dim: usize,
    pub time_step: u64,
    pub outliers: u64,
    pub next_id: u64,
    pub clusters_created: u64,
    pub clusters_merged: u64,
    pub clusters_dropped: u64,
    pub clusters: Vec<Cluster>,
    /// `clusters.len()` rows of `dim` values.
    pub centroids: Vec<f32>,
    pub distance_history: ScalarRing,
    pub similarity_history: ScalarRing,
    pub quality_history: ScalarRing,
    pub outlier_buffer: PointRing,
    pub threshold: f32,
    /// `time_step / 10` when `threshold` was computed.
    pub threshold_window: Option<u64>,
    pub quality: f32,
    pub stability: f32,
    pub adaptation_rate: f32,
}

/// Scratch space and change tracking; never serialized, rebuilt on demand after a restore.
#[derive(Debug, Clone, Default)]
pub(crate) struct Workspace {
    /// The similarity history in increasing order, kept in step with it once built.
    pub sorted_similarities: Vec<f32>,
    /// Whether `sorted_similarities` is built (false after a restore).
    pub sorted_valid: bool,
    /// A mean point: of the last outliers (temporal score) or of an outlier group.
    pub mean: Vec<f32>,
    /// Distances of the last outliers to their mean.
    pub distances: Vec<f32>,
    /// Outlier-buffer points already put in a group.
    pub used: Vec<bool>,
    /// Positions of the outlier group being formed.
    pub group: Vec<usize>,
    /// Temporal outlier score of the current outlier buffer, while it is unchanged.
    pub temporal: Option<f32>,
    /// Bumped whenever a cluster is created, dropped or merged.
    pub structure_version: u64,
}

impl StreamState {
    pub(crate) fn new(params: AlgorithmParams) -> Self {
        Self {
            dim: 0,
            time_step: 0,
            outliers: 0,
            next_id: 0,
            clusters_created: 0,
            clusters_merged: 0,
            clusters_dropped: 0,
            clusters: Vec::with_capacity(params.max_clusters),
            centroids: Vec::new(),
            distance_history: ScalarRing::new(params.stability_window),
            similarity_history: ScalarRing::new(params.stability_window),
            quality_history: ScalarRing::new(QUALITY_WINDOW),
            outlier_buffer: PointRing::new(OUTLIER_BUFFER),
            threshold: params.base_threshold,
            threshold_window: None,
            quality: 1.0,
            stability: 1.0,
            adaptation_rate: 1.0,
            params,
        }
    }

    /// Checks a point against the stream's limits and, once fixed, its dimension.
    pub fn validate(&self, point: &[f32]) -> Result<(), NcsError> {
        self.validate_against(point, self.dim)
    }

    /// Like [`StreamState::validate`] with `dim` (0: any) as the expected dimension.
    pub fn validate_against(&self, point: &[f32], dim: usize) -> Result<(), NcsError> {
        if point.is_empty() {
            return Err(NcsError::EmptyPoint);
        }
        if point.len() > self.params.max_point_dimensions {
            return Err(NcsError::TooManyDimensions {
                max: self.params.max_point_dimensions,
                got: point.len(),
            });
        }
        if dim != 0 && point.len() != dim {
            return Err(NcsError::DimensionMismatch {
                expected: dim,
                got: point.len(),
            });
        }
        // A branch-free sweep (vectorizes) first; the offending index only on failure.
        let bad = |v: &f32| v.is_nan() || v.abs() > MAX_ABS_VALUE;
        if point.iter().fold(false, |any, v| any | bad(v))
            && let Some(index) = point.iter().position(bad)
        {
            return Err(if point[index].is_finite() {
                NcsError::OutOfRange { index }
            } else {
                NcsError::NonFinite { index }
            });
        }
        Ok(())
    }

    /// Fixes the dimension with the first valid point.
    pub fn fix_dim(&mut self, dim: usize) {
        if self.dim == 0 {
            self.dim = dim;
            self.centroids = Vec::with_capacity(self.params.max_clusters * dim);
            self.outlier_buffer.set_dim(dim);
        }
    }

    /// The centroid of the cluster at position `j`.
    pub fn centroid(&self, j: usize) -> &[f32] {
        &self.centroids[j * self.dim..(j + 1) * self.dim]
    }

    /// Founds a cluster at `centroid` under the next id, which it returns.
    pub(crate) fn create_cluster(&mut self, centroid: &[f32], work: &mut Workspace) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.centroids.extend_from_slice(centroid);
        self.clusters
            .push(Cluster::fresh(id, self.time_step, norm(centroid)));
        self.clusters_created += 1;
        work.structure_version += 1;
        id
    }

    /// Checks the invariants a deserialized state must hold before a stream may use it.
    pub(crate) fn check(&self) -> Result<(), String> {
        self.params.validate().map_err(|e| e.to_string())?;
        let k = self.clusters.len();
        if k > self.params.max_clusters {
            return Err(format!("{k} clusters exceed max_clusters"));
        }
        if self.dim > self.params.max_point_dimensions || (self.dim == 0 && k > 0) {
            return Err(format!("dimension {} does not fit the clusters", self.dim));
        }
        if self.centroids.len() != k * self.dim {
            return Err("centroids do not match clusters × dimension".into());
        }
        let ids_ok = self.clusters.windows(2).all(|w| w[0].id < w[1].id)
            && self.clusters.last().is_none_or(|c| c.id < self.next_id);
        if !ids_ok {
            return Err("cluster ids are not increasing below next_id".into());
        }
        if !self.outlier_buffer.is_consistent(self.dim, OUTLIER_BUFFER)
            || !self
                .distance_history
                .is_consistent(self.params.stability_window)
            || !self
                .similarity_history
                .is_consistent(self.params.stability_window)
            || !self.quality_history.is_consistent(QUALITY_WINDOW)
        {
            return Err("a history ring is inconsistent".into());
        }
        Ok(())
    }
}
