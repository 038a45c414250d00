//! Fixed-capacity ring buffers for the stream's histories: once full, a push overwrites the
//! oldest entry and never allocates.

use serde::{Deserialize, Serialize};

use crate::lanes::mean_std;

/// The last `capacity` scalars pushed. Statistics run over the storage order, which is part of
/// the serialized state, so a restored ring computes bit-identical results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalarRing {
    capacity: usize,
    /// Slot the next push overwrites once the ring is full.
    head: usize,
    values: Vec<f32>,
}

impl ScalarRing {
    /// An empty ring that keeps at most `capacity` (at least 1) values.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            head: 0,
            values: Vec::with_capacity(capacity),
        }
    }

    /// Appends `value`, dropping the oldest one when full; returns the dropped value.
    pub fn push(&mut self, value: f32) -> Option<f32> {
        if self.values.len() < self.capacity {
            self.values.push(value);
            None
        } else {
            let dropped = std::mem::replace(&mut self.values[self.head], value);
            self.head = (self.head + 1) % self.capacity;
            Some(dropped)
        }
    }

    /// How many values the ring holds.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// The values in storage order (not oldest first once the ring has wrapped).
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Whether a deserialized ring keeps its invariants for `capacity`.
    pub fn is_consistent(&self, capacity: usize) -> bool {
        self.capacity == capacity.max(1)
            && self.values.len() <= self.capacity
            && self.head < self.capacity
            && (self.head == 0 || self.values.len() == self.capacity)
    }

    /// Population mean and standard deviation; `(0, 0)` when empty.
    pub fn mean_std(&self) -> (f32, f32) {
        mean_std(&self.values)
    }
}

/// The last `capacity` points pushed, stored row by row in one flat buffer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointRing {
    capacity: usize,
    dim: usize,
    /// Row the next push overwrites once the ring is full.
    head: usize,
    rows: usize,
    data: Vec<f32>,
}

impl PointRing {
    /// An empty ring of at most `capacity` (at least 1) points; the dimension is set by
    /// [`PointRing::set_dim`] before the first push.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            dim: 0,
            head: 0,
            rows: 0,
            data: Vec::new(),
        }
    }

    /// Fixes the dimension of the points and reserves the whole ring once.
    pub fn set_dim(&mut self, dim: usize) {
        self.dim = dim;
        self.data = Vec::with_capacity(self.capacity * dim);
        self.head = 0;
        self.rows = 0;
    }

    /// Appends `point` (of the ring's dimension), dropping the oldest point when full.
    pub fn push(&mut self, point: &[f32]) {
        debug_assert_eq!(point.len(), self.dim);
        if self.rows < self.capacity {
            self.data.extend_from_slice(point);
            self.rows += 1;
        } else {
            let start = self.head * self.dim;
            self.data[start..start + self.dim].copy_from_slice(point);
            self.head = (self.head + 1) % self.capacity;
        }
    }

    /// Whether a deserialized ring keeps its invariants for points of `dim` values.
    pub fn is_consistent(&self, dim: usize, capacity: usize) -> bool {
        self.capacity == capacity.max(1)
            && self.dim == dim
            && self.rows <= self.capacity
            && self.head < self.capacity
            && (self.head == 0 || self.rows == self.capacity)
            && self.data.len() == self.rows * self.dim
    }

    /// How many points the ring holds.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// The `i`-th point, oldest first (`i < len()`).
    pub fn get(&self, i: usize) -> &[f32] {
        let physical = if self.rows < self.capacity {
            i
        } else {
            (self.head + i) % self.capacity
        };
        let start = physical * self.dim;
        &self.data[start..start + self.dim]
    }

    /// Forgets every point, keeping the storage.
    pub fn clear(&mut self) {
        self.data.clear();
        self.rows = 0;
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_ring_keeps_the_last_values() {
        let mut r = ScalarRing::new(3);
        for v in 1..=5 {
            r.push(v as f32);
        }
        assert_eq!(r.len(), 3);
        let mut v = r.values().to_vec();
        v.sort_by(f32::total_cmp);
        assert_eq!(v, [3.0, 4.0, 5.0]);
        let (mean, std) = r.mean_std();
        assert_eq!(mean, 4.0);
        assert!((std - (2.0f32 / 3.0).sqrt()).abs() < 1e-6);
    }

    #[test]
    fn point_ring_is_oldest_first() {
        let mut r = PointRing::new(2);
        r.set_dim(2);
        r.push(&[1.0, 1.0]);
        r.push(&[2.0, 2.0]);
        r.push(&[3.0, 3.0]);
        assert_eq!(r.len(), 2);
        assert_eq!(r.get(0), &[2.0, 2.0]);
        assert_eq!(r.get(1), &[3.0, 3.0]);
        r.clear();
        assert_eq!(r.len(), 0);
        r.push(&[4.0, 4.0]);
        assert_eq!(r.get(0), &[4.0, 4.0]);
    }
}
