//! The every-50-points maintenance of NCS.md, in its order: drop weak clusters, decay, turn
//! coherent outlier groups into clusters, merge similar clusters, refresh the global metrics.

use crate::lanes::{cosine, dist2_dot, norm};
use crate::search::CentroidSearch;
use crate::state::{StreamState, Workspace};

/// Outlier-buffer points closer than this (squared: 1.5²) to a group's seed join the group.
const GROUP_RADIUS_SQUARED: f32 = 2.25;

impl StreamState {
    /// The every-50-points maintenance, in the order of NCS.md.
    pub(crate) fn maintain<S: CentroidSearch>(&mut self, search: &S, work: &mut Workspace) {
        self.drop_weak_clusters(work);
        self.decay();
        self.cluster_outlier_buffer(work);
        self.merge_similar_clusters(search, work);
        self.update_global_metrics();
    }

    fn drop_weak_clusters(&mut self, work: &mut Workspace) {
        let dim = self.dim;
        let k = self.clusters.len();
        let mut kept = 0;
        for i in 0..k {
            let c = self.clusters[i];
            if c.confidence >= self.params.min_confidence && c.health >= 0.3 {
                if kept != i {
                    self.clusters[kept] = c;
                    self.centroids
                        .copy_within(i * dim..(i + 1) * dim, kept * dim);
                }
                kept += 1;
            }
        }
        if kept < k {
            self.clusters.truncate(kept);
            self.centroids.truncate(kept * dim);
            self.clusters_dropped += (k - kept) as u64;
            work.structure_version += 1;
        }
    }

    fn decay(&mut self) {
        let t = self.time_step;
        for c in &mut self.clusters {
            c.confidence *= 1.0 - self.params.decay_rate * (1.0 + c.age * 0.01);
            c.age += 1.0;
            c.health = c.health_at(t);
        }
    }

    /// Greedy grouping of the outlier buffer: each group of three or more becomes a cluster at
    /// its mean while there is room; the buffer is cleared either way.
    fn cluster_outlier_buffer(&mut self, work: &mut Workspace) {
        let n = self.outlier_buffer.len();
        if n < 3 {
            return;
        }
        work.used.clear();
        work.used.resize(n, false);
        for i in 0..n {
            if work.used[i] {
                continue;
            }
            work.used[i] = true;
            work.group.clear();
            work.group.push(i);
            let seed = self.outlier_buffer.get(i);
            for j in i + 1..n {
                if !work.used[j]
                    && dist2_dot(seed, self.outlier_buffer.get(j)).0 < GROUP_RADIUS_SQUARED
                {
                    work.used[j] = true;
                    work.group.push(j);
                }
            }
            if work.group.len() >= 3 && self.clusters.len() < self.params.max_clusters {
                work.mean.clear();
                work.mean.resize(self.dim, 0.0);
                for &g in &work.group {
                    for (m, v) in work.mean.iter_mut().zip(self.outlier_buffer.get(g)) {
                        *m += v;
                    }
                }
                let count = work.group.len() as f32;
                for m in &mut work.mean {
                    *m /= count;
                }
                let mean = std::mem::take(&mut work.mean);
                self.create_cluster(&mean, work);
                work.mean = mean;
            }
        }
        self.outlier_buffer.clear();
        work.temporal = None;
    }

    /// The merge score of clusters `i` and `j` with `geometric` (in [0, 1]) as the cosine term.
    /// Monotone in `geometric`, so a bound on the cosine bounds the score.
    fn merge_score_with(&self, i: usize, j: usize, geometric: f32) -> f32 {
        let (a, b) = (&self.clusters[i], &self.clusters[j]);
        let max_confidence = a.confidence.max(b.confidence);
        let confidence_gap = if max_confidence > 0.0 {
            ((a.confidence - b.confidence).abs() / max_confidence).min(1.0)
        } else {
            1.0
        };
        let health_gap = (a.health - b.health).abs().min(1.0);
        let age_gap = ((a.age - b.age).abs() / 100.0).min(1.0);
        0.4 * geometric
            + 0.25 * (1.0 - confidence_gap)
            + 0.2 * (1.0 - health_gap)
            + 0.15 * (1.0 - age_gap)
    }

    fn merge_score(&self, i: usize, j: usize) -> f32 {
        let dot = dist2_dot(self.centroid(i), self.centroid(j)).1;
        let geometric = cosine(dot, self.clusters[i].norm, self.clusters[j].norm).max(0.0);
        self.merge_score_with(i, j, geometric)
    }

    /// Whether clusters `i` and `j` can reach the merge threshold, judged without reading their
    /// centroids where possible: with a perfect cosine, then with the search's bound (unless
    /// `i` absorbed a cluster in this pass and so moved). Never false for a pair that merges.
    fn may_merge<S: CentroidSearch>(&self, i: usize, j: usize, i_moved: bool, search: &S) -> bool {
        let threshold = self.params.merge_threshold;
        if self.merge_score_with(i, j, 1.0) < threshold {
            return false;
        }
        if !i_moved
            && let Some(bound) = search.merge_cosine_bound(self.clusters[i].id, self.clusters[j].id)
        {
            return self.merge_score_with(i, j, bound.clamp(0.0, 1.0)) >= threshold;
        }
        true
    }

