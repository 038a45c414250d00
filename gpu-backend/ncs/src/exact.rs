//! Exact mode: the NeuroCluster Streamer of NCS.md point by point, in f32, with stable cluster
//! ids and a state that serializes and restores bit for bit.
//!
//! Where NCS.md is silent this follows the reference (version 8): similarities are clipped to
//! [-1, 1] and are 0 when a norm is below 1e-10; a point refused because `max_clusters` are full
//! also joins the outlier buffer; outlier groups only become clusters while there is room; the
//! merge score clamps each compatibility term to [0, 1]; merged clusters keep the later
//! `last_update`; global metrics start at 1 and are only refreshed while there are clusters,
//! quality only once the similarity history holds more than 10 values; the quality history keeps
//! the last 50 qualities; health is stored and refreshed on update, decay and merge (drops use the
//! stored value).
//!
//! Fixed or chosen differently from the reference: cluster ids are stable and never reused; a
//! merge pass folds the later cluster of a pair into the earlier one and removes it at once (the
//! reference deletes by stale positions and can delete an unrelated cluster); the threshold is
//! recomputed once per window of 10 time steps, without the reference's extra recomputation
//! after its every-200-steps cache flush; a centroid update computes `(1 − lr)·c + lr·(0.7·p +
//! 0.3·c)` as `(1 − 0.7·lr)·c + 0.7·lr·p` (equal up to rounding); outlier-buffer grouping
//! compares squared distances with 1.5²; sums run in eight interleaved lanes (a fixed order, so
//! results do not depend on the machine); values beyond ±1e10 are refused like non-finite ones.
//!
//! This module holds the stream ([`NcsStream`]); the algorithm lives beside it: `state`
//! (what persists), `step` (one point), `maintenance` (every 50 points), `search` (the nearest and
//! most similar centroid), `cluster` (health) and `lanes` (the arithmetic).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::params::{AlgorithmParams, ParamsError};
use crate::point::{NcsError, PointResult};
use crate::search::ExactSearch;
use crate::state::{StreamState, Workspace};

pub use crate::report::{ClusterSummary, GlobalMetrics, HealthStatus, StreamStats};

/// One NCS stream in exact mode. Serializes (serde) to its whole state and restores from it,
/// after checking the state's invariants.
#[derive(Debug, Clone)]
pub struct NcsStream {
    pub(crate) state: StreamState,
    pub(crate) work: Workspace,
    search: ExactSearch,
}

impl NcsStream {
    /// An empty stream with validated `params`.
    pub fn new(params: AlgorithmParams) -> Result<Self, ParamsError> {
        params.validate()?;
        Ok(Self::from_state(StreamState::new(params)))
    }

    fn from_state(state: StreamState) -> Self {
        Self {
            state,
            work: Workspace::default(),
            search: ExactSearch::default(),
        }
    }

    /// Assigns one point to a cluster or flags it as an outlier. A refused point leaves the
    /// stream unchanged.
    pub fn process(&mut self, point: &[f32]) -> Result<PointResult, NcsError> {
        self.state.validate(point)?;
        self.state.fix_dim(point.len());
        Ok(self.state.step(point, &mut self.search, &mut self.work))
    }

    /// The parameters the stream runs with.
    pub fn params(&self) -> &AlgorithmParams {
        &self.state.params
    }

    /// Every cluster with its centroid, confidence, age, updates and health.
    pub fn clusters_summary(&self) -> Vec<ClusterSummary> {
        let s = &self.state;
        s.clusters
            .iter()
            .enumerate()
            .map(|(j, c)| ClusterSummary {
                id: c.id,
                centroid: s.centroid(j).to_vec(),
                confidence: c.confidence,
                age: c.age,
                update_count: c.updates,
                health_score: c.health,
                health_status: HealthStatus::of(c.health),
                last_updated: c.last_update,
            })
            .collect()
    }

