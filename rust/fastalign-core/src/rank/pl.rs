//! Plackett-Luce maximum likelihood over rankings (best first), by the Newton-CG driver.
//!
//! A ranking `r_1 > r_2 > ... > r_L` has likelihood `prod_t exp(s[r_t]) / sum_{u >= t}
//! exp(s[r_u])` over its stages `t < L`. The curvature of a stage is the covariance of its
//! choice probabilities, applied without forming it. Without a prior the maximum exists only
//! when the "ranked above" graph is strongly connected (checked as for Bradley-Terry, on
//! consecutive positions, which reach the same items).

use super::bt::graph::{aggregate, beat_components};
use super::newton::{check_args, maximize, Fit, Model};
use crate::{Error, Result};

/// Validated rankings: `items[offsets[k]..offsets[k + 1]]` is ranking `k`, best first.
#[derive(Clone, Debug)]
pub struct Rankings {
    pub n: usize,
    pub items: Vec<u32>,
    pub offsets: Vec<usize>,
}

/// Checks ids (in range, no repeats within a ranking) and offsets (from 0, non-decreasing,
/// ending at the number of items).
pub fn rankings(items: &[i64], offsets: &[i64], n_items: Option<usize>) -> Result<Rankings> {
    if offsets.is_empty() || offsets[0] != 0 || *offsets.last().unwrap_or(&0) != items.len() as i64
    {
        return Err(Error::invalid(format!(
            "offsets must start at 0 and end at the number of ranked items ({})",
            items.len()
        )));
    }
    if let Some(k) = offsets.windows(2).position(|w| w[1] < w[0]) {
        return Err(Error::invalid(format!("offsets decrease at ranking {k}")));
    }
    let n = match n_items {
        Some(n) => n,
        None => (items.iter().copied().max().unwrap_or(-1) + 1).max(0) as usize,
    };
    super::check_items(n)?;
    let mut last_seen = crate::mem::vec_filled(n, usize::MAX, || {
        format!(
            "a table of {} items (n_items, or the largest id + 1)",
            crate::error::grouped(n as u128)
        )
    })?;
    for k in 0..offsets.len() - 1 {
        for pos in offsets[k] as usize..offsets[k + 1] as usize {
            let v = items[pos];
            if v < 0 || v as u64 >= n as u64 {
                return Err(Error::invalid(format!(
                    "ranking {k}: item id {v} out of range [0, {n})"
                )));
            }
            if last_seen[v as usize] == k {
                return Err(Error::invalid(format!(
                    "ranking {k}: item {v} appears twice"
                )));
            }
            last_seen[v as usize] = k;
        }
    }
    Ok(Rankings {
        n,
        items: items.iter().map(|&v| v as u32).collect(),
        offsets: offsets.iter().map(|&o| o as usize).collect(),
    })
}

impl Rankings {
    fn each(&self) -> impl Iterator<Item = &[u32]> {
        self.offsets
            .windows(2)
            .map(|w| &self.items[w[0]..w[1]])
            .filter(|r| r.len() > 1)
    }

    /// The choice probabilities of all stages (what the curvature cache holds): a ranking of
    /// `L` items has stages of `L, L - 1, ..., 2` choices.
    fn stage_cells(&self) -> u128 {
        self.each()
            .map(|r| {
                let l = r.len() as u128;
                l * (l + 1) / 2 - 1
            })
            .sum()
    }
}

/// `e[u] = exp(s[r_u] - max)` and the stage sums `suffix[t] = sum_{u >= t} e[u]`, summed from
/// the end (no cancellation); returns the max.
fn stage_sums(r: &[u32], s: &[f64], e: &mut Vec<f64>, suffix: &mut Vec<f64>) -> f64 {
    let mx = r
        .iter()
        .map(|&i| s[i as usize])
        .fold(f64::NEG_INFINITY, f64::max);
    e.clear();
    e.extend(r.iter().map(|&i| (s[i as usize] - mx).exp()));
    suffix.clear();
    suffix.resize(r.len(), 0.0);
    let mut acc = 0.0;
    for u in (0..r.len()).rev() {
        acc += e[u];
        suffix[u] = acc;
    }
    mx
}

impl Model for Rankings {
    /// The choice probabilities of every stage, in order.
    type Cache = Vec<f64>;

    fn new_cache(&self) -> Vec<f64> {
        // room for every stage's probabilities, never regrown ([`fit`] checked it can be had)
        Vec::with_capacity(self.stage_cells() as usize)
    }

    fn evaluate(&self, s: &[f64], g: &mut [f64], diag: &mut [f64], pi: &mut Vec<f64>) {
        g.fill(0.0);
        diag.fill(0.0);
        pi.clear();
        let (mut e, mut suffix) = (Vec::new(), Vec::new());
        for r in self.each() {
            stage_sums(r, s, &mut e, &mut suffix);
            for t in 0..r.len() - 1 {
                g[r[t] as usize] += 1.0;
                for u in t..r.len() {
                    let p = e[u] / suffix[t];
                    g[r[u] as usize] -= p;
                    diag[r[u] as usize] += p * (1.0 - p);
                    pi.push(p);
                }
            }
        }
    }