    /// Merges every pair whose score reaches the merge threshold. Pairs are visited in list
    /// order; a merge folds the later cluster into the earlier one (which keeps its id and goes
    /// on being compared) and removes the later one at once, so no position goes stale.
    fn merge_similar_clusters<S: CentroidSearch>(&mut self, search: &S, work: &mut Workspace) {
        let mut i = 0;
        while i < self.clusters.len() {
            let mut moved = false;
            let mut j = i + 1;
            while j < self.clusters.len() {
                if self.may_merge(i, j, moved, search)
                    && self.merge_score(i, j) >= self.params.merge_threshold
                    && self.merge(i, j)
                {
                    moved = true;
                    self.clusters_merged += 1;
                    work.structure_version += 1;
                } else {
                    j += 1;
                }
            }
            i += 1;
        }
    }

    /// Folds cluster `j` into cluster `i < j` and removes `j`; false when their confidences
    /// give no weights.
    fn merge(&mut self, i: usize, j: usize) -> bool {
        let dim = self.dim;
        let (a, b) = (self.clusters[i], self.clusters[j]);
        let total = a.confidence + b.confidence;
        if total <= 0.0 {
            return false;
        }
        let (wa, wb) = (a.confidence / total, b.confidence / total);
        let (head, tail) = self.centroids.split_at_mut(j * dim);
        let row = &mut head[i * dim..(i + 1) * dim];
        for (x, y) in row.iter_mut().zip(&tail[..dim]) {
            *x = wa * *x + wb * y;
        }
        let merged_norm = norm(row);
        let t = self.time_step;
        let merged = &mut self.clusters[i];
        merged.confidence = total * 0.8;
        merged.age = (a.age + b.age) / 2.0;
        merged.updates = a.updates + b.updates;
        merged.last_update = a.last_update.max(b.last_update);
        merged.norm = merged_norm;
        merged.health = merged.health_at(t);
        self.clusters.remove(j);
        self.centroids.drain(j * dim..(j + 1) * dim);
        true
    }

    fn update_global_metrics(&mut self) {
        let k = self.clusters.len();
        if k == 0 {
            return;
        }
        if self.similarity_history.len() > 10 {
            let (mean, std) = self.similarity_history.mean_std();
            self.quality = (mean / (1.0 + std)).min(1.0);
        }
        let count_stability = (1.0 / (1.0 + (k as f32 - 4.0).abs() * 0.1)).min(1.0);
        let quality_stability = if self.quality_history.len() > 10 {
            1.0 / (1.0 + self.quality_history.mean_std().1)
        } else {
            1.0
        };
        self.stability = count_stability * quality_stability;
        self.adaptation_rate = 1.0 + self.stability * 0.4;
        self.quality_history.push(self.quality);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::AlgorithmParams;
    use crate::search::ExactSearch;

    fn state_with_clusters(centroids: &[[f32; 2]]) -> (StreamState, Workspace) {
        let mut state = StreamState::new(AlgorithmParams::default());
        let mut work = Workspace::default();
        state.fix_dim(2);
        for c in centroids {
            state.create_cluster(c, &mut work);
        }
        (state, work)
    }

    #[test]
    fn merging_three_copies_keeps_the_fourth_cluster() {
        // The reference records pairs (0,1), (0,2), (1,2) and deletes position 2 twice, losing
        // the unrelated fourth cluster.
        let (mut state, mut work) =
            state_with_clusters(&[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]);
        state.merge_similar_clusters(&ExactSearch::default(), &mut work);
        let ids: Vec<u64> = state.clusters.iter().map(|c| c.id).collect();
        assert_eq!(ids, [0, 3]);
        assert_eq!(state.clusters[0].updates, 3);
        assert!((state.clusters[0].confidence - 2.08).abs() < 1e-5);
        assert_eq!(state.centroid(1), &[0.0, 1.0]);
        assert_eq!(state.clusters_merged, 2);
        let new_id = state.create_cluster(&[5.0, 5.0], &mut work);
        assert_eq!(new_id, 4);
    }

    #[test]
    fn dropped_clusters_never_lend_their_ids() {
        let (mut state, mut work) = state_with_clusters(&[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]);
        state.clusters[1].confidence = 0.1;
        state.time_step = 50;
        state.maintain(&ExactSearch::default(), &mut work);
        let ids: Vec<u64> = state.clusters.iter().map(|c| c.id).collect();
        assert_eq!(ids, [0, 2]);
        assert_eq!(state.centroid(1), &[-1.0, 0.0]);
        assert_eq!(state.clusters_dropped, 1);
        assert_eq!(state.create_cluster(&[0.0, 1.0], &mut work), 3);
    }

    #[test]
    fn coherent_outliers_become_a_cluster_at_their_mean() {
        let (mut state, mut work) = state_with_clusters(&[[10.0, 0.0]]);
        for p in [[0.0, 5.0], [0.5, 5.0], [0.0, 5.5], [-20.0, -20.0]] {
            state.outlier_buffer.push(&p);
        }
        state.cluster_outlier_buffer(&mut work);
        assert_eq!(state.clusters.len(), 2);
        let c = state.centroid(1);
        assert!((c[0] - 0.5 / 3.0).abs() < 1e-6 && (c[1] - 15.5 / 3.0).abs() < 1e-6);
        assert_eq!(state.outlier_buffer.len(), 0);
    }
}
