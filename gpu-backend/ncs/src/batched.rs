//! Batched mode: a stream driven a chunk of points at a time, with every point-to-centroid dot
//! product of the chunk computed by one candle matrix product on a [`Device`].
//!
//! For a chunk of n points and the k centroids held when it starts, one product `[P; C]·Cᵀ`
//! gives every stale cosine similarity (`dot / (|p|·|c|)`) and distance
//! (`|p|² + |c|² − 2·dot`) of the chunk (n×k), plus the centroids' Gram matrix (k×k) for the next
//! merge pass. The points are then replayed in order through exact mode's state updates, and
//! only what could decide something is recomputed on the CPU, with exact mode's own kernel:
//!
//! - an updated centroid drifts from its snapshot by a distance δ that is tracked exactly (fused
//!   into the update), so its stale distance is off by at most δ and its stale cosine by at most
//!   2δ/|c₀|, plus a rounding allowance of 4·(d + 4)·ε relative;
//! - from these intervals only the centroids that might be the nearest, or the most similar,
//!   are recomputed exactly: one per point in a stream of separated clusters;
//! - a centroid created or merged since the product has no usable column and is always computed
//!   exactly; a dropped one is simply gone; a merge pass skips the pairs whose Gram-bounded score
//!   cannot reach the merge threshold.
//!
//! **Distance from exact mode.** While the rounding allowance holds (it is a worst-case bound on
//! f32 sums of d terms, so it does on the CPU and on CUDA without TF32), every decision and every
//! recorded value is the one exact mode makes: batched mode returns the same answers bit for bit
//! and leaves the same state, so the adjusted Rand index between the two on one stream is 1. The
//! tests assert bit equality on several streams and ARI ≥ 0.999 on others (measured: 1.0
//! everywhere), leaving room for a rounding corner case.
//!
//! **Cost.** Per point the replay still validates, normalizes, recomputes one centroid and moves
//! one, so on one CPU thread batched mode gains over exact mode roughly in proportion to the
//! number of clusters: about 1–1.3× with 8 clusters and 1.5–2.3× with 30 at d = 128–1000
//! (`benches/ncs.rs`). On a GPU the product leaves the CPU entirely.

use candle_core::{Device, Tensor};
use thiserror::Error;

use crate::exact::NcsStream;
use crate::lanes::{cosine, dist2_dot};
use crate::point::{NcsError, PointResult};
use crate::search::CentroidSearch;
use crate::state::StreamState;

/// Points scored by one matrix product, unless changed with [`BatchedNcs::with_chunk_size`].
pub const DEFAULT_CHUNK: usize = 256;

/// Why a batch stopped. The results of the points before the failure are already in the output,
/// and the stream holds their effect; the failing point and those after it were not processed.
#[derive(Debug, Error)]
pub enum BatchError {
    #[error("point {index} of the batch: {source}")]
    Point {
        index: usize,
        #[source]
        source: NcsError,
    },
    #[error("device: {0}")]
    Device(#[from] candle_core::Error),
}

/// A stream that scores its points a chunk at a time on a candle device.
#[derive(Debug)]
pub struct BatchedNcs {
    stream: NcsStream,
    device: Device,
    chunk: usize,
    /// The chunk's points, row by row, reused between chunks.
    rows: Vec<f32>,
    search: BoundedSearch,
}

impl BatchedNcs {
    /// Drives `stream` in batches on `device` (use `Device::Cpu` unless a GPU is there).
    pub fn new(stream: NcsStream, device: Device) -> Self {
        Self {
            stream,
            device,
            chunk: DEFAULT_CHUNK,
            rows: Vec::new(),
            search: BoundedSearch::default(),
        }
    }

    /// Points per matrix product (at least 1). Larger chunks amortize the product; smaller ones
    /// keep the snapshot closer to the moving centroids.
    pub fn with_chunk_size(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(1);
        self
    }

    /// The stream, for its summary, metrics and serialization.
    pub fn stream(&self) -> &NcsStream {
        &self.stream
    }

    /// Share of the point-centroid pairs seen so far that were recomputed exactly rather than
    /// settled from the matrix product (0 before any pair).
    pub fn recompute_ratio(&self) -> f64 {
        let s = &self.search;
        if s.pairs == 0 {
            0.0
        } else {
            s.recomputed as f64 / s.pairs as f64
        }
    }

    /// Gives the stream back, e.g. to persist it.
    pub fn into_stream(self) -> NcsStream {
        self.stream
    }

