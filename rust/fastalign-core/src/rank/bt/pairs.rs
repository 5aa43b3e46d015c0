//! Bradley-Terry on the pair list: the log-likelihood of comparisons summed per pair
//! ([`Pairs`]), its gradient and curvature as sums over the pairs (in parallel chunks of a
//! fixed size), and the Newton fit with the identifiability check beside it.

use rayon::prelude::*;

use std::sync::atomic::{AtomicBool, Ordering};

use super::graph::{check_identifiable, convergence_scale, log_odds, wins_totals, Pairs};
use crate::rank::newton::{check_args, maximize, Fit, Model};
use crate::{Error, Result};

/// Fits Bradley-Terry strengths (natural-log scale, mean 0).
pub fn fit(p: &Pairs, prior: f64, tol: f64, max_iter: usize) -> Result<Fit> {
    let n = p.n;
    check_args(prior, tol)?;
    if n == 0 {
        return Err(Error::invalid("no items to rank"));
    }
    // the identifiability check runs beside the fit, which it stops when it fails
    let stop = AtomicBool::new(false);
    let (checked, fitted) = rayon::join(
        || {
            let r = check_identifiable(p, prior);
            if r.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            r
        },
        || {
            let (wins, totals) = wins_totals(p);
            let (scale, start) = (convergence_scale(&totals), log_odds(&wins, &totals));
            maximize(
                p,
                n,
                prior,
                tol,
                max_iter,
                &scale,
                Some(&start),
                Some(&stop),
            )
        },
    );
    checked?;
    Ok(fitted)
}

/// Pairs per chunk of the parallel edge sums. Fixed, so that a result never depends on the
/// number of threads: each chunk sums into its own buffer, and the buffers are added in order.
const EDGE_CHUNK: usize = 1 << 15;

impl Pairs {
    /// Whether the edge sums run in parallel chunks: enough pairs, and per-chunk buffers
    /// (`n` values each) small next to the pairs.
    fn chunked(&self) -> bool {
        let e = self.i.len();
        e >= 2 * EDGE_CHUNK && self.n * e.div_ceil(EDGE_CHUNK) <= e
    }

    /// Sums per-pair terms into per-item accumulators: `add(range, acc, slots)` adds the
    /// terms of the pairs in `range` into `acc` (`width * n` values) and may write each
    /// pair's slot (`slots` is the range's part of `per_pair`, empty when `per_pair` is); the
    /// sums are added to `out`.
    fn edge_sums(
        &self,
        width: usize,
        out: &mut [f64],
        per_pair: &mut [f64],
        add: impl Fn(std::ops::Range<usize>, &mut [f64], &mut [f64]) + Sync,
    ) {
        let e = self.i.len();
        if !self.chunked() {
            add(0..e, out, per_pair);
            return;
        }
        let chunks = e.div_ceil(EDGE_CHUNK);
        let slots: Vec<&mut [f64]> = if per_pair.is_empty() {
            (0..chunks).map(|_| <&mut [f64]>::default()).collect()
        } else {
            per_pair.chunks_mut(EDGE_CHUNK).collect()
        };
        let parts: Vec<Vec<f64>> = slots
            .into_par_iter()
            .enumerate()
            .map(|(k, slot)| {
                let mut acc = vec![0.0; width * self.n];
                add(
                    k * EDGE_CHUNK..((k + 1) * EDGE_CHUNK).min(e),
                    &mut acc,
                    slot,
                );
                acc
            })
            .collect();
        for acc in &parts {
            out.iter_mut().zip(acc).for_each(|(o, a)| *o += a);
        }
    }

    /// `out += L_c v`: the graph Laplacian with edge weights `c` (the curvature of any model
    /// whose pair terms depend on `s_i - s_j` only).
    pub(super) fn laplacian(&self, c: &[f64], v: &[f64], out: &mut [f64]) {
        self.edge_sums(1, out, &mut [], |range, acc, _| {
            for e in range {
                let (a, b) = (self.i[e] as usize, self.j[e] as usize);
                let t = c[e] * (v[a] - v[b]);
                acc[a] += t;
                acc[b] -= t;
            }
        });
    }

    /// The gradient and curvature of a model whose pair term depends on `s_i - s_j`:
    /// `term(e, i, j)` gives pair `e`'s gradient with respect to `s_i` and its curvature
    /// (stored in `c[e]`); `g` and `diag` receive the per-item sums.
    pub(super) fn gradient_curvature(
        &self,
        g: &mut [f64],
        diag: &mut [f64],
        c: &mut [f64],
        term: impl Fn(usize, usize, usize) -> (f64, f64) + Sync,
    ) {
        let n = self.n;
        let mut acc = vec![0.0; 2 * n];
        self.edge_sums(2, &mut acc, c, |range, acc, slots| {
            let (ga, da) = acc.split_at_mut(n);
            let first = range.start;
            for e in range {
                let (a, b) = (self.i[e] as usize, self.j[e] as usize);
                let (ge, ce) = term(e, a, b);
                slots[e - first] = ce;
                ga[a] += ge;
                ga[b] -= ge;
                da[a] += ce;
                da[b] += ce;
            }
        });
        g.copy_from_slice(&acc[..n]);
        diag.copy_from_slice(&acc[n..]);
    }
}

