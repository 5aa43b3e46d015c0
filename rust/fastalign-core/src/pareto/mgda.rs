//! MGDA's min-norm simplex weights for batches of Gram matrices (closed form for two tasks,
//! Wolfe's min-norm-point algorithm beyond).

use rayon::prelude::*;

use super::checks::first_non_finite;
use crate::{Error, Result};

/// MGDA min-norm weights: for each ``n x n`` Gram matrix ``G`` (``G_ij = <g_i, g_j>``) of a
/// batch, the point ``w`` of the probability simplex minimizing ``||sum_i w_i g_i||^2 =
/// w^T G w``. Exact closed form for ``n <= 2``; beyond, Wolfe's min-norm-point algorithm (an
/// active-set refinement of Frank-Wolfe that terminates, instead of zig-zagging), stopped
/// when the Frank-Wolfe duality gap ``w^T G w - min_i (G w)_i`` is at most
/// ``tol * max(1, w^T G w)`` or after ``max_iter`` major cycles.
///
/// `gram` holds `batch` row-major ``n x n`` matrices; they must be finite and symmetric
/// (to ``1e-9`` relative). Returns ``batch * n`` weights.
pub fn mgda_weights(
    gram: &[f64],
    batch: usize,
    n: usize,
    tol: f64,
    max_iter: usize,
) -> Result<Vec<f64>> {
    if batch.checked_mul(n).and_then(|x| x.checked_mul(n)) != Some(gram.len()) {
        return Err(Error::shape(format!(
            "gram: {} values cannot form {batch} matrices of {n} x {n}",
            gram.len()
        )));
    }
    if n == 0 {
        return Err(Error::invalid("gram: need at least one task (n >= 1)"));
    }
    if !(tol > 0.0 && tol.is_finite()) {
        return Err(Error::invalid(format!(
            "tol must be a finite number > 0, got {tol}"
        )));
    }
    first_non_finite("gram", gram, n * n)?;
    for (b, g) in gram.chunks_exact(n * n).enumerate() {
        for i in 0..n {
            for j in 0..i {
                let (a, c) = (g[i * n + j], g[j * n + i]);
                if (a - c).abs() > 1e-9 * (1.0 + a.abs().max(c.abs())) {
                    return Err(Error::invalid(format!(
                        "gram matrix {b} is not symmetric: G[{i},{j}] = {a} but G[{j},{i}] = {c}"
                    )));
                }
            }
        }
    }
    let mut out = vec![0.0; batch * n];
    let results: Vec<Result<()>> = out
        .par_chunks_mut(n)
        .zip(gram.par_chunks_exact(n * n))
        .enumerate()
        .map(|(b, (w, g))| {
            mgda_one(g, n, w, tol, max_iter).map_err(|e| match e {
                Error::NoConvergence(msg) => {
                    Error::NoConvergence(format!("gram matrix {b}: {msg}"))
                }
                other => other,
            })
        })
        .collect();
    // the first failure in batch order, whatever the thread count
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(out)
}

/// Minimizes ``a^2 x + 2 a (1 - a) y + (1 - a)^2 z`` over ``a`` in [0, 1], where ``x = |u|^2``,
/// ``y = <u, v>``, ``z = |v|^2``: the min-norm point of the segment from v to u is ``a u +
/// (1 - a) v``.
fn min_norm_segment(x: f64, y: f64, z: f64) -> f64 {
    let denom = x - 2.0 * y + z;
    if denom <= 0.0 {
        // u == v (in the metric): every point has the same norm; take the midpoint
        return 0.5;
    }
    ((z - y) / denom).clamp(0.0, 1.0)
}

fn mgda_one(g: &[f64], n: usize, w: &mut [f64], tol: f64, max_iter: usize) -> Result<()> {
    if n == 1 {
        w[0] = 1.0;
        return Ok(());
    }
    if n == 2 {
        let a = min_norm_segment(g[0], g[1], g[3]);
        w[0] = a;
        w[1] = 1.0 - a;
        return Ok(());
    }
    wolfe_min_norm(g, n, w, tol, max_iter)
}

/// Wolfe's min-norm-point algorithm on a Gram matrix: an active set ("corral") of vertices
/// whose affine minimizer is kept inside the simplex. Exact up to rounding in a finite number
/// of steps for affinely independent corrals; the major-cycle test is the Frank-Wolfe gap.
fn wolfe_min_norm(g: &[f64], n: usize, w: &mut [f64], tol: f64, max_iter: usize) -> Result<()> {
    let gij = |i: usize, j: usize| g[i * n + j];
    // start from the vertex of smallest norm (first on ties)
    let start = (0..n).fold(0, |b, i| if gij(i, i) < gij(b, b) { i } else { b });
    let mut set: Vec<usize> = vec![start];
    let mut lam: Vec<f64> = vec![1.0];
    let mut converged = false;
    for _ in 0..max_iter {
        // x = sum lam_s p_s; <x, p_i> = sum_s lam_s G[s][i]; <x, x> = sum lam_i <x, p_i>
        let xp: Vec<f64> = (0..n)
            .map(|i| set.iter().zip(&lam).map(|(&s, &l)| l * gij(s, i)).sum())
            .collect();
        let xx: f64 = set.iter().zip(&lam).map(|(&s, &l)| l * xp[s]).sum();
        let (j, &xj) =
            xp.iter().enumerate().fold(
                (0, &xp[0]),
                |best, cur| if cur.1 < best.1 { cur } else { best },
            );
        if xx - xj <= tol * xx.abs().max(1.0) || set.contains(&j) {
            converged = true;
            break;
        }
        set.push(j);
        lam.push(0.0);
        // minor cycles: move toward the affine minimizer of the corral, dropping vertices
        // whose weight reaches 0 on the way
        loop {
            let Some(alpha) = affine_minimizer(g, n, &set) else {
                // the new vertex is affinely dependent on the corral: it cannot lower the
                // norm; drop it and stop
                set.pop();
                lam.pop();
                return finish(w, &set, &lam);
            };
            if alpha.iter().all(|&a| a > 1e-15) {
                lam = alpha;
                break;
            }
            let mut theta = 1.0_f64;
            for (&l, &a) in lam.iter().zip(&alpha) {
                if a <= 1e-15 && l - a > 0.0 {
                    theta = theta.min(l / (l - a));
                }
            }
            for (l, &a) in lam.iter_mut().zip(&alpha) {
                *l = theta * a + (1.0 - theta) * *l;
            }
            let mut k = 0;
            while k < set.len() {
                if lam[k] <= 1e-15 {
                    set.swap_remove(k);
                    lam.swap_remove(k);
                } else {
                    k += 1;
                }
            }
            let total: f64 = lam.iter().sum();
            lam.iter_mut().for_each(|l| *l /= total);
        }
    }
    if !converged {
        return Err(Error::NoConvergence(format!(
            "the min-norm solver did not reach tol={tol} in {max_iter} major cycles"
        )));
    }
    finish(w, &set, &lam)
}

