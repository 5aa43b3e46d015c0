//! Bradley-Terry with the Davidson (1970) tie model over the pair list: strengths and a tie
//! parameter fitted together.

use super::graph::{check_identifiable, scale, Pairs};
use super::pairs::fit;
use crate::rank::newton::{check_args, maximize, Fit, Model};
use crate::{Error, Result};

/// The Davidson (1970) tie model at a fixed tie parameter `nu`: with `D = exp(d/2) +
/// exp(-d/2) + nu` and `d = s_i - s_j`, P(i wins) = exp(d/2) / D, P(tie) = nu / D.
struct Davidson<'a> {
    p: &'a Pairs,
    nu: f64,
}

impl Davidson<'_> {
    /// Per pair: (decisive wins of i, of j, ties, all).
    #[inline]
    fn counts(&self, e: usize) -> (f64, f64, f64, f64) {
        let t = self.p.tie[e];
        let a = (self.p.wij[e] - 0.5 * t).max(0.0);
        let b = (self.p.wji[e] - 0.5 * t).max(0.0);
        (a, b, t, a + b + t)
    }

    /// (log D, dlogD/dd, d2logD/dd2) at d, without overflow.
    #[inline]
    fn log_d(&self, d: f64) -> (f64, f64, f64) {
        let u = (-0.5 * d.abs()).exp(); // exp(-|d|/2)
        let t = u * u;
        let q = 1.0 + t + self.nu * u;
        let first = d.signum() * (1.0 - t) / (2.0 * q);
        let second = (t + 0.25 * self.nu * u * (1.0 + t)) / (q * q);
        (0.5 * d.abs() + q.ln(), first, second)
    }
}

impl Model for Davidson<'_> {
    type Cache = Vec<f64>;

    fn new_cache(&self) -> Vec<f64> {
        vec![0.0; self.p.i.len()]
    }

    fn evaluate(&self, s: &[f64], g: &mut [f64], diag: &mut [f64], c: &mut Vec<f64>) {
        self.p.gradient_curvature(g, diag, c, |e, a, b| {
            let (wa, wb, _, w) = self.counts(e);
            let (_, d1, d2) = self.log_d(s[a] - s[b]);
            (0.5 * (wa - wb) - w * d1, w * d2)
        });
    }

    fn apply(&self, c: &Vec<f64>, v: &[f64], out: &mut [f64]) {
        self.p.laplacian(c, v, out)
    }

    fn loglik(&self, s: &[f64]) -> f64 {
        let ln_nu = self.nu.ln();
        let mut total = 0.0;
        for e in 0..self.p.i.len() {
            let d = s[self.p.i[e] as usize] - s[self.p.j[e] as usize];
            let (wa, wb, t, w) = self.counts(e);
            let tie_term = if t > 0.0 { t * ln_nu } else { 0.0 };
            total += 0.5 * d * (wa - wb) + tie_term - w * self.log_d(d).0;
        }
        total
    }
}

/// Bradley-Terry with the Davidson tie model: strengths and the tie parameter `nu`, the latter
/// by maximizing the profile likelihood over `ln nu` (golden-section search on [-12, 6], each
/// step a Newton fit of the strengths warm-started from the last). Without ties `nu` is 0
/// and the fit is plain Bradley-Terry.
pub fn fit_davidson(p: &Pairs, prior: f64, tol: f64, max_iter: usize) -> Result<(Fit, f64)> {
    if p.tie.iter().all(|&t| t == 0.0) {
        return Ok((fit(p, prior, tol, max_iter)?, 0.0));
    }
    check_args(prior, tol)?;
    if p.n == 0 {
        return Err(Error::invalid("no items to rank"));
    }
    check_identifiable(p, prior)?;
    let scale = scale(p);
    let mut warm: Option<Vec<f64>> = None;
    let mut profile = |theta: f64| -> (f64, Fit) {
        let model = Davidson { p, nu: theta.exp() };
        let f = maximize(
            &model,
            p.n,
            prior,
            tol,
            max_iter,
            &scale,
            warm.as_deref(),
            None,
        );
        warm = Some(f.scores.clone());
        let value =
            model.loglik(&f.scores) - 0.5 * prior * f.scores.iter().map(|x| x * x).sum::<f64>();
        (value, f)
    };
    let golden = 0.5 * (5f64.sqrt() - 1.0);
    let (mut lo, mut hi) = (-12.0f64, 6.0f64);
    let mut x1 = hi - golden * (hi - lo);
    let mut x2 = lo + golden * (hi - lo);
    let (mut f1, _) = profile(x1);
    let (mut f2, _) = profile(x2);
    while hi - lo > 1e-7 {
        if f1 >= f2 {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - golden * (hi - lo);
            f1 = profile(x1).0;
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + golden * (hi - lo);
            f2 = profile(x2).0;
        }
    }
    let theta = 0.5 * (lo + hi);
    let (_, f) = profile(theta);
    Ok((f, theta.exp()))
}

#[cfg(test)]
mod tests {
    use super::super::graph::aggregate;
    use super::*;

    #[test]
    fn davidson_without_ties_is_bradley_terry_and_gradient_is_exact() {
        let (w, l) = ([0i64, 1, 2, 0, 2, 1], [1i64, 2, 0, 2, 1, 0]);
        let p = aggregate(&w, &l, None, None, None).expect("agg");
        let (f, nu) = fit_davidson(&p, 0.0, 1e-12, 100).expect("dav");
        assert_eq!(nu, 0.0);
        assert_eq!(f, fit(&p, 0.0, 1e-12, 100).expect("bt"));
        // with ties: the gradient matches finite differences of the log-likelihood
        let ties = [true, false, false, true, false, false];
        let p = aggregate(
            &w,
            &l,
            Some(&[1.0, 2.0, 1.0, 1.0, 3.0, 1.0]),
            Some(&ties),
            None,
        )
        .expect("agg");
        let model = Davidson { p: &p, nu: 0.7 };
        let s = [0.3, -0.5, 0.2];
        let (mut g, mut diag, mut c) = (vec![0.0; 3], vec![0.0; 3], model.new_cache());
        model.evaluate(&s, &mut g, &mut diag, &mut c);
        for k in 0..3 {
            let (mut up, mut down) = (s, s);
            up[k] += 1e-6;
            down[k] -= 1e-6;
            let fd = (model.loglik(&up) - model.loglik(&down)) / 2e-6;
            assert!((fd - g[k]).abs() < 1e-7, "{k}: {fd} vs {}", g[k]);
        }
        let (f, nu) = fit_davidson(&p, 0.0, 1e-10, 100).expect("dav");
        assert!(f.converged && nu > 0.0);
    }
}
