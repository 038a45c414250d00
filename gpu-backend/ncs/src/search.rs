//! How a step finds the nearest and the most similar centroid of a point: the
//! [`CentroidSearch`] trait, and [`ExactSearch`], which scores the point against every centroid
//! (exact mode; batched mode has its own).

use crate::lanes::{cosine, dist2_dot};
use crate::state::StreamState;

/// How a step finds the nearest and the most similar centroid of a point.
pub(crate) trait CentroidSearch {
    /// Smallest squared distance from `point` to a centroid; only called with clusters present.
    fn nearest_dist2(&mut self, state: &StreamState, point: &[f32], point_norm: f32) -> f32;
    /// Index and cosine similarity of the most similar centroid (the first one on ties); only
    /// called with clusters present, after [`CentroidSearch::nearest_dist2`] for the same point.
    fn most_similar(&mut self, state: &StreamState, point: &[f32], point_norm: f32)
    -> (usize, f32);

    /// A row that cluster `j`'s centroid should be compared with when it moves, if any.
    fn drift_reference(&self, _j: usize) -> Option<&[f32]> {
        None
    }

    /// Squared distance from cluster `j`'s moved centroid to its drift reference.
    fn record_drift(&mut self, _j: usize, _drift2: f32) {}

    /// An upper bound on the cosine between the centroids of the clusters with ids `a` and `b`,
    /// if one is known without reading the centroids; lets a merge pass skip hopeless pairs.
    fn merge_cosine_bound(&self, _a: u64, _b: u64) -> Option<f32> {
        None
    }
}

/// Scores a point against every centroid.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExactSearch {
    dots: Vec<f32>,
}

impl CentroidSearch for ExactSearch {
    fn nearest_dist2(&mut self, state: &StreamState, point: &[f32], _point_norm: f32) -> f32 {
        self.dots.clear();
        let mut best = f32::INFINITY;
        for centroid in state.centroids.chunks_exact(state.dim) {
            let (d2, dot) = dist2_dot(point, centroid);
            self.dots.push(dot);
            if d2 < best {
                best = d2;
            }
        }
        best
    }

    fn most_similar(
        &mut self,
        state: &StreamState,
        point: &[f32],
        point_norm: f32,
    ) -> (usize, f32) {
        if self.dots.len() != state.clusters.len() {
            self.nearest_dist2(state, point, point_norm);
        }
        let mut best = (0, f32::NEG_INFINITY);
        for (j, (dot, cluster)) in self.dots.iter().zip(&state.clusters).enumerate() {
            let sim = cosine(*dot, point_norm, cluster.norm);
            if sim > best.1 {
                best = (j, sim);
            }
        }
        best
    }
}