    /// Processes `points` in order, appending one result per point to `out`.
    pub fn process_batch<P: AsRef<[f32]>>(
        &mut self,
        points: &[P],
        out: &mut Vec<PointResult>,
    ) -> Result<(), BatchError> {
        out.reserve(points.len());
        let mut offset = 0;
        for chunk in points.chunks(self.chunk) {
            let mut valid = 0;
            let mut refusal = None;
            // A fresh stream takes its dimension from its first valid point.
            let mut dim = self.stream.state.dim;
            for p in chunk {
                let p = p.as_ref();
                if let Err(source) = self.stream.state.validate_against(p, dim) {
                    refusal = Some(source);
                    break;
                }
                dim = p.len();
                valid += 1;
            }
            if valid > 0 {
                // Before the product: a fresh stream has no centroids, so no device call can
                // fail between fixing its dimension and processing its first point.
                self.stream.state.fix_dim(dim);
                self.run_chunk(&chunk[..valid], out)?;
            }
            if let Some(source) = refusal {
                return Err(BatchError::Point {
                    index: offset + valid,
                    source,
                });
            }
            offset += chunk.len();
        }
        Ok(())
    }

    /// Scores validated points against the current centroids in one product, then replays them.
    fn run_chunk<P: AsRef<[f32]>>(
        &mut self,
        points: &[P],
        out: &mut Vec<PointResult>,
    ) -> Result<(), BatchError> {
        if points.is_empty() {
            return Ok(());
        }
        let state = &self.stream.state;
        let (n, dim) = (points.len(), state.dim);
        self.search.snapshot(state);
        let k0 = self.search.snapshot_ids.len();
        if k0 > 0 {
            // One product gives the points' dots with the centroids (first n rows) and the
            // centroids' Gram matrix (last k0 rows), which bounds the next merge pass.
            self.rows.clear();
            for p in points {
                self.rows.extend_from_slice(p.as_ref());
            }
            self.rows.extend_from_slice(&self.search.snapshot_centroids);
            let lhs = Tensor::from_slice(&self.rows, (n + k0, dim), &self.device)?;
            let rhs = Tensor::from_slice(&self.search.snapshot_centroids, (k0, dim), &self.device)?;
            let mut dots = lhs.matmul(&rhs.t()?)?.flatten_all()?.to_vec1::<f32>()?;
            self.search.gram = dots.split_off(n * k0);
            self.search.stale_dots = dots;
        }
        let stream = &mut self.stream;
        let mut version = stream.work.structure_version;
        for (row, p) in points.iter().enumerate() {
            self.search.row = row;
            out.push(
                stream
                    .state
                    .step(p.as_ref(), &mut self.search, &mut stream.work),
            );
            if stream.work.structure_version != version {
                version = stream.work.structure_version;
                self.search.remap(&stream.state);
            }
        }
        Ok(())
    }
}

/// Marks a cluster with no column in the chunk's product.
const NO_COLUMN: usize = usize::MAX;
/// Snapshot norms below this make the cosine bound useless; such centroids are recomputed.
const MIN_BOUND_NORM: f32 = 1e-6;

/// Nearest and most-similar search from a chunk's stale product, with exact recomputation of the
/// centroids whose interval could hold the answer.
#[derive(Debug, Clone, Default)]
struct BoundedSearch {
    dim: usize,
    /// Relative rounding allowance, 4·(d + 4)·ε.
    tol: f32,
    /// Ids, centroids and norms of the clusters when the chunk started.
    snapshot_ids: Vec<u64>,
    snapshot_centroids: Vec<f32>,
    snapshot_norms: Vec<f32>,
    /// n × k₀ dot products of the chunk's points with the snapshot centroids.
    stale_dots: Vec<f32>,
    /// k₀ × k₀ dot products of the snapshot centroids with each other.
    gram: Vec<f32>,
    /// The chunk row of the point being processed.
    row: usize,
    /// Per current cluster: its snapshot column, or [`NO_COLUMN`].
    column: Vec<usize>,
    /// Per snapshot column: how far that cluster's centroid has moved from its snapshot.
    drift: Vec<f32>,
    /// Per current cluster, for the point being processed: exact values once computed.
    known: Vec<bool>,
    exact_d2: Vec<f32>,
    exact_dot: Vec<f32>,
    lower: Vec<f32>,
    upper: Vec<f32>,
    /// Point-centroid pairs searched, and those computed exactly.
    pairs: u64,
    recomputed: u64,
}

impl BoundedSearch {
    fn snapshot(&mut self, state: &StreamState) {
        self.dim = state.dim;
        self.tol = 4.0 * (state.dim as f32 + 4.0) * f32::EPSILON;
        self.snapshot_ids.clear();
        self.snapshot_ids
            .extend(state.clusters.iter().map(|c| c.id));
        self.snapshot_centroids.clear();
        self.snapshot_centroids.extend_from_slice(&state.centroids);
        self.snapshot_norms.clear();
        self.snapshot_norms
            .extend(state.clusters.iter().map(|c| c.norm));
        self.stale_dots.clear();
        self.gram.clear();
        let k = state.clusters.len();
        self.column.clear();
        self.column.extend(0..k);
        self.drift.clear();
        self.drift.resize(k, 0.0);
    }

