//! Newton's method for the concave (penalized) log-likelihoods of the ranking models, with
//! matrix-free Jacobi-preconditioned conjugate-gradient steps and a line search that needs the
//! objective only when the directional derivative cannot decide.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Error, Result};

/// A log-likelihood over item scores whose negative Hessian (the curvature) can be applied
/// to a vector without forming it.
pub trait Model {
    /// What one evaluation leaves for [`Model::apply`] (the curvature at that point).
    type Cache;
    fn new_cache(&self) -> Self::Cache;
    /// Writes the gradient of the log-likelihood into `g` and the curvature's diagonal into
    /// `diag`; fills `cache`.
    fn evaluate(&self, s: &[f64], g: &mut [f64], diag: &mut [f64], cache: &mut Self::Cache);
    /// `out += C v`, `C` the curvature at the point `cache` was made at.
    fn apply(&self, cache: &Self::Cache, v: &[f64], out: &mut [f64]);
    /// The log-likelihood at `s`.
    fn loglik(&self, s: &[f64]) -> f64;
    /// How far each Newton step's conjugate-gradient solve goes: to a residual of this
    /// fraction of the gradient's, given the largest relative gradient component `rel`.
    /// `sqrt(rel)` (superlinear convergence) by default; a model whose curvature products
    /// cost little next to an evaluation solves to `rel` (quadratic: fewer evaluations).
    fn forcing(&self, rel: f64) -> f64 {
        rel.sqrt()
    }
}

/// The result of a fit.
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    pub scores: Vec<f64>,
    pub converged: bool,
    pub iterations: usize,
    /// The largest relative gradient component at the end.
    pub gradient: f64,
}

/// Checks the common arguments.
pub fn check_args(prior: f64, tol: f64) -> Result<()> {
    if !(prior.is_finite() && prior >= 0.0) {
        return Err(Error::invalid(format!(
            "prior must be finite and >= 0, got {prior}"
        )));
    }
    if !(tol.is_finite() && tol > 0.0) {
        return Err(Error::invalid(format!("tol must be > 0, got {tol}")));
    }
    Ok(())
}

struct At<C> {
    g: Vec<f64>,
    diag: Vec<f64>,
    cache: C,
}

/// Maximizes `loglik(s) - prior/2 ||s||^2` from `start` (default 0). Without a prior the scores are
/// defined up to a constant (the caller has checked that the maximum exists, or checks it
/// beside the fit and sets `stop` when it does not: the fit then gives up at its next
/// iteration) and are returned with mean 0. Converged when every `|gradient_i| / scale_i <=
/// tol`.
#[allow(clippy::too_many_arguments)]
pub fn maximize<M: Model>(
    model: &M,
    n: usize,
    prior: f64,
    tol: f64,
    max_iter: usize,
    scale: &[f64],
    start: Option<&[f64]>,
    stop: Option<&AtomicBool>,
) -> Fit {
    let new_at = || At {
        g: vec![0.0; n],
        diag: vec![0.0; n],
        cache: model.new_cache(),
    };
    let eval = |s: &[f64], at: &mut At<M::Cache>| {
        model.evaluate(s, &mut at.g, &mut at.diag, &mut at.cache);
        for ((g, d), x) in at.g.iter_mut().zip(at.diag.iter_mut()).zip(s) {
            *g -= prior * x;
            *d += prior;
        }
    };
    let value = |s: &[f64]| model.loglik(s) - 0.5 * prior * s.iter().map(|x| x * x).sum::<f64>();
    let mut s = start.map_or_else(|| vec![0.0f64; n], <[f64]>::to_vec);
    let (mut at, mut trial_at) = (new_at(), new_at());
    eval(&s, &mut at);
    let mut rel = f64::INFINITY;
    for it in 0..=max_iter {
        // NaN when a gradient component is (weights beyond f64's range): not converged
        rel =
            at.g.iter()
                .zip(scale)
                .map(|(g, s)| (g / s).abs())
                .fold(0.0, |m: f64, x| {
                    if m.is_nan() || x.is_nan() {
                        f64::NAN
                    } else {
                        m.max(x)
                    }
                });
        let stopped = stop.is_some_and(|s| s.load(Ordering::Relaxed));
        if rel <= tol || it == max_iter || stopped || rel.is_nan() {
            return Fit {
                scores: center(s, prior),
                converged: rel <= tol,
                iterations: it,
                gradient: rel,
            };
        }
        let d = cg(
            |v, out| {
                out.iter_mut().zip(v).for_each(|(o, x)| *o = prior * x);
                model.apply(&at.cache, v, out);
            },
            &at.diag,
            prior == 0.0,
            &at.g,
            model.forcing(rel),
        );
        // the slope at s along d (> 0: d is an ascent direction)
        let rise: f64 = at.g.iter().zip(&d).map(|(g, y)| g * y).sum();
        let mut step = 1.0;
        loop {
            let trial: Vec<f64> = s.iter().zip(&d).map(|(x, y)| x + step * y).collect();
            eval(&trial, &mut trial_at);
            // concave along d: still rising at the trial point means it rose all the way
            let slope: f64 = trial_at.g.iter().zip(&d).map(|(g, y)| g * y).sum();
            // concave along d, so the objective at the trial point is at least its value at s
            // minus step * max(0, -slope): a slope of -1e-9 * rise (rounding, at the end of a
            // fit) loses at most 1e-9 of the first-order gain, not worth two log-likelihoods
            if slope >= -1e-9 * rise || step < 1e-10 || value(&trial) >= value(&s) {
                s = trial;
                std::mem::swap(&mut at, &mut trial_at);
                break;
            }
            step *= 0.5;
        }
    }
    Fit {
        scores: center(s, prior),
        converged: false,
        iterations: max_iter,
        gradient: rel,
    }
}

