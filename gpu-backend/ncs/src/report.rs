//! What a stream reports about itself: its clusters ([`ClusterSummary`] with a [`HealthStatus`]),
//! its counters ([`StreamStats`]) and its adaptive state ([`GlobalMetrics`]).

use serde::{Deserialize, Serialize};

/// How a cluster is doing, from its health score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Health ≥ 0.8.
    Healthy,
    /// Health ≥ 0.5.
    Warning,
    /// Health ≥ 0.2.
    Critical,
    /// Health < 0.2.
    Inactive,
}

impl HealthStatus {
    /// The status of a health score.
    pub fn of(health: f32) -> Self {
        if health >= 0.8 {
            Self::Healthy
        } else if health >= 0.5 {
            Self::Warning
        } else if health >= 0.2 {
            Self::Critical
        } else {
            Self::Inactive
        }
    }
}

/// One cluster as the clusters summary shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSummary {
    /// Stable id, never reused within the stream.
    pub id: u64,
    pub centroid: Vec<f32>,
    pub confidence: f32,
    pub age: f32,
    pub update_count: u64,
    /// Health as of the cluster's last update or the last maintenance.
    pub health_score: f32,
    pub health_status: HealthStatus,
    /// Time step of the last update.
    pub last_updated: u64,
}

/// Counters of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStats {
    /// Time step of the last processed point.
    pub time_step: u64,
    /// Points processed (refused points do not count); equal to `time_step`.
    pub points_processed: u64,
    /// Points answered as outliers.
    pub outliers: u64,
    /// Clusters held now.
    pub clusters: usize,
    pub clusters_created: u64,
    pub clusters_merged: u64,
    pub clusters_dropped: u64,
    /// Dimension fixed by the first point, if any.
    pub dimension: Option<usize>,
}

/// The stream-wide adaptive state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GlobalMetrics {
    pub clustering_quality: f32,
    pub global_stability: f32,
    pub adaptation_rate: f32,
    /// Similarity a point needs now to join a cluster.
    pub current_threshold: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_status_thresholds() {
        assert_eq!(HealthStatus::of(0.8), HealthStatus::Healthy);
        assert_eq!(HealthStatus::of(0.79), HealthStatus::Warning);
        assert_eq!(HealthStatus::of(0.5), HealthStatus::Warning);
        assert_eq!(HealthStatus::of(0.2), HealthStatus::Critical);
        assert_eq!(HealthStatus::of(0.19), HealthStatus::Inactive);
    }
}