    fn apply(&self, pi: &Vec<f64>, v: &[f64], out: &mut [f64]) {
        let mut k = 0;
        for r in self.each() {
            for t in 0..r.len() - 1 {
                let stage = &pi[k..k + r.len() - t];
                let items = &r[t..];
                let mean: f64 = stage
                    .iter()
                    .zip(items)
                    .map(|(p, &i)| p * v[i as usize])
                    .sum();
                for (p, &i) in stage.iter().zip(items) {
                    out[i as usize] += p * (v[i as usize] - mean);
                }
                k += r.len() - t;
            }
        }
    }

    fn loglik(&self, s: &[f64]) -> f64 {
        let (mut total, mut e, mut suffix) = (0.0, Vec::new(), Vec::new());
        for r in self.each() {
            let mx = stage_sums(r, s, &mut e, &mut suffix);
            for t in 0..r.len() - 1 {
                total += (s[r[t] as usize] - mx) - suffix[t].ln();
            }
        }
        total
    }
}

/// Fits Plackett-Luce strengths (natural-log scale, mean 0 without a prior).
pub fn fit(rk: &Rankings, prior: f64, tol: f64, max_iter: usize) -> Result<Fit> {
    check_args(prior, tol)?;
    let n = rk.n;
    if n == 0 {
        return Err(Error::invalid("no items to rank"));
    }
    super::check_fit_room(n, 1)?;
    // the curvature caches of the iterate and of the trial point: quadratic in a ranking's
    // length
    let cells = rk.stage_cells();
    crate::mem::check_room(crate::mem::bytes_of::<f64>(2 * cells), || {
        let longest = rk.each().map(<[u32]>::len).max().unwrap_or(0);
        format!(
            "rankings whose stages hold {} choice probabilities (the longest ranks {} items)",
            crate::error::grouped(cells),
            crate::error::grouped(longest as u128)
        )
    })?;
    let mut stages = vec![0.0f64; n];
    for r in rk.each() {
        for (t, &i) in r.iter().enumerate() {
            stages[i as usize] += (t + 1).min(r.len() - 1) as f64;
        }
    }
    if prior == 0.0 && n > 1 {
        // consecutive positions as comparisons reach what all pairs reach
        let (mut w, mut l) = (Vec::new(), Vec::new());
        for r in rk.each() {
            for pair in r.windows(2) {
                w.push(pair[0] as i64);
                l.push(pair[1] as i64);
            }
        }
        let pairs = aggregate(&w, &l, None, None, Some(n))?;
        let (comp, count) = beat_components(&pairs);
        if count > 1 {
            let first: Vec<usize> = (0..n).filter(|&i| comp[i] != comp[0]).take(10).collect();
            return Err(Error::invalid(format!(
                "Plackett-Luce has no maximum without a prior: the items split into {count} \
                 groups that are never ranked both above and below each other (e.g. item 0 vs \
                 items {first:?}); pass prior > 0"
            )));
        }
    }
    let scale: Vec<f64> = stages.iter().map(|c| c.max(1.0)).collect();
    Ok(maximize(rk, n, prior, tol, max_iter, &scale, None, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rank::bt;

    #[test]
    fn pairs_are_bradley_terry() {
        let (w, l) = ([0i64, 0, 1, 2, 2, 1], [1i64, 2, 2, 0, 1, 0]);
        let items: Vec<i64> = w.iter().zip(&l).flat_map(|(&a, &b)| [a, b]).collect();
        let offsets: Vec<i64> = (0..=w.len() as i64).map(|k| 2 * k).collect();
        let pl = fit(
            &rankings(&items, &offsets, None).expect("rk"),
            0.0,
            1e-12,
            100,
        )
        .expect("pl");
        let bt = bt::fit(
            &bt::aggregate(&w, &l, None, None, None).expect("agg"),
            0.0,
            1e-12,
            100,
        )
        .expect("bt");
        for (a, b) in pl.scores.iter().zip(&bt.scores) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn bad_rankings() {
        assert!(rankings(&[0, 1, 0], &[0, 3], None).is_err()); // repeat
        assert!(rankings(&[0, 1], &[0, 1], None).is_err()); // offsets do not end at len
        assert!(rankings(&[0, -1], &[0, 2], None).is_err());
        assert!(rankings(&[0, 1, 2], &[0, 2, 1, 3], None).is_err());
        let rk = rankings(&[0, 1, 1, 2], &[0, 2, 4], None).expect("rk"); // 0 > 1 > 2: separable
        assert!(fit(&rk, 0.0, 1e-10, 100).is_err());
        assert!(fit(&rk, 0.5, 1e-10, 100).expect("prior").converged);
    }

    #[test]
    fn a_ranking_too_long_for_memory_is_an_error_not_an_abort() {
        // one ranking of 2^22 items: its stages hold 2^22 (2^22 + 1) / 2 - 1 probabilities
        let items: Vec<i64> = (0..1 << 22).collect();
        let rk = rankings(&items, &[0, 1 << 22], None).expect("rk");
        assert_eq!(rk.stage_cells(), 8_796_095_119_359);
        match fit(&rk, 1.0, 1e-10, 100) {
            Err(Error::Memory { what, bytes }) => {
                assert!(
                    what.contains("8,796,095,119,359 choice probabilities"),
                    "{what}"
                );
                assert!(what.contains("the longest ranks 4,194,304 items"), "{what}");
                assert_eq!(bytes, 2 * 8 * 8_796_095_119_359);
            }
            other => panic!("unexpected {other:?}"),
        }
        let short = rankings(&[0, 1, 2, 2, 0], &[0, 3, 5], None).expect("rk");
        assert_eq!(short.stage_cells(), 5 + 2);
    }
}
