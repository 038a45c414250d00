//! Vector arithmetic in eight interleaved lanes: distances, dot products, norms, cosine
//! similarities, the centroid update and mean and deviation. The lanes vectorize on SSE and AVX
//! alike and fix the summation order, so results do not depend on the machine; exact and batched
//! mode share these functions, so their exact values agree to the bit.

/// Interleaved accumulators of every reduction: eight lanes vectorize on SSE and AVX alike and
/// fix the summation order, so results do not depend on the machine.
pub(crate) const LANES: usize = 8;
/// Norms below this make a cosine similarity 0.
pub(crate) const MIN_NORM: f32 = 1e-10;

/// Squared Euclidean distance and dot product of `p` and `c` in one pass. Exact and batched mode
/// both use this one function, so their exact values agree to the bit.
#[inline]
pub(crate) fn dist2_dot(p: &[f32], c: &[f32]) -> (f32, f32) {
    let mut d2 = [0.0f32; LANES];
    let mut dot = [0.0f32; LANES];
    let (p_chunks, p_rest) = p.as_chunks::<LANES>();
    let (c_chunks, c_rest) = c.as_chunks::<LANES>();
    for (a, b) in p_chunks.iter().zip(c_chunks) {
        let mut diff = [0.0f32; LANES];
        for i in 0..LANES {
            diff[i] = a[i] - b[i];
        }
        for i in 0..LANES {
            d2[i] += diff[i] * diff[i];
        }
        for i in 0..LANES {
            dot[i] += a[i] * b[i];
        }
    }
    let mut d2_sum = fold_lanes(&d2);
    let mut dot_sum = fold_lanes(&dot);
    for (a, b) in p_rest.iter().zip(c_rest) {
        let diff = a - b;
        d2_sum += diff * diff;
        dot_sum += a * b;
    }
    (d2_sum, dot_sum)
}

/// Euclidean norm of `v`.
#[inline]
pub(crate) fn norm(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (chunks, rest) = v.as_chunks::<LANES>();
    for a in chunks {
        for i in 0..LANES {
            acc[i] += a[i] * a[i];
        }
    }
    let mut sum = fold_lanes(&acc);
    for a in rest {
        sum += a * a;
    }
    sum.sqrt()
}

/// Cosine similarity from a dot product and both norms, as the reference defines it.
#[inline]
pub(crate) fn cosine(dot: f32, point_norm: f32, centroid_norm: f32) -> f32 {
    if point_norm > MIN_NORM && centroid_norm > MIN_NORM {
        (dot / (point_norm * centroid_norm)).clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

/// Moves a centroid toward `point` by NCS's smoothed update with step `lr`, in one pass that also
/// returns its new squared norm and, given a reference row, its squared distance to it.
///
/// `(1 − lr)·c + lr·(0.7·p + 0.3·c)` is computed in its expanded form `(1 − 0.7·lr)·c + 0.7·lr·p`
/// (the same value up to rounding, in half the operations). Kept out of line so that its
/// accumulators stay in registers.
#[inline(never)]
pub(crate) fn move_centroid(
    row: &mut [f32],
    point: &[f32],
    lr: f32,
    reference: Option<&[f32]>,
) -> (f32, Option<f32>) {
    let toward = 0.7 * lr;
    let keep = 1.0 - toward;
    let step = |c: f32, p: f32| keep * c + toward * p;
    let mut n2 = [0.0f32; LANES];
    let mut d2 = [0.0f32; LANES];
    let (row_chunks, row_rest) = row.as_chunks_mut::<LANES>();
    let (point_chunks, point_rest) = point.as_chunks::<LANES>();
    match reference {
        Some(reference) => {
            let (ref_chunks, ref_rest) = reference.as_chunks::<LANES>();
            for ((c, p), r) in row_chunks.iter_mut().zip(point_chunks).zip(ref_chunks) {
                for i in 0..LANES {
                    c[i] = step(c[i], p[i]);
                }
                for i in 0..LANES {
                    n2[i] += c[i] * c[i];
                }
                let mut e = [0.0f32; LANES];
                for i in 0..LANES {
                    e[i] = c[i] - r[i];
                }
                for i in 0..LANES {
                    d2[i] += e[i] * e[i];
                }
            }
            let (mut norm2, mut drift2) = (fold_lanes(&n2), fold_lanes(&d2));
            for ((c, p), r) in row_rest.iter_mut().zip(point_rest).zip(ref_rest) {
                *c = step(*c, *p);
                norm2 += *c * *c;
                drift2 += (*c - r) * (*c - r);
            }
            (norm2, Some(drift2))
        }
        None => {
            for (c, p) in row_chunks.iter_mut().zip(point_chunks) {
                for i in 0..LANES {
                    c[i] = step(c[i], p[i]);
                }
                for i in 0..LANES {
                    n2[i] += c[i] * c[i];
                }
            }
            let mut norm2 = fold_lanes(&n2);
            for (c, p) in row_rest.iter_mut().zip(point_rest) {
                *c = step(*c, *p);
                norm2 += *c * *c;
            }
            (norm2, None)
        }
    }
}

/// Sums eight lanes pairwise, in the order every kernel here uses. Kept out of line: inlined,
/// its pairing leads the vectorizer to shuffle the accumulators of the loops above it.
#[inline(never)]
pub(crate) fn fold_lanes(acc: &[f32; LANES]) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Population mean and standard deviation of `values`, two-pass; `(0, 0)` when empty. Sums run
/// in eight interleaved lanes so they vectorize.
pub(crate) fn mean_std(values: &[f32]) -> (f32, f32) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f32;
    let mean = lane_sum(values, |v| v) / n;
    let var = lane_sum(values, |v| (v - mean) * (v - mean)) / n;
    (mean, var.sqrt())
}

fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (chunks, rest) = values.as_chunks::<LANES>();
    for chunk in chunks {
        for i in 0..LANES {
            acc[i] += f(chunk[i]);
        }
    }
    let mut sum = fold_lanes(&acc);
    for v in rest {
        sum += f(*v);
    }
    sum
}
