//! One cluster's metadata (its centroid is a row of the stream state's centroids) and the health
//! formula of NCS.md.

use serde::{Deserialize, Serialize};

/// Metadata of one cluster; its centroid is a row of the stream state's `centroids`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Cluster {
    pub id: u64,
    pub confidence: f32,
    pub age: f32,
    pub updates: u64,
    pub last_update: u64,
    pub health: f32,
    /// Euclidean norm of the centroid, kept in step with it.
    pub norm: f32,
}

impl Cluster {
    pub(crate) fn fresh(id: u64, time_step: u64, norm: f32) -> Self {
        Self {
            id,
            confidence: 1.0,
            age: 0.0,
            updates: 1,
            last_update: time_step,
            health: 1.0,
            norm,
        }
    }

    pub(crate) fn health_at(&self, time_step: u64) -> f32 {
        let age_factor = (1.0 + self.age / 200.0).min(1.2);
        let consistency = (0.8 + (self.updates as f32 / (self.age + 1.0)) * 0.3).min(1.1);
        let idle = time_step.saturating_sub(self.last_update) as f32;
        let recency = (1.0 - idle / 50.0).max(0.5);
        (self.confidence * age_factor * consistency * recency).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_confidence_age_consistency_and_recency() {
        let fresh = Cluster::fresh(0, 10, 1.0);
        assert_eq!(fresh.health_at(10), 1.0);
        // Idle for 100 steps halves the recency factor (floored at 0.5).
        let idle = Cluster {
            confidence: 1.0,
            age: 0.0,
            updates: 0,
            ..fresh
        };
        assert!((idle.health_at(110) - 0.4).abs() < 1e-6);
    }
}
