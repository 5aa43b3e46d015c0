//! Row kernels of the dense Bradley-Terry tables: eight independent partial sums per row (so
//! that they vectorize without reassociation), added in a fixed order; compiled twice, for
//! AVX2 and for the baseline CPU, with the same results.

const LANES: usize = 8;

#[inline(always)]
fn total(lanes: [f64; LANES]) -> f64 {
    ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
        + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
}

/// Row `i` of the gradient and curvature: with `x = exp(s - mean)`, `q_j = x_i / (x_i +
/// x_j)` and `r_j = 1 - q_j`, the curvatures `t_j q_j r_j`; writes them times `scale`
/// into `c` (the same bits in row j's cell i: every product is of symmetric factors) and
/// returns (`sum_j t_j q_j`, the sum of the curvatures).
#[inline(always)]
fn evaluate_impl<T: Copy + Into<f64>>(
    t: &[T],
    x: &[f64],
    xi: f64,
    scale: f64,
    c: &mut [f32],
) -> (f64, f64) {
    let (mut expected, mut curvature) = ([0.0f64; LANES], [0.0f64; LANES]);
    let mut cell = |l: usize, t: T, x: f64, c: &mut f32| {
        let t: f64 = t.into();
        let inv = 1.0 / (xi + x);
        let (q, r) = (xi * inv, x * inv);
        let qr = q * r;
        expected[l] += t * q;
        curvature[l] += t * qr;
        *c = (t * scale * qr) as f32;
    };
    let full = t.len() - t.len() % LANES;
    for ((t, x), c) in t[..full]
        .chunks_exact(LANES)
        .zip(x[..full].chunks_exact(LANES))
        .zip(c[..full].chunks_exact_mut(LANES))
    {
        for l in 0..LANES {
            cell(l, t[l], x[l], &mut c[l]);
        }
    }
    for (l, ((&t, &x), c)) in t[full..]
        .iter()
        .zip(&x[full..])
        .zip(&mut c[full..])
        .enumerate()
    {
        cell(l, t, x, c);
    }
    (total(expected), total(curvature))
}

/// `sum_j c_j (v_i - v_j)`.
#[inline(always)]
fn laplacian_impl(c: &[f32], v: &[f64], vi: f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let full = c.len() - c.len() % LANES;
    for (c, v) in c[..full]
        .chunks_exact(LANES)
        .zip(v[..full].chunks_exact(LANES))
    {
        for l in 0..LANES {
            acc[l] += f64::from(c[l]) * (vi - v[l]);
        }
    }
    for (l, (&c, &v)) in c[full..].iter().zip(&v[full..]).enumerate() {
        acc[l] += f64::from(c) * (vi - v);
    }
    total(acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn evaluate_avx2<T: Copy + Into<f64>>(
    t: &[T],
    x: &[f64],
    xi: f64,
    scale: f64,
    c: &mut [f32],
) -> (f64, f64) {
    evaluate_impl(t, x, xi, scale, c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn laplacian_avx2(c: &[f32], v: &[f64], vi: f64) -> f64 {
    laplacian_impl(c, v, vi)
}

fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

pub(super) fn evaluate<T: Copy + Into<f64>>(
    t: &[T],
    x: &[f64],
    xi: f64,
    scale: f64,
    c: &mut [f32],
) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU supports AVX2 (checked just above), the only requirement of
        // calling a function compiled with `target_feature(enable = "avx2")`.
        #[allow(unsafe_code)]
        return unsafe { evaluate_avx2(t, x, xi, scale, c) };
    }
    evaluate_impl(t, x, xi, scale, c)
}

pub(super) fn laplacian(c: &[f32], v: &[f64], vi: f64) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: as in `evaluate`.
        #[allow(unsafe_code)]
        return unsafe { laplacian_avx2(c, v, vi) };
    }
    laplacian_impl(c, v, vi)
}

/// [`evaluate`] for scores more than 300 apart (where `exp(s - mean)` could overflow):
/// one exp per cell, of `-|s_i - s_j|`.
pub(super) fn evaluate_wide<T: Copy + Into<f64>>(
    t: &[T],
    s: &[f64],
    si: f64,
    scale: f64,
    c: &mut [f32],
) -> (f64, f64) {
    let (mut expected, mut curvature) = (0.0, 0.0);
    for ((&t, &sj), c) in t.iter().zip(s).zip(c) {
        let t: f64 = t.into();
        let d = si - sj;
        let e = (-d.abs()).exp(); // in (0, 1]
        let (big, small) = (1.0 / (1.0 + e), e / (1.0 + e));
        let (q, r) = if d >= 0.0 { (big, small) } else { (small, big) };
        let qr = q * r;
        expected += t * q;
        curvature += t * qr;
        *c = (t * scale * qr) as f32;
    }
    (expected, curvature)
}

/// The kernels compiled for the baseline CPU, for the tests.
#[cfg(test)]
pub(super) mod portable {
    pub fn evaluate<T: Copy + Into<f64>>(
        t: &[T],
        x: &[f64],
        xi: f64,
        scale: f64,
        c: &mut [f32],
    ) -> (f64, f64) {
        super::evaluate_impl(t, x, xi, scale, c)
    }

    pub fn laplacian(c: &[f32], v: &[f64], vi: f64) -> f64 {
        super::laplacian_impl(c, v, vi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_are_the_same_with_and_without_avx2() {
        /// The dispatched kernels (AVX2 where the CPU has it) against the baseline build.
        fn same<T: Copy + Into<f64>>(t: &[T]) {
            let n = t.len();
            let x: Vec<f64> = (0..n)
                .map(|j| ((j % 9) as f64 * 0.37 - 1.0).exp())
                .collect();
            let v: Vec<f64> = (0..n).map(|j| (j % 4) as f64 - 1.5).collect();
            let (mut c1, mut c2) = (vec![0f32; n], vec![0f32; n]);
            let a = evaluate(t, &x, 0.8, 0.01, &mut c1);
            let b = portable::evaluate(t, &x, 0.8, 0.01, &mut c2);
            assert_eq!(
                (a.0.to_bits(), a.1.to_bits()),
                (b.0.to_bits(), b.1.to_bits())
            );
            assert_eq!(c1, c2);
            let (p, q) = (laplacian(&c1, &v, 0.3), portable::laplacian(&c1, &v, 0.3));
            assert_eq!(p.to_bits(), q.to_bits());
        }
        for n in [1usize, 7, 8, 13, 64, 101] {
            same(&(0..n).map(|j| (j % 5) as f32).collect::<Vec<_>>());
            same(&(0..n).map(|j| (j % 5) as f64 * 0.3).collect::<Vec<_>>());
        }
    }
}