    /// Ids of the clusters held now, oldest first.
    pub fn cluster_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.state.clusters.iter().map(|c| c.id)
    }

    /// The stream's counters.
    pub fn stats(&self) -> StreamStats {
        let s = &self.state;
        StreamStats {
            time_step: s.time_step,
            points_processed: s.time_step,
            outliers: s.outliers,
            clusters: s.clusters.len(),
            clusters_created: s.clusters_created,
            clusters_merged: s.clusters_merged,
            clusters_dropped: s.clusters_dropped,
            dimension: (s.dim != 0).then_some(s.dim),
        }
    }

    /// Quality, stability, adaptation rate and the threshold in force.
    pub fn metrics(&self) -> GlobalMetrics {
        let s = &self.state;
        GlobalMetrics {
            clustering_quality: s.quality,
            global_stability: s.stability,
            adaptation_rate: s.adaptation_rate,
            current_threshold: s.threshold,
        }
    }
}

impl Serialize for NcsStream {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.state.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for NcsStream {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let state = StreamState::deserialize(deserializer)?;
        state.check().map_err(serde::de::Error::custom)?;
        Ok(Self::from_state(state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adjusted_rand_index;
    use crate::synthetic::{MixtureSpec, SplitMix64, gaussian_mixture};
    use std::collections::HashSet;

    fn run(stream: &mut NcsStream, points: impl Iterator<Item = impl AsRef<[f32]>>) -> Vec<i64> {
        points
            .map(|p| stream.process(p.as_ref()).unwrap().label())
            .collect()
    }

    fn ari_against_truth(clusters: usize, dim: usize, points: usize, seed: u64) -> f64 {
        let m = gaussian_mixture(&MixtureSpec::new(clusters, dim, points, seed));
        let mut s = NcsStream::new(AlgorithmParams::default()).unwrap();
        let labels = run(&mut s, m.iter());
        adjusted_rand_index(&labels, &m.labels).unwrap()
    }

    // Measured ARI against the true labels, seeds 1-3: 4x16 0.86-0.96 (extra clusters split
    // some true ones), 6x32 0.996, 8x128 0.996-0.997.
    #[test]
    fn recovers_4_clusters_in_16_dimensions() {
        for seed in 1..=3 {
            let ari = ari_against_truth(4, 16, 4000, seed);
            assert!(ari >= 0.8, "seed {seed}: ARI {ari}");
        }
    }

    #[test]
    fn recovers_6_clusters_in_32_dimensions() {
        for seed in 1..=3 {
            let ari = ari_against_truth(6, 32, 4000, seed);
            assert!(ari >= 0.95, "seed {seed}: ARI {ari}");
        }
    }

    #[test]
    fn recovers_8_clusters_in_128_dimensions() {
        for seed in 1..=3 {
            let ari = ari_against_truth(8, 128, 4000, seed);
            assert!(ari >= 0.95, "seed {seed}: ARI {ari}");
        }
    }

    // Measured: every injected point flagged in 5 of 6 runs (93% in the other); 1.5-3.5% of
    // inliers flagged, mostly while a cluster is still unknown or the outlier buffer is incoherent.
    #[test]
    fn flags_injected_far_points() {
        for (clusters, dim) in [(4, 16), (8, 128)] {
            for seed in 1..=3 {
                let mut spec = MixtureSpec::new(clusters, dim, 4000, seed);
                spec.outlier_fraction = 0.02;
                let m = gaussian_mixture(&spec);
                let mut s = NcsStream::new(AlgorithmParams::default()).unwrap();
                let labels = run(&mut s, m.iter());
                let (mut hit, mut injected, mut false_alarms) = (0, 0, 0);
                for (truth, got) in m.labels.iter().zip(&labels) {
                    match (*truth == -1, *got == -1) {
                        (true, true) => hit += 1,
                        (true, false) => {}
                        (false, flagged) => false_alarms += usize::from(flagged),
                    }
                    injected += usize::from(*truth == -1);
                }
                let recall = hit as f64 / injected as f64;
                let false_rate = false_alarms as f64 / (m.len() - injected) as f64;
                assert!(
                    recall >= 0.85,
                    "{clusters}x{dim} seed {seed}: recall {recall}"
                );
                assert!(
                    false_rate <= 0.08,
                    "{clusters}x{dim} seed {seed}: false alarms {false_rate}"
                );
            }
        }
    }

    #[test]
    fn a_stream_split_across_two_jobs_equals_one_job() {
        let mut spec = MixtureSpec::new(5, 24, 3000, 11);
        spec.outlier_fraction = 0.02;
        let m = gaussian_mixture(&spec);
        let points: Vec<&[f32]> = m.iter().collect();

        let mut whole = NcsStream::new(AlgorithmParams::default()).unwrap();
        let expected: Vec<PointResult> = points.iter().map(|p| whole.process(p).unwrap()).collect();

        for cut in [1, 49, 50, 1234, 2999] {
            let mut first = NcsStream::new(AlgorithmParams::default()).unwrap();
            let mut got: Vec<PointResult> = points[..cut]
                .iter()
                .map(|p| first.process(p).unwrap())
                .collect();
            let saved = serde_json::to_string(&first).unwrap();
            drop(first);
            let mut second: NcsStream = serde_json::from_str(&saved).unwrap();
            got.extend(points[cut..].iter().map(|p| second.process(p).unwrap()));
            for (i, (a, b)) in expected.iter().zip(&got).enumerate() {
                assert_eq!(a.cluster_id, b.cluster_id, "cut {cut}, point {i}");
                assert_eq!(a.is_outlier, b.is_outlier, "cut {cut}, point {i}");
                assert_eq!(
                    a.outlier_score.to_bits(),
                    b.outlier_score.to_bits(),
                    "cut {cut}, point {i}"
                );
            }
            assert_eq!(
                serde_json::to_string(&whole).unwrap(),
                serde_json::to_string(&second).unwrap(),
                "cut {cut}: final states differ"
            );
        }
    }

    #[test]
    fn f32_values_survive_json_bit_for_bit() {
        let mut rng = SplitMix64::new(3);
        let values: Vec<f32> = (0..200_000)
            .map(|_| f32::from_bits(rng.next_u64() as u32))
            .filter(|v| v.is_finite())
            .collect();
        let back: Vec<f32> =
            serde_json::from_str(&serde_json::to_string(&values).unwrap()).unwrap();
        for (a, b) in values.iter().zip(&back) {
            assert_eq!(a.to_bits(), b.to_bits(), "{a:e} came back as {b:e}");
        }
    }

    #[test]
    fn refused_points_leave_the_stream_unchanged() {
        let mut s = NcsStream::new(AlgorithmParams::default()).unwrap();
        assert_eq!(s.process(&[]), Err(NcsError::EmptyPoint));
        assert_eq!(s.stats().dimension, None);
        s.process(&[1.0, 2.0, 3.0]).unwrap();
        let before = serde_json::to_string(&s).unwrap();
        assert_eq!(
            s.process(&[1.0, 2.0]),
            Err(NcsError::DimensionMismatch {
                expected: 3,
                got: 2
            })
        );
        assert_eq!(
            s.process(&[1.0, f32::NAN, 3.0]),
            Err(NcsError::NonFinite { index: 1 })
        );
        assert_eq!(
            s.process(&[f32::NEG_INFINITY, 0.0, 3.0]),
            Err(NcsError::NonFinite { index: 0 })
        );
        assert_eq!(
            s.process(&[1.0, 2.0, 2e10]),
            Err(NcsError::OutOfRange { index: 2 })
        );
        assert_eq!(
            s.process(&vec![1.0; 1001]),
            Err(NcsError::TooManyDimensions {
                max: 1000,
                got: 1001
            })
        );
        assert_eq!(serde_json::to_string(&s).unwrap(), before);
        assert_eq!(s.stats().time_step, 1);
    }

    #[test]
    fn invalid_params_are_refused() {
        let params = AlgorithmParams {
            learning_rate: 0.5,
            ..AlgorithmParams::default()
        };
        assert_eq!(NcsStream::new(params).unwrap_err().name, "learning_rate");
    }

    #[test]
    fn corrupt_saved_state_is_refused_not_trusted() {
        let mut s = NcsStream::new(AlgorithmParams::default()).unwrap();
        for p in gaussian_mixture(&MixtureSpec::new(3, 4, 200, 1)).iter() {
            s.process(p).unwrap();
        }
        let mut json: serde_json::Value = serde_json::to_value(&s).unwrap();
        json["centroids"].as_array_mut().unwrap().pop();
        assert!(serde_json::from_value::<NcsStream>(json).is_err());

        let mut json: serde_json::Value = serde_json::to_value(&s).unwrap();
        json["next_id"] = 0.into();
        assert!(serde_json::from_value::<NcsStream>(json).is_err());

        let mut json: serde_json::Value = serde_json::to_value(&s).unwrap();
        json["params"]["max_clusters"] = 2.into();
        assert!(serde_json::from_value::<NcsStream>(json).is_err());
    }

    #[test]
    fn ids_stay_stable_and_are_never_reused() {
        // Seed 3 of the 4x16 mixture merges a dozen clusters along the way.
        let m = gaussian_mixture(&MixtureSpec::new(4, 16, 4000, 3));
        let mut s = NcsStream::new(AlgorithmParams::default()).unwrap();
        let mut retired = HashSet::new();
        let mut alive: Vec<u64> = Vec::new();
        let mut highest = None;
        for p in m.iter() {
            let r = s.process(p).unwrap();
            let now: Vec<u64> = s.cluster_ids().collect();
            assert!(
                now.windows(2).all(|w| w[0] < w[1]),
                "ids out of order: {now:?}"
            );
            for id in &alive {
                if !now.contains(id) {
                    retired.insert(*id);
                }
            }
            for id in &now {
                assert!(!retired.contains(id), "id {id} came back");
                if !alive.contains(id) {
                    assert!(highest.is_none_or(|h| *id > h), "id {id} is not new");
                    highest = Some(*id);
                }
            }
            if let Some(id) = r.cluster_id {
                assert!(!retired.contains(&id) || !now.contains(&id));
            }
            alive = now;
        }
        assert!(s.stats().clusters_merged > 0);
        assert!(!retired.is_empty());
    }

    #[test]
    fn sorted_similarities_track_the_history() {
        let m = gaussian_mixture(&MixtureSpec::new(4, 8, 1500, 5));
        let mut s = NcsStream::new(AlgorithmParams::default()).unwrap();
        run(&mut s, m.iter());
        assert!(s.work.sorted_valid);
        let mut expected = s.state.similarity_history.values().to_vec();
        expected.sort_unstable_by(f32::total_cmp);
        assert_eq!(s.work.sorted_similarities, expected);
    }

    #[test]
    fn summary_and_metrics_describe_the_stream() {
        let m = gaussian_mixture(&MixtureSpec::new(4, 16, 1000, 2));
        let mut s = NcsStream::new(AlgorithmParams::default()).unwrap();
        run(&mut s, m.iter());
        let summary = s.clusters_summary();
        assert_eq!(summary.len(), s.stats().clusters);
        for c in &summary {
            assert_eq!(c.centroid.len(), 16);
            assert_eq!(c.health_status, HealthStatus::of(c.health_score));
            assert!(c.last_updated <= 1000 && c.update_count >= 1);
        }
        let metrics = s.metrics();
        assert!((0.3..=0.95).contains(&metrics.current_threshold));
        assert!((1.0..=1.4).contains(&metrics.adaptation_rate));
        assert_eq!(s.stats().points_processed, 1000);
    }
}
