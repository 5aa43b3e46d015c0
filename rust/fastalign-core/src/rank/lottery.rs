//! The maximal lottery of a pairwise-preference matrix: the optimal mixed strategy of the
//! symmetric zero-sum game with payoffs `M = P - P^T` (a lottery `p` that no item beats in
//! expectation: `(M p)_j <= 0` for every item `j`).
//!
//! Solved as the linear program `max sum(y) s.t. (M + c) y <= 1, y >= 0` with `c` making every
//! payoff positive (the slack basis is feasible, so no phase 1), by a dense simplex with
//! Dantzig's rule (lowest index on ties, Bland's rule after a run of degenerate pivots), then
//! `p = y / sum(y)`. The result is checked against its definition before it is returned.

use crate::{Error, Result};

/// The maximal lottery of `p` (row-major `m x m`, `p[i][j]` = weight of "i preferred to j").
pub fn maximal_lottery(p: &[f64], m: usize) -> Result<Vec<f64>> {
    super::check_matrix(p, m, true)?;
    if m == 1 {
        return Ok(vec![1.0]);
    }
    let raw = |i: usize, j: usize| p[i * m + j] - p[j * m + i];
    let big = (0..m * m)
        .map(|k| raw(k / m, k % m).abs())
        .fold(0.0, f64::max);
    if big == 0.0 {
        // no margins at all: every lottery is maximal; the uniform one is returned
        return Ok(vec![1.0 / m as f64; m]);
    }
    // margins scaled to [-1, 1] (any scale of P gives the same lottery), shifted positive
    let margin = |i: usize, j: usize| raw(i, j) / big;
    let c = 2.0;
    // tableau rows: [A | I | rhs], objective row: reduced costs
    let width = 2 * m + 1;
    let mut t = vec![0.0f64; m * width];
    for i in 0..m {
        for j in 0..m {
            t[i * width + j] = (margin(i, j) + c) / c; // scaled: entries in (0, 2]
        }
        t[i * width + m + i] = 1.0;
        t[i * width + 2 * m] = 1.0;
    }
    let mut cost = vec![0.0f64; 2 * m];
    cost[..m].iter_mut().for_each(|x| *x = -1.0);
    let mut basis: Vec<usize> = (m..2 * m).collect();
    let eps = 1e-12;
    let mut degenerate_run = 0usize;
    let max_pivots = 50 * m + 1000;
    for _ in 0..max_pivots {
        // entering column
        let bland = degenerate_run > 2 * m;
        let mut enter = None;
        let mut best = -eps;
        for (k, &r) in cost.iter().enumerate() {
            if r < best {
                enter = Some(k);
                if bland {
                    break;
                }
                best = r;
            }
        }
        let Some(e) = enter else {
            return finish(&t, &basis, m, width, p);
        };
        // ratio test
        let mut leave = None;
        let mut best_ratio = f64::INFINITY;
        for i in 0..m {
            let a = t[i * width + e];
            if a > eps {
                let ratio = t[i * width + 2 * m] / a;
                if ratio < best_ratio - 1e-15
                    || (ratio <= best_ratio + 1e-15
                        && leave.is_some_and(|l: usize| basis[i] < basis[l]))
                {
                    best_ratio = ratio;
                    leave = Some(i);
                }
            }
        }
        let Some(l) = leave else {
            return Err(Error::NoConvergence(
                "maximal lottery: the linear program is unbounded (numerical trouble)".into(),
            ));
        };
        degenerate_run = if best_ratio <= 1e-15 {
            degenerate_run + 1
        } else {
            0
        };
        // pivot on (l, e)
        let pv = t[l * width + e];
        for x in &mut t[l * width..(l + 1) * width] {
            *x /= pv;
        }
        let pivot_row: Vec<f64> = t[l * width..(l + 1) * width].to_vec();
        for i in 0..m {
            if i == l {
                continue;
            }
            let f = t[i * width + e];
            if f != 0.0 {
                for (x, y) in t[i * width..(i + 1) * width].iter_mut().zip(&pivot_row) {
                    *x -= f * y;
                }
            }
        }
        let f = cost[e];
        for (x, y) in cost.iter_mut().zip(&pivot_row[..2 * m]) {
            *x -= f * y;
        }
        basis[l] = e;
    }
    Err(Error::NoConvergence(format!(
        "maximal lottery: the simplex did not finish in {max_pivots} pivots"
    )))
}

