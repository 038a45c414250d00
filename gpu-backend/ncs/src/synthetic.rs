//! Seeded Gaussian mixtures, with optional far outliers, for the NCS tests and benches.

pub use kernel::rng::SplitMix64;

/// What mixture to draw.
#[derive(Debug, Clone)]
pub struct MixtureSpec {
    pub clusters: usize,
    pub dim: usize,
    pub points: usize,
    /// Centers are uniform in `[-center_spread, center_spread]^dim`.
    pub center_spread: f32,
    /// Standard deviation of each coordinate around its center.
    pub noise: f32,
    /// Share of points replaced by far outliers (label `-1`).
    pub outlier_fraction: f32,
    pub seed: u64,
}

impl MixtureSpec {
    /// `clusters` well-separated clusters in `dim` dimensions, `points` points, no outliers.
    pub fn new(clusters: usize, dim: usize, points: usize, seed: u64) -> Self {
        Self {
            clusters,
            dim,
            points,
            center_spread: 10.0,
            noise: 1.0,
            outlier_fraction: 0.0,
            seed,
        }
    }
}

/// A drawn stream: points in arrival order with their true labels.
#[derive(Debug, Clone)]
pub struct Mixture {
    pub dim: usize,
    /// `labels.len()` rows of `dim` values.
    pub points: Vec<f32>,
    /// Index of the true cluster of each point, `-1` for an injected outlier.
    pub labels: Vec<i64>,
}

impl Mixture {
    /// The points in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = &[f32]> {
        self.points.chunks_exact(self.dim.max(1))
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Draws a mixture: each point picks a cluster uniformly; an injected outlier lies in a random
/// direction five times as far from the origin as a typical center.
pub fn gaussian_mixture(spec: &MixtureSpec) -> Mixture {
    let mut rng = SplitMix64::new(spec.seed);
    let dim = spec.dim.max(1);
    let centers: Vec<f32> = (0..spec.clusters.max(1) * dim)
        .map(|_| ((rng.uniform() * 2.0 - 1.0) * f64::from(spec.center_spread)) as f32)
        .collect();
    let far = 5.0 * f64::from(spec.center_spread) * (dim as f64 / 3.0).sqrt();
    let mut points = Vec::with_capacity(spec.points * dim);
    let mut labels = Vec::with_capacity(spec.points);
    for _ in 0..spec.points {
        if rng.uniform() < f64::from(spec.outlier_fraction) {
            let direction: Vec<f64> = (0..dim).map(|_| rng.normal()).collect();
            let len = direction
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
                .sqrt()
                .max(1e-12);
            points.extend(direction.iter().map(|v| (v / len * far) as f32));
            labels.push(-1);
        } else {
            let c = rng.below(spec.clusters.max(1));
            let center = &centers[c * dim..(c + 1) * dim];
            points.extend(
                center
                    .iter()
                    .map(|m| m + (rng.normal() * f64::from(spec.noise)) as f32),
            );
            labels.push(c as i64);
        }
    }
    Mixture {
        dim,
        points,
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let spec = MixtureSpec::new(3, 4, 100, 7);
        let (a, b) = (gaussian_mixture(&spec), gaussian_mixture(&spec));
        assert_eq!(a.points, b.points);
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.iter().count(), 100);
        let other = gaussian_mixture(&MixtureSpec::new(3, 4, 100, 8));
        assert_ne!(a.points, other.points);
    }

    #[test]
    fn normal_draws_have_unit_spread() {
        let mut rng = SplitMix64::new(1);
        let draws: Vec<f64> = (0..20_000).map(|_| rng.normal()).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }
}
