//! One point of a stream (steps 1 to 6 of NCS.md): its outlier score, the most similar cluster,
//! the adaptive threshold, and the cluster it joins or founds; every 50 points, the maintenance.

use crate::lanes::{dist2_dot, mean_std, move_centroid, norm};
use crate::point::PointResult;
use crate::search::CentroidSearch;
use crate::state::{StreamState, Workspace};

/// Points between two maintenances.
const MAINTENANCE_PERIOD: u64 = 50;
/// Time steps one adaptive threshold stays in force.
const THRESHOLD_PERIOD: u64 = 10;

impl StreamState {
    /// Processes one validated point of the stream's dimension.
    pub fn step<S: CentroidSearch>(
        &mut self,
        point: &[f32],
        search: &mut S,
        work: &mut Workspace,
    ) -> PointResult {
        self.time_step += 1;
        let has_clusters = !self.clusters.is_empty();
        let point_norm = norm(point);
        let score = if has_clusters {
            let d = search.nearest_dist2(self, point, point_norm).sqrt();
            self.outlier_score(d, work)
        } else {
            0.0
        };
        let result = if score > self.params.outlier_threshold {
            self.push_outlier(point, work);
            PointResult::outlier(score)
        } else {
            let best = if has_clusters {
                let (j, sim) = search.most_similar(self, point, point_norm);
                self.record_similarity(sim, work);
                Some((j, sim))
            } else {
                None
            };
            let threshold = self.dynamic_threshold(work);
            match best {
                Some((j, sim)) if sim >= threshold => {
                    self.update_cluster(j, point, search);
                    PointResult::member(self.clusters[j].id, score)
                }
                _ if self.clusters.len() < self.params.max_clusters => {
                    PointResult::member(self.create_cluster(point, work), 0.0)
                }
                _ => {
                    self.push_outlier(point, work);
                    PointResult::outlier(score)
                }
            }
        };
        if self.time_step.is_multiple_of(MAINTENANCE_PERIOD) {
            self.maintain(search, work);
        }
        result
    }

    fn push_outlier(&mut self, point: &[f32], work: &mut Workspace) {
        self.outlier_buffer.push(point);
        work.temporal = None;
        self.outliers += 1;
    }

    /// Combined geometric, statistical and temporal outlier score of a point at distance `d`
    /// from its nearest centroid; records `d` in the distance history.
    fn outlier_score(&mut self, d: f32, work: &mut Workspace) -> f32 {
        let threshold = if self.distance_history.len() > 10 {
            let (mean, std) = self.distance_history.mean_std();
            mean + 2.0 * std
        } else {
            2.0
        };
        let geometric = if d > threshold {
            (d / threshold - 1.0).min(1.0)
        } else {
            0.0
        };
        self.distance_history.push(d);

        let mut statistical = 0.0;
        if self.distance_history.len() >= 10 {
            let (mean, std) = self.distance_history.mean_std();
            if std > 1e-6 {
                let z = (d - mean).abs() / std;
                if z > 2.5 {
                    statistical = ((z - 2.5) / 2.5).min(1.0);
                }
            }
        }

        let temporal = self.temporal_score(work);
        (0.4 * geometric + 0.3 * statistical + 0.3 * temporal).clamp(0.0, 1.0)
    }

    /// Incoherence of the last five buffered outliers; cached until the buffer changes.
    fn temporal_score(&self, work: &mut Workspace) -> f32 {
        if let Some(score) = work.temporal {
            return score;
        }
        let buffer = &self.outlier_buffer;
        let n = buffer.len();
        let mut score = 0.0;
        if n >= 3 {
            let first = n - n.min(5);
            let count = (n - first) as f32;
            work.mean.clear();
            work.mean.resize(self.dim, 0.0);
            for i in first..n {
                for (m, v) in work.mean.iter_mut().zip(buffer.get(i)) {
                    *m += v;
                }
            }
            for m in &mut work.mean {
                *m /= count;
            }
            work.distances.clear();
            for i in first..n {
                work.distances
                    .push(dist2_dot(buffer.get(i), &work.mean).0.sqrt());
            }
            let (_, std) = mean_std(&work.distances);
            let coherence = 1.0 / (1.0 + std);
            if coherence < 0.3 {
                score = ((0.3 - coherence) / 0.3).min(1.0);
            }
        }
        work.temporal = Some(score);
        score
    }

    /// Appends to the similarity history and keeps its sorted copy (if built) in step.
    fn record_similarity(&mut self, sim: f32, work: &mut Workspace) {
        let dropped = self.similarity_history.push(sim);
        if work.sorted_valid {
            let sorted = &mut work.sorted_similarities;
            if let Some(old) = dropped {
                let at = sorted.partition_point(|v| v.total_cmp(&old).is_lt());
                sorted.remove(at);
            }
            let at = sorted.partition_point(|v| v.total_cmp(&sim).is_le());
            sorted.insert(at, sim);
        }
    }

    /// The similarity threshold in force, recomputed once per window of 10 time steps.
    fn dynamic_threshold(&mut self, work: &mut Workspace) -> f32 {
        let window = self.time_step / THRESHOLD_PERIOD;
        if self.threshold_window == Some(window) {
            return self.threshold;
        }
        self.threshold = if self.similarity_history.len() < 10 {
            self.params.base_threshold
        } else {
            if !work.sorted_valid {
                let sorted = &mut work.sorted_similarities;
                sorted.clear();
                sorted.extend_from_slice(self.similarity_history.values());
                sorted.sort_unstable_by(f32::total_cmp);
                work.sorted_valid = true;
            }
            let p75 = percentile(&work.sorted_similarities, 0.75);
            let (_, std) = self.similarity_history.mean_std();
            (p75 * (1.0 - std).max(0.5) + self.quality * 0.1 + self.stability * 0.05)
                .clamp(0.3, 0.95)
        };
        self.threshold_window = Some(window);
        self.threshold
    }

    fn update_cluster<S: CentroidSearch>(&mut self, j: usize, point: &[f32], search: &mut S) {
        let t = self.time_step;
        let dim = self.dim;
        let cluster = &mut self.clusters[j];
        let lr = self.params.learning_rate
            * (1.0 / (1.0 + cluster.age * 0.01))
            * (1.0 + cluster.confidence * 0.2).min(1.2);
        let row = &mut self.centroids[j * dim..(j + 1) * dim];
        let (norm2, drift2) = move_centroid(row, point, lr, search.drift_reference(j));
        if let Some(drift2) = drift2 {
            search.record_drift(j, drift2);
        }
        cluster.norm = norm2.sqrt();
        cluster.confidence += 0.3;
        cluster.age += 0.1;
        cluster.updates += 1;
        cluster.last_update = t;
        cluster.health = cluster.health_at(t);
    }
}

/// The `q`-quantile of sorted, non-empty `values`, interpolated linearly (numpy's default).
fn percentile(sorted: &[f32], q: f32) -> f32 {
    let last = sorted.len() - 1;
    let pos = q * last as f32;
    let lo = (pos.floor() as usize).min(last);
    let hi = (lo + 1).min(last);
    let frac = pos - lo as f32;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy() {
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.75), 3.25);
        assert_eq!(percentile(&[7.0], 0.75), 7.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), 3.0);
    }
}