/// The Bradley-Terry log-likelihood of summed pairs; its curvature is the graph Laplacian
/// with edge weights `(w_ij + w_ji) q (1 - q)`, `q = sigmoid(s_i - s_j)`.
impl Model for Pairs {
    type Cache = Vec<f64>;

    fn new_cache(&self) -> Vec<f64> {
        vec![0.0; self.i.len()]
    }

    fn evaluate(&self, s: &[f64], g: &mut [f64], diag: &mut [f64], c: &mut Vec<f64>) {
        // sigmoid(s_i - s_j) = e_i / (e_i + e_j) with e = exp(s - mean): one exp per item,
        // not per pair, while no score is more than 300 from the mean (no overflow, and no
        // e_i + e_j underflows); beyond that one exp of -|d| per pair
        let mean = s.iter().sum::<f64>() / s.len().max(1) as f64;
        let spread = s.iter().map(|x| (x - mean).abs()).fold(0.0, f64::max);
        let ex: Vec<f64> = if spread <= 300.0 {
            s.iter().map(|x| (x - mean).exp()).collect()
        } else {
            Vec::new()
        };
        self.gradient_curvature(g, diag, c, |e, a, b| {
            let (q, r) = if ex.is_empty() {
                let d = s[a] - s[b];
                let t = (-d.abs()).exp(); // in (0, 1]
                let (big, small) = (1.0 / (1.0 + t), t / (1.0 + t));
                if d >= 0.0 {
                    (big, small)
                } else {
                    (small, big)
                }
            } else {
                let z = ex[a] + ex[b];
                (ex[a] / z, ex[b] / z)
            }; // sigmoid(d), sigmoid(-d)
            let (wa, wb) = (self.wij[e], self.wji[e]);
            let w = wa + wb;
            (wa - w * q, w * q * r)
        });
    }

    fn apply(&self, c: &Vec<f64>, v: &[f64], out: &mut [f64]) {
        self.laplacian(c, v, out)
    }

    /// Solving each step to `rel` (quadratic convergence) measured faster than to `sqrt(rel)`:
    /// on 3000 items / 1M comparisons 4 iterations instead of 5, in about half the time; 1000
    /// bootstrap fits of 100 items in about 8% less time (see
    /// `benches/results/rank_cpu_2core.md`).
    fn forcing(&self, rel: f64) -> f64 {
        rel
    }