fn finish(w: &mut [f64], set: &[usize], lam: &[f64]) -> Result<()> {
    w.fill(0.0);
    for (&s, &l) in set.iter().zip(lam) {
        w[s] = l;
    }
    Ok(())
}

/// The weights ``alpha`` (summing to 1) of the min-norm point of the affine hull of the
/// corral: the solution of ``[G_SS 1; 1^T 0] [alpha; mu] = [0; 1]``. None when the system is
/// singular (an affinely dependent corral).
fn affine_minimizer(g: &[f64], n: usize, set: &[usize]) -> Option<Vec<f64>> {
    let m = set.len() + 1;
    let mut a = vec![0.0; m * (m + 1)];
    let scale = set
        .iter()
        .map(|&s| g[s * n + s].abs())
        .fold(1e-300, f64::max);
    for (r, &si) in set.iter().enumerate() {
        for (c, &sj) in set.iter().enumerate() {
            a[r * (m + 1) + c] = g[si * n + sj] / scale;
        }
        a[r * (m + 1) + m - 1] = 1.0;
    }
    for c in 0..m - 1 {
        a[(m - 1) * (m + 1) + c] = 1.0;
    }
    a[(m - 1) * (m + 1) + m] = 1.0;
    // Gaussian elimination with partial pivoting
    for col in 0..m {
        let piv = (col..m).max_by(|&x, &y| {
            a[x * (m + 1) + col]
                .abs()
                .total_cmp(&a[y * (m + 1) + col].abs())
        })?;
        if a[piv * (m + 1) + col].abs() < 1e-12 {
            return None;
        }
        if piv != col {
            for c in 0..=m {
                a.swap(piv * (m + 1) + c, col * (m + 1) + c);
            }
        }
        for r in 0..m {
            if r != col {
                let f = a[r * (m + 1) + col] / a[col * (m + 1) + col];
                if f != 0.0 {
                    for c in col..=m {
                        a[r * (m + 1) + c] -= f * a[col * (m + 1) + c];
                    }
                }
            }
        }
    }
    Some(
        (0..m - 1)
            .map(|r| a[r * (m + 1) + m] / a[r * (m + 1) + r])
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mgda_two_tasks_closed_form() {
        // g1 = (1, 0), g2 = (0, 2): min-norm point a g1 + (1 - a) g2 at a = 4 / 5
        let w = mgda_weights(&[1.0, 0.0, 0.0, 4.0], 1, 2, 1e-12, 100).expect("valid");
        assert!((w[0] - 0.8).abs() < 1e-15 && (w[1] - 0.2).abs() < 1e-15);
        // identical gradients: the midpoint
        let w = mgda_weights(&[1.0, 1.0, 1.0, 1.0], 1, 2, 1e-12, 100).expect("valid");
        assert_eq!(w, vec![0.5, 0.5]);
        assert!(matches!(
            mgda_weights(&[1.0, 2.0, 0.0, 1.0], 1, 2, 1e-12, 100),
            Err(Error::InvalidArgument(_))
        ));
    }

    proptest! {
        #[test]
        fn mgda_satisfies_kkt(seed in any::<u64>(), n in 1usize..7, dim in 1usize..5) {
            let mut state = seed | 1;
            let mut next = || {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                (state % 2001) as f64 / 1000.0 - 1.0
            };
            let grads: Vec<Vec<f64>> = (0..n).map(|_| (0..dim).map(|_| next()).collect()).collect();
            let mut g = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..n {
                    g[i * n + j] = grads[i].iter().zip(&grads[j]).map(|(a, b)| a * b).sum();
                }
            }
            let w = mgda_weights(&g, 1, n, 1e-12, 1_000_000).expect("converges");
            prop_assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            prop_assert!(w.iter().all(|&x| x >= -1e-15));
            let gw: Vec<f64> = (0..n).map(|i| (0..n).map(|j| g[i * n + j] * w[j]).sum()).collect();
            let wgw: f64 = (0..n).map(|i| w[i] * gw[i]).sum();
            // KKT of min w^T G w on the simplex: (G w)_i >= w^T G w for every i
            for &x in &gw {
                prop_assert!(x >= wgw - 1e-9 * wgw.abs().max(1.0), "{x} < {wgw}");
            }
        }
    }
}