fn finish(t: &[f64], basis: &[usize], m: usize, width: usize, p: &[f64]) -> Result<Vec<f64>> {
    let mut y = vec![0.0f64; m];
    for (i, &b) in basis.iter().enumerate() {
        if b < m {
            y[b] = t[i * width + 2 * m].max(0.0);
        }
    }
    let total: f64 = y.iter().sum();
    if total <= 0.0 {
        return Err(Error::NoConvergence(
            "maximal lottery: empty solution".into(),
        ));
    }
    y.iter_mut().for_each(|v| *v /= total);
    // the definition: no item beats the lottery in expectation (relative to the margins)
    let scale = (0..m * m)
        .map(|k| (p[k] - p[(k % m) * m + k / m]).abs())
        .fold(0.0f64, f64::max);
    let worst = (0..m)
        .map(|j| {
            (0..m)
                .map(|i| (p[j * m + i] - p[i * m + j]) * y[i])
                .sum::<f64>()
        })
        .fold(f64::NEG_INFINITY, f64::max);
    if worst > 1e-9 * scale {
        return Err(Error::NoConvergence(format!(
            "maximal lottery: the solution is beaten by {worst:e} (numerical trouble)"
        )));
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condorcet_winner_gets_everything() {
        // item 2 beats both others
        let p = [0.0, 3.0, 1.0, 2.0, 0.0, 1.0, 4.0, 5.0, 0.0];
        assert_eq!(maximal_lottery(&p, 3).expect("ml"), [0.0, 0.0, 1.0]);
    }

    #[test]
    fn rock_paper_scissors_is_uniform() {
        let p = [0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0];
        let q = maximal_lottery(&p, 3).expect("ml");
        for v in q {
            assert!((v - 1.0 / 3.0).abs() < 1e-12);
        }
    }

    #[test]
    fn random_games_give_equilibria() {
        let mut state = 7u64;
        for m in [2usize, 5, 17, 40] {
            let p = crate::rank::testdata::matrix(m, 100, &mut state);
            let q = maximal_lottery(&p, m).expect("ml");
            assert!((q.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            for j in 0..m {
                let v: f64 = (0..m).map(|i| (p[j * m + i] - p[i * m + j]) * q[i]).sum();
                assert!(v <= 1e-9, "m={m}: item {j} beats the lottery by {v}");
            }
        }
    }

    #[test]
    fn any_scale_gives_the_same_lottery() {
        let p = [0.0, 3.0, 1.0, 2.0, 0.0, 1.0, 4.0, 5.0, 0.0];
        for scale in [1e-14, 1e-3, 1.0, 1e12] {
            let q: Vec<f64> = p.iter().map(|v| v * scale).collect();
            assert_eq!(
                maximal_lottery(&q, 3).expect("ml"),
                [0.0, 0.0, 1.0],
                "{scale}"
            );
        }
        assert_eq!(maximal_lottery(&[0.0; 4], 2).expect("ml"), [0.5, 0.5]);
    }

    #[test]
    fn bad_input() {
        assert!(maximal_lottery(&[], 0).is_err());
        assert!(maximal_lottery(&[0.0, f64::NAN, 1.0, 0.0], 2).is_err());
        assert!(maximal_lottery(&[0.0, -1.0, 1.0, 0.0], 2).is_err());
        assert_eq!(maximal_lottery(&[0.0], 1).expect("one"), [1.0]);
    }
}