    fn loglik(&self, s: &[f64]) -> f64 {
        let mut total = 0.0;
        for e in 0..self.i.len() {
            let d = s[self.i[e] as usize] - s[self.j[e] as usize];
            // log sigmoid(d), stably; log sigmoid(-d) = log sigmoid(d) - d
            let ls = d.min(0.0) - (-d.abs()).exp().ln_1p();
            total += self.wij[e] * ls + self.wji[e] * (ls - d);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::super::graph::aggregate;
    use super::*;

    /// `cargo test --release -p fastalign-core profile_bt -- --ignored --nocapture`: where the
    /// time of the benchmark's fit (1000 items, 1M comparisons) goes.
    #[test]
    #[ignore]
    fn profile_bt() {
        let (n, m) = (1000usize, 1_000_000usize);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let strength: Vec<f64> = (0..n).map(|i| (i as f64 / n as f64 - 0.5) * 4.0).collect();
        let (mut w, mut l) = (Vec::with_capacity(m), Vec::with_capacity(m));
        while w.len() < m {
            let a = (next() % n as u64) as usize;
            let b = (next() % n as u64) as usize;
            if a == b {
                continue;
            }
            let p = 1.0 / (1.0 + (strength[b] - strength[a]).exp());
            let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
            let (win, lose) = if u < p { (a, b) } else { (b, a) };
            w.push(win as i64);
            l.push(lose as i64);
        }
        for _ in 0..3 {
            let t0 = std::time::Instant::now();
            let p = aggregate(&w, &l, None, None, None).expect("agg");
            let t1 = std::time::Instant::now();
            check_identifiable(&p, 0.0).expect("ok");
            let t2 = std::time::Instant::now();
            let f = fit(&p, 0.0, 1e-10, 100).expect("fit");
            let t3 = std::time::Instant::now();
            let mut c = p.new_cache();
            let (mut g, mut d) = (vec![0.0; n], vec![0.0; n]);
            p.evaluate(&f.scores, &mut g, &mut d, &mut c);
            let t4 = std::time::Instant::now();
            let mut out = vec![0.0; n];
            p.laplacian(&c, &f.scores, &mut out);
            let t5 = std::time::Instant::now();
            println!(
                "pairs {} aggregate {:?} identifiable {:?} fit {:?} ({} iterations) evaluate {:?} \
                 laplacian {:?}",
                p.i.len(),
                t1 - t0,
                t2 - t1,
                t3 - t2,
                f.iterations,
                t4 - t3,
                t5 - t4
            );
        }
    }
    #[test]
    fn chunked_edge_sums_equal_a_plain_loop_for_any_thread_count() {
        // every pair of 600 items: enough pairs for the parallel chunks
        let n = 600;
        let mut p = Pairs {
            n,
            ..Pairs::default()
        };
        for a in 0..n as u32 {
            for b in a + 1..n as u32 {
                p.i.push(a);
                p.j.push(b);
                p.wij.push(f64::from((a * 7 + b) % 5));
                p.wji.push(f64::from((a + b * 3) % 4) + 0.5);
                p.tie.push(0.0);
            }
        }
        assert!(p.chunked());
        let s: Vec<f64> = (0..n)
            .map(|i| ((i * 37) % 101) as f64 / 50.0 - 1.0)
            .collect();
        let run = |threads| {
            crate::sys::with_threads(Some(threads), || {
                let (mut g, mut d, mut c) = (vec![0.0; n], vec![0.0; n], p.new_cache());
                p.evaluate(&s, &mut g, &mut d, &mut c);
                let mut out = vec![1.0; n];
                p.laplacian(&c, &s, &mut out);
                Ok((g, d, c, out))
            })
            .expect("pool")
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
        let (mut g, mut d, mut out) = (vec![0.0; n], vec![0.0; n], vec![1.0; n]);
        for e in 0..p.i.len() {
            let (a, b) = (p.i[e] as usize, p.j[e] as usize);
            let q = 1.0 / (1.0 + (s[b] - s[a]).exp());
            let w = p.wij[e] + p.wji[e];
            let ce = w * q * (1.0 - q);
            assert!((one.2[e] - ce).abs() <= 1e-15 * w);
            g[a] += p.wij[e] - w * q;
            g[b] -= p.wij[e] - w * q;
            d[a] += ce;
            d[b] += ce;
            out[a] += ce * (s[a] - s[b]);
            out[b] -= ce * (s[a] - s[b]);
        }
        for k in 0..n {
            assert!((one.0[k] - g[k]).abs() <= 1e-9, "{k}");
            assert!((one.1[k] - d[k]).abs() <= 1e-9, "{k}");
            assert!((one.3[k] - out[k]).abs() <= 1e-9, "{k}");
        }
    }

    #[test]
    fn two_items_closed_form() {
        // 3 wins of 0 over 1, 1 of 1 over 0: s0 - s1 = ln 3
        let p = aggregate(&[0, 0, 0, 1], &[1, 1, 1, 0], None, None, None).expect("agg");
        let f = fit(&p, 0.0, 1e-14, 100).expect("fit");
        assert!(f.converged);
        assert!((f.scores[0] - f.scores[1] - 3f64.ln()).abs() < 1e-12);
        assert!((f.scores[0] + f.scores[1]).abs() < 1e-15);
    }

    #[test]
    fn ties_count_half_each_way_and_weights_repeat_rows() {
        let a = aggregate(
            &[0, 1, 2, 0],
            &[1, 2, 0, 2],
            Some(&[2.0, 1.0, 1.0, 1.0]),
            Some(&[false, false, false, true]),
            None,
        )
        .expect("a");
        let b = aggregate(
            &[0, 0, 1, 2, 0, 2],
            &[1, 1, 2, 0, 2, 0],
            Some(&[1.0, 1.0, 1.0, 1.0, 0.5, 0.5]),
            None,
            None,
        )
        .expect("b");
        let (fa, fb) = (
            fit(&a, 0.0, 1e-12, 100).expect("fa"),
            fit(&b, 0.0, 1e-12, 100).expect("fb"),
        );
        for (x, y) in fa.scores.iter().zip(&fb.scores) {
            assert!((x - y).abs() < 1e-12);
        }
    }

    #[test]
    fn separable_and_disconnected_data_are_errors_without_a_prior() {
        let p = aggregate(&[0, 1], &[1, 2], None, None, None).expect("agg"); // 0 never loses
        let e = fit(&p, 0.0, 1e-10, 100).expect_err("separable");
        assert!(e.to_string().contains("never lose"), "{e}");
        let p = aggregate(&[0, 1, 2, 3], &[1, 0, 3, 2], None, None, None).expect("agg");
        let e = fit(&p, 0.0, 1e-10, 100).expect_err("disconnected");
        assert!(e.to_string().contains("disconnected"), "{e}");
        // with a prior both have a unique maximum
        assert!(fit(&p, 0.1, 1e-10, 100).expect("prior").converged);
    }
}