/// Without a prior the scores are defined up to a constant: report them with mean 0.
fn center(mut s: Vec<f64>, prior: f64) -> Vec<f64> {
    if prior == 0.0 && !s.is_empty() {
        let mean = s.iter().sum::<f64>() / s.len() as f64;
        s.iter_mut().for_each(|x| *x -= mean);
    }
    s
}

/// Solves `C x = b` (`C` positive semi-definite, null space the constants when `project`) to a
/// relative residual `forcing` (clamped to [1e-14, 0.5]), which tightens as the gradient
/// shrinks (inexact Newton).
fn cg(
    apply: impl Fn(&[f64], &mut [f64]),
    diag: &[f64],
    project: bool,
    b: &[f64],
    forcing: f64,
) -> Vec<f64> {
    let n = b.len();
    let proj = |v: &mut [f64]| {
        if project {
            let mean = v.iter().sum::<f64>() / n as f64;
            v.iter_mut().for_each(|x| *x -= mean);
        }
    };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let inv: Vec<f64> = diag
        .iter()
        .map(|d| if *d > 0.0 { 1.0 / d } else { 1.0 })
        .collect();
    let mut x = vec![0.0; n];
    // solved for b / max|b| (and the result scaled back), so that no dot product under- or
    // overflows at weights of any scale (1e-300 and 1e300 tested)
    let big = b.iter().fold(0.0, |m: f64, v| m.max(v.abs()));
    if big == 0.0 || !big.is_finite() {
        return x;
    }
    let mut r: Vec<f64> = b.iter().map(|v| v / big).collect();
    proj(&mut r);
    let bnorm = dot(&r, &r).sqrt();
    if bnorm == 0.0 {
        return x;
    }
    let target = bnorm * forcing.clamp(1e-14, 0.5);
    let mut z: Vec<f64> = r.iter().zip(&inv).map(|(r, i)| r * i).collect();
    proj(&mut z);
    let mut dir = z.clone();
    let mut rz = dot(&r, &z);
    let mut ad = vec![0.0; n];
    for _ in 0..n.clamp(10, 500) {
        apply(&dir, &mut ad);
        let dad = dot(&dir, &ad);
        if dad <= 0.0 {
            break;
        }
        let alpha = rz / dad;
        x.iter_mut().zip(&dir).for_each(|(x, d)| *x += alpha * d);
        r.iter_mut().zip(&ad).for_each(|(r, a)| *r -= alpha * a);
        if dot(&r, &r).sqrt() <= target {
            break;
        }
        z.iter_mut()
            .zip(r.iter().zip(&inv))
            .for_each(|(z, (r, i))| *z = r * i);
        proj(&mut z);
        let rz_new = dot(&r, &z);
        let beta = rz_new / rz;
        rz = rz_new;
        dir.iter_mut().zip(&z).for_each(|(d, z)| *d = z + beta * *d);
    }
    x.iter_mut().for_each(|v| *v *= big);
    x
}