    /// Re-pairs the clusters with their snapshot columns after a create, drop or merge, and
    /// refreshes every drift (a merge moves its survivor). Both lists are in increasing id order.
    fn remap(&mut self, state: &StreamState) {
        self.column.clear();
        let mut c = 0;
        for (j, cluster) in state.clusters.iter().enumerate() {
            while c < self.snapshot_ids.len() && self.snapshot_ids[c] < cluster.id {
                c += 1;
            }
            if c < self.snapshot_ids.len() && self.snapshot_ids[c] == cluster.id {
                self.column.push(c);
                let snapshot = &self.snapshot_centroids[c * self.dim..(c + 1) * self.dim];
                self.drift[c] = dist2_dot(state.centroid(j), snapshot).0.sqrt();
            } else {
                self.column.push(NO_COLUMN);
            }
        }
    }

    /// The snapshot column of the cluster with id `id`, if it has one.
    fn column_of(&self, id: u64) -> Option<usize> {
        self.snapshot_ids.binary_search(&id).ok()
    }

    fn ensure_exact(&mut self, state: &StreamState, point: &[f32], j: usize) {
        if !self.known[j] {
            self.recomputed += 1;
            let (d2, dot) = dist2_dot(point, state.centroid(j));
            self.exact_d2[j] = d2;
            self.exact_dot[j] = dot;
            self.known[j] = true;
        }
    }

    fn stale_dot(&self, column: usize) -> f32 {
        self.stale_dots[self.row * self.snapshot_ids.len() + column]
    }
}

impl CentroidSearch for BoundedSearch {
    fn nearest_dist2(&mut self, state: &StreamState, point: &[f32], point_norm: f32) -> f32 {
        let k = state.clusters.len();
        self.known.clear();
        self.known.resize(k, false);
        self.exact_d2.resize(k, 0.0);
        self.exact_dot.resize(k, 0.0);
        self.lower.resize(k, 0.0);
        self.upper.resize(k, 0.0);
        let tol = self.tol;
        let p2 = point_norm * point_norm;
        self.pairs += k as u64;
        let mut best_upper = f32::INFINITY;
        for j in 0..k {
            let c = self.column[j];
            if c == NO_COLUMN {
                self.ensure_exact(state, point, j);
                let d = self.exact_d2[j].sqrt();
                (self.lower[j], self.upper[j]) = (d, d);
            } else {
                let c2 = self.snapshot_norms[c] * self.snapshot_norms[c];
                let stale = p2 + c2 - 2.0 * self.stale_dot(c);
                let slack = tol * (p2 + c2);
                let drift = self.drift[c] * (1.0 + tol);
                let low = ((stale - slack).max(0.0).sqrt() - drift).max(0.0);
                self.lower[j] = low * (1.0 - tol);
                self.upper[j] = ((stale + slack).max(0.0).sqrt() + drift) * (1.0 + tol);
            }
            best_upper = best_upper.min(self.upper[j]);
        }
        let mut best = f32::INFINITY;
        for j in 0..k {
            if self.lower[j] <= best_upper {
                self.ensure_exact(state, point, j);
                best = best.min(self.exact_d2[j]);
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
        let k = state.clusters.len();
        let tol = self.tol;
        let mut best_lower = f32::NEG_INFINITY;
        for j in 0..k {
            let c = self.column[j];
            let bounded = !self.known[j]
                && c != NO_COLUMN
                && self.snapshot_norms[c] > MIN_BOUND_NORM
                && point_norm > MIN_BOUND_NORM;
            if bounded {
                let c0 = self.snapshot_norms[c];
                let stale = self.stale_dot(c) / (point_norm * c0);
                let slack = 2.0 * self.drift[c] * (1.0 + tol) / c0 * (1.0 + tol) + 2.0 * tol;
                self.lower[j] = (stale - slack).clamp(-1.0, 1.0);
                self.upper[j] = (stale + slack).clamp(-1.0, 1.0);
            } else {
                self.ensure_exact(state, point, j);
                let sim = cosine(self.exact_dot[j], point_norm, state.clusters[j].norm);
                (self.lower[j], self.upper[j]) = (sim, sim);
            }
            best_lower = best_lower.max(self.lower[j]);
        }
        let mut best = (0, f32::NEG_INFINITY);
        for j in 0..k {
            if self.upper[j] >= best_lower {
                self.ensure_exact(state, point, j);
                let sim = cosine(self.exact_dot[j], point_norm, state.clusters[j].norm);
                if sim > best.1 {
                    best = (j, sim);
                }
            }
        }
        best
    }

    fn drift_reference(&self, j: usize) -> Option<&[f32]> {
        let c = self.column[j];
        (c != NO_COLUMN).then(|| &self.snapshot_centroids[c * self.dim..(c + 1) * self.dim])
    }

    fn record_drift(&mut self, j: usize, drift2: f32) {
        let c = self.column[j];
        if c != NO_COLUMN {
            self.drift[c] = drift2.sqrt();
        }
    }

    /// From the chunk's Gram matrix: each centroid's direction moved by at most 2δ/|c₀|.
    fn merge_cosine_bound(&self, a: u64, b: u64) -> Option<f32> {
        let (ca, cb) = (self.column_of(a)?, self.column_of(b)?);
        let (na, nb) = (self.snapshot_norms[ca], self.snapshot_norms[cb]);
        if self.gram.is_empty() || na <= MIN_BOUND_NORM || nb <= MIN_BOUND_NORM {
            return None;
        }
        let k0 = self.snapshot_ids.len();
        let tol = self.tol;
        let stale = self.gram[ca * k0 + cb] / (na * nb);
        let slack =
            (2.0 * self.drift[ca] / na + 2.0 * self.drift[cb] / nb) * (1.0 + tol) * (1.0 + tol)
                + 2.0 * tol;
        Some(stale + slack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{MixtureSpec, gaussian_mixture};
    use crate::{AlgorithmParams, adjusted_rand_index};

    fn exact_results(points: &[&[f32]]) -> (Vec<PointResult>, NcsStream) {
        let mut s = NcsStream::new(AlgorithmParams::default()).unwrap();
        let r = points.iter().map(|p| s.process(p).unwrap()).collect();
        (r, s)
    }

    fn batched_results(points: &[&[f32]], chunk: usize) -> (Vec<PointResult>, NcsStream) {
        let stream = NcsStream::new(AlgorithmParams::default()).unwrap();
        let mut b = BatchedNcs::new(stream, Device::Cpu).with_chunk_size(chunk);
        let mut out = Vec::new();
        b.process_batch(points, &mut out).unwrap();
        (out, b.into_stream())
    }

    fn same_bits(a: &[PointResult], b: &[PointResult]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.cluster_id == y.cluster_id
                    && x.is_outlier == y.is_outlier
                    && x.outlier_score.to_bits() == y.outlier_score.to_bits()
            })
    }

    #[test]
    fn batched_matches_exact_bit_for_bit() {
        for (clusters, dim, chunk, seed) in [(4, 16, 256, 1), (8, 128, 64, 2), (5, 24, 1000, 3)] {
            let mut spec = MixtureSpec::new(clusters, dim, 3000, seed);
            spec.outlier_fraction = 0.02;
            let m = gaussian_mixture(&spec);
            let points: Vec<&[f32]> = m.iter().collect();
            let (exact, exact_stream) = exact_results(&points);
            let (batched, batched_stream) = batched_results(&points, chunk);
            assert!(
                same_bits(&exact, &batched),
                "{clusters}x{dim}, chunk {chunk}"
            );
            assert_eq!(
                serde_json::to_string(&exact_stream).unwrap(),
                serde_json::to_string(&batched_stream).unwrap()
            );
        }
    }

    #[test]
    fn most_pairs_are_settled_by_the_product() {
        // Measured: 0.13 of the pairs recomputed for 8x128 (one per point of 8 clusters).
        let m = gaussian_mixture(&MixtureSpec::new(8, 128, 3000, 12));
        let stream = NcsStream::new(AlgorithmParams::default()).unwrap();
        let mut b = BatchedNcs::new(stream, Device::Cpu);
        b.process_batch(&m.iter().collect::<Vec<_>>(), &mut Vec::new())
            .unwrap();
        let ratio = b.recompute_ratio();
        assert!(ratio < 0.3, "recomputed {ratio}");
    }

    #[test]
    fn merge_bounds_hold_for_every_pair() {
        let m = gaussian_mixture(&MixtureSpec::new(12, 16, 1300, 13));
        let stream = NcsStream::new(AlgorithmParams::default()).unwrap();
        let mut b = BatchedNcs::new(stream, Device::Cpu);
        b.process_batch(&m.iter().collect::<Vec<_>>(), &mut Vec::new())
            .unwrap();
        let state = &b.stream.state;
        let mut bounded = 0;
        for i in 0..state.clusters.len() {
            for j in 0..state.clusters.len() {
                let (a, c) = (&state.clusters[i], &state.clusters[j]);
                if let Some(bound) = b.search.merge_cosine_bound(a.id, c.id) {
                    let dot = dist2_dot(state.centroid(i), state.centroid(j)).1;
                    let exact = cosine(dot, a.norm, c.norm);
                    assert!(exact <= bound, "{i},{j}: {exact} > {bound}");
                    bounded += 1;
                }
            }
        }
        assert!(bounded > 0);
    }

    #[test]
    fn batched_agrees_with_exact_by_ari() {
        for (clusters, dim, seed) in [(4, 16, 4), (8, 128, 5), (8, 1000, 6), (3, 2, 7)] {
            let m = gaussian_mixture(&MixtureSpec::new(clusters, dim, 2000, seed));
            let points: Vec<&[f32]> = m.iter().collect();
            let exact: Vec<i64> = exact_results(&points).0.iter().map(|r| r.label()).collect();
            let batched: Vec<i64> = batched_results(&points, DEFAULT_CHUNK)
                .0
                .iter()
                .map(|r| r.label())
                .collect();
            let ari = adjusted_rand_index(&exact, &batched).unwrap();
            assert!(ari >= 0.999, "{clusters}x{dim}: ARI {ari}");
        }
    }

    #[test]
    fn a_refused_point_stops_the_batch_after_the_points_before_it() {
        let m = gaussian_mixture(&MixtureSpec::new(3, 8, 600, 9));
        let mut points: Vec<Vec<f32>> = m.iter().map(<[f32]>::to_vec).collect();
        points[300][2] = f32::NAN;
        let stream = NcsStream::new(AlgorithmParams::default()).unwrap();
        let mut b = BatchedNcs::new(stream, Device::Cpu).with_chunk_size(128);
        let mut out = Vec::new();
        match b.process_batch(&points, &mut out) {
            Err(BatchError::Point { index, source }) => {
                assert_eq!(index, 300);
                assert_eq!(source, NcsError::NonFinite { index: 2 });
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(out.len(), 300);
        assert_eq!(b.stream().stats().time_step, 300);
        let refs: Vec<&[f32]> = points[..300].iter().map(Vec::as_slice).collect();
        assert!(same_bits(&exact_results(&refs).0, &out));

        let mut short = points[301].clone();
        short.pop();
        let err = b.process_batch(&[short], &mut out).unwrap_err();
        assert!(matches!(
            err,
            BatchError::Point {
                index: 0,
                source: NcsError::DimensionMismatch {
                    expected: 8,
                    got: 7
                }
            }
        ));
    }

    #[test]
    fn a_fresh_stream_takes_its_dimension_from_its_first_valid_point() {
        let mut b = BatchedNcs::new(
            NcsStream::new(AlgorithmParams::default()).unwrap(),
            Device::Cpu,
        );
        let mut out = Vec::new();
        let err = b
            .process_batch(&[vec![f32::INFINITY, 1.0]], &mut out)
            .unwrap_err();
        assert!(matches!(err, BatchError::Point { index: 0, .. }));
        assert_eq!(b.stream().stats().dimension, None);
        let err = b
            .process_batch(&[vec![1.0, 2.0], vec![1.0]], &mut out)
            .unwrap_err();
        assert!(matches!(
            err,
            BatchError::Point {
                index: 1,
                source: NcsError::DimensionMismatch {
                    expected: 2,
                    got: 1
                }
            }
        ));
        assert_eq!(out.len(), 1);
        assert_eq!(b.stream().stats().dimension, Some(2));
    }

    #[test]
    fn batches_continue_a_restored_stream() {
        let m = gaussian_mixture(&MixtureSpec::new(4, 32, 2000, 10));
        let points: Vec<&[f32]> = m.iter().collect();
        let (exact, _) = exact_results(&points);
        let mut first = BatchedNcs::new(
            NcsStream::new(AlgorithmParams::default()).unwrap(),
            Device::Cpu,
        );
        let mut out = Vec::new();
        first.process_batch(&points[..777], &mut out).unwrap();
        let saved = serde_json::to_string(first.stream()).unwrap();
        let restored: NcsStream = serde_json::from_str(&saved).unwrap();
        let mut second = BatchedNcs::new(restored, Device::Cpu);
        second.process_batch(&points[777..], &mut out).unwrap();
        assert!(same_bits(&exact, &out));
    }
}
