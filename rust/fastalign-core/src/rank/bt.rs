//! Bradley-Terry maximum likelihood by Newton's method with matrix-free conjugate-gradient
//! steps over the aggregated comparison graph.
//!
//! Objective (maximized): `sum_k w_k log sigmoid(s[win_k] - s[lose_k]) - prior/2 * ||s||^2`,
//! a tie counting as half a win each way. Comparisons are first summed per unordered pair
//! (a counting sort by the lower id, then dense sums per row: no n x n table), so every iteration costs
//! O(distinct pairs). Converged when every item's gradient is at most `tol` times the total
//! weight of its comparisons (at least 1). Without a prior the maximum exists only when the
//! "beat" graph is strongly connected (Zermelo's condition); otherwise the call fails and says
//! which items form a group that never loses (or never wins) against the rest.

use crate::{Error, Result};

/// A comparison table: for each unordered pair `(i, j)`, `i < j`, the weight of "i beat j"
/// and of "j beat i".
#[derive(Clone, Debug, Default)]
pub struct Pairs {
    pub n: usize,
    pub i: Vec<u32>,
    pub j: Vec<u32>,
    pub wij: Vec<f64>,
    pub wji: Vec<f64>,
}

/// Sums comparisons per pair. `ties[k]` makes row k half a win each way.
pub fn aggregate(
    winners: &[i64],
    losers: &[i64],
    weights: Option<&[f64]>,
    ties: Option<&[bool]>,
    n_items: Option<usize>,
) -> Result<Pairs> {
    let m = winners.len();
    if losers.len() != m {
        return Err(Error::shape(format!(
            "winners has {m} entries, losers {}",
            losers.len()
        )));
    }
    for (what, len) in [
        ("weights", weights.map(<[f64]>::len)),
        ("ties", ties.map(<[bool]>::len)),
    ] {
        if let Some(len) = len {
            if len != m {
                return Err(Error::shape(format!(
                    "{what} has {len} entries for {m} comparisons"
                )));
            }
        }
    }
    let max_id = winners.iter().chain(losers).copied().max().unwrap_or(-1);
    let n = match n_items {
        Some(n) => n,
        None => (max_id + 1).max(0) as usize,
    };
    if n > u32::MAX as usize {
        return Err(Error::invalid("n_items must be < 2^32"));
    }
    for k in 0..m {
        let (a, b) = (winners[k], losers[k]);
        if a < 0 || b < 0 || a as u64 >= n as u64 || b as u64 >= n as u64 {
            return Err(Error::invalid(format!(
                "comparison {k}: item ids ({a}, {b}) out of range [0, {n})"
            )));
        }
        if a == b {
            return Err(Error::invalid(format!(
                "comparison {k}: item {a} compared with itself"
            )));
        }
        if let Some(w) = weights {
            if !w[k].is_finite() || w[k] < 0.0 {
                return Err(Error::NonFinite {
                    what: "weights",
                    location: format!("comparison {k} (weights must be finite and >= 0)"),
                    value: w[k],
                });
            }
        }
    }
    let row = |k: usize| {
        let w = weights.map_or(1.0, |w| w[k]);
        let tie = ties.is_some_and(|t| t[k]);
        let (a, b) = (winners[k] as u32, losers[k] as u32);
        // (low id, high id, weight of low beating high, weight of high beating low)
        let (wa, wb) = if tie { (0.5 * w, 0.5 * w) } else { (w, 0.0) };
        if a < b {
            (a, b, wa, wb)
        } else {
            (b, a, wb, wa)
        }
    };
    // bucket the comparisons by their lower id (a counting sort), then sum each bucket in two
    // dense rows indexed by the higher id (reused, so they stay in cache): O(m + n + pairs log)
    let mut start = vec![0usize; n + 1];
    for k in 0..m {
        start[winners[k].min(losers[k]) as usize + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut hi = vec![0u32; m];
    let mut wlo = vec![0.0f64; m];
    let mut whi = vec![0.0f64; m];
    for k in 0..m {
        let (a, b, wa, wb) = row(k);
        let at = fill[a as usize];
        fill[a as usize] += 1;
        hi[at] = b;
        wlo[at] = wa;
        whi[at] = wb;
    }
    let mut p = Pairs {
        n,
        ..Pairs::default()
    };
    let (mut sum_lo, mut sum_hi) = (vec![0.0f64; n], vec![0.0f64; n]);
    let mut seen = vec![false; n];
    let mut touched: Vec<u32> = Vec::new();
    for low in 0..n {
        for at in start[low]..start[low + 1] {
            let h = hi[at] as usize;
            if !seen[h] {
                seen[h] = true;
                touched.push(h as u32);
            }
            sum_lo[h] += wlo[at];
            sum_hi[h] += whi[at];
        }
        touched.sort_unstable();
        for &h in &touched {
            let h = h as usize;
            let (x, y) = (sum_lo[h], sum_hi[h]);
            if x + y > 0.0 {
                p.i.push(low as u32);
                p.j.push(h as u32);
                p.wij.push(x);
                p.wji.push(y);
            }
            sum_lo[h] = 0.0;
            sum_hi[h] = 0.0;
            seen[h] = false;
        }
        touched.clear();
    }
    Ok(p)
}

/// Strongly connected components of the "beat" graph (edge a -> b when a beat b with positive
/// weight), by iterative Kosaraju: component id per item, and the number of components.
pub fn beat_components(p: &Pairs) -> (Vec<u32>, usize) {
    let n = p.n;
    let mut out_adj: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut in_adj: Vec<Vec<u32>> = vec![Vec::new(); n];
    for e in 0..p.i.len() {
        let (a, b) = (p.i[e], p.j[e]);
        if p.wij[e] > 0.0 {
            out_adj[a as usize].push(b);
            in_adj[b as usize].push(a);
        }
        if p.wji[e] > 0.0 {
            out_adj[b as usize].push(a);
            in_adj[a as usize].push(b);
        }
    }
    // first pass: finishing order
    let mut seen = vec![false; n];
    let mut order = Vec::with_capacity(n);
    for start in 0..n {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        let mut stack = vec![(start, 0usize)];
        while let Some(&mut (v, ref mut k)) = stack.last_mut() {
            if let Some(&w) = out_adj[v].get(*k) {
                *k += 1;
                if !seen[w as usize] {
                    seen[w as usize] = true;
                    stack.push((w as usize, 0));
                }
            } else {
                order.push(v);
                stack.pop();
            }
        }
    }
    // second pass on the reversed graph in reverse finishing order
    let mut comp = vec![u32::MAX; n];
    let mut c = 0u32;
    for &start in order.iter().rev() {
        if comp[start] != u32::MAX {
            continue;
        }
        comp[start] = c;
        let mut stack = vec![start];
        while let Some(v) = stack.pop() {
            for &w in &in_adj[v] {
                if comp[w as usize] == u32::MAX {
                    comp[w as usize] = c;
                    stack.push(w as usize);
                }
            }
        }
        c += 1;
    }
    (comp, c as usize)
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

/// The penalized log-likelihood at `s` (only the line search's fallback needs it).
fn objective(p: &Pairs, s: &[f64], prior: f64) -> f64 {
    let mut total = 0.0;
    for e in 0..p.i.len() {
        let d = s[p.i[e] as usize] - s[p.j[e] as usize];
        // log sigmoid(d), stably; log sigmoid(-d) = log sigmoid(d) - d
        let ls = d.min(0.0) - (-d.abs()).exp().ln_1p();
        total += p.wij[e] * ls + p.wji[e] * (ls - d);
    }
    total - 0.5 * prior * s.iter().map(|x| x * x).sum::<f64>()
}

/// Fits Bradley-Terry strengths (natural-log scale, mean 0).
pub fn fit(p: &Pairs, prior: f64, tol: f64, max_iter: usize) -> Result<Fit> {
    let n = p.n;
    if !(prior.is_finite() && prior >= 0.0) {
        return Err(Error::invalid(format!(
            "prior must be finite and >= 0, got {prior}"
        )));
    }
    if !(tol.is_finite() && tol > 0.0) {
        return Err(Error::invalid(format!("tol must be > 0, got {tol}")));
    }
    if n == 0 {
        return Err(Error::invalid("no items to rank"));
    }
    if prior == 0.0 && n > 1 {
        let (comp, count) = beat_components(p);
        if count > 1 {
            // name the smallest group and whether it only wins or only loses
            let mut sizes = vec![0usize; count];
            for &c in &comp {
                sizes[c as usize] += 1;
            }
            let small = (0..count).min_by_key(|&c| (sizes[c], c)).unwrap_or(0) as u32;
            let members: Vec<usize> = (0..n).filter(|&i| comp[i] == small).take(10).collect();
            let touched = (0..p.i.len())
                .any(|e| (comp[p.i[e] as usize] == small) != (comp[p.j[e] as usize] == small));
            let why = if touched {
                "never lose (or never win) against the rest: the likelihood grows without bound"
            } else {
                "are not compared with the rest at all (a disconnected graph)"
            };
            return Err(Error::invalid(format!(
                "Bradley-Terry has no maximum without a prior: items {members:?}{} {why}; pass \
                 prior > 0, or drop or connect them ({count} strongly connected groups)",
                if sizes[small as usize] > 10 {
                    " ..."
                } else {
                    ""
                }
            )));
        }
    }
    let mut weight_of = vec![0.0f64; n];
    for e in 0..p.i.len() {
        let w = p.wij[e] + p.wji[e];
        weight_of[p.i[e] as usize] += w;
        weight_of[p.j[e] as usize] += w;
    }
    let scale: Vec<f64> = weight_of.iter().map(|w| w.max(1.0)).collect();
    let mut s = vec![0.0f64; n];
    let mut at = Point::new(n, p.i.len());
    at.evaluate(p, &s, prior);
    let mut trial_at = Point::new(n, p.i.len());
    let mut rel = f64::INFINITY;
    for it in 0..=max_iter {
        rel =
            at.g.iter()
                .zip(&scale)
                .map(|(g, s)| (g / s).abs())
                .fold(0.0, f64::max);
        if rel <= tol || it == max_iter {
            return Ok(Fit {
                scores: center(s, prior),
                converged: rel <= tol,
                iterations: it,
                gradient: rel,
            });
        }
        // Newton direction: (L_c + prior I) d = g, by Jacobi-preconditioned CG
        let d = cg(p, &at.c, &at.diag, prior, &at.g, rel);
        // backtracking line search on the concave objective (the evaluation at the accepted
        // point is the next iteration's gradient and Hessian)
        let mut step = 1.0;
        loop {
            let trial: Vec<f64> = s.iter().zip(&d).map(|(x, y)| x + step * y).collect();
            trial_at.evaluate(p, &trial, prior);
            // the objective is concave along d: if it still rises at the trial point, it rose
            // all the way there (no objective needed); otherwise compare values
            let slope: f64 = trial_at.g.iter().zip(&d).map(|(g, y)| g * y).sum();
            let accept = slope >= 0.0
                || step < 1e-10
                || objective(p, &trial, prior) >= objective(p, &s, prior);
            if accept {
                s = trial;
                std::mem::swap(&mut at, &mut trial_at);
                break;
            }
            step *= 0.5;
        }
    }
    Ok(Fit {
        scores: center(s, prior),
        converged: false,
        iterations: max_iter,
        gradient: rel,
    })
}

/// The gradient and the Hessian's edge weights at one point, in one pass (one exp per pair).
struct Point {
    g: Vec<f64>,
    c: Vec<f64>,
    diag: Vec<f64>,
}

impl Point {
    fn new(n: usize, edges: usize) -> Self {
        Point {
            g: vec![0.0; n],
            c: vec![0.0; edges],
            diag: vec![0.0; n],
        }
    }

    fn evaluate(&mut self, p: &Pairs, s: &[f64], prior: f64) {
        self.g.iter_mut().zip(s).for_each(|(g, x)| *g = -prior * x);
        self.diag.iter_mut().for_each(|d| *d = prior);
        for e in 0..p.i.len() {
            let (a, b) = (p.i[e] as usize, p.j[e] as usize);
            let d = s[a] - s[b];
            let t = (-d.abs()).exp(); // in (0, 1]
            let q = if d >= 0.0 {
                1.0 / (1.0 + t)
            } else {
                t / (1.0 + t)
            }; // sigmoid(d)
            let (wa, wb) = (p.wij[e], p.wji[e]);
            let w = wa + wb;
            let ge = wa - w * q;
            self.g[a] += ge;
            self.g[b] -= ge;
            let ce = w * q * (1.0 - q);
            self.c[e] = ce;
            self.diag[a] += ce;
            self.diag[b] += ce;
        }
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

/// Solves `(L_c + prior I) x = b` (L_c: the weighted graph Laplacian of the pairs) to a
/// relative residual that tightens as the gradient shrinks (inexact Newton).
fn cg(p: &Pairs, c: &[f64], diag: &[f64], prior: f64, b: &[f64], rel: f64) -> Vec<f64> {
    let n = b.len();
    let apply = |v: &[f64], out: &mut [f64]| {
        out.iter_mut().zip(v).for_each(|(o, x)| *o = prior * x);
        for e in 0..p.i.len() {
            let (a, bb) = (p.i[e] as usize, p.j[e] as usize);
            let t = c[e] * (v[a] - v[bb]);
            out[a] += t;
            out[bb] -= t;
        }
    };
    let project = |v: &mut [f64]| {
        if prior == 0.0 {
            let mean = v.iter().sum::<f64>() / n as f64;
            v.iter_mut().for_each(|x| *x -= mean);
        }
    };
    let inv: Vec<f64> = diag
        .iter()
        .map(|d| if *d > 0.0 { 1.0 / d } else { 1.0 })
        .collect();
    let mut x = vec![0.0; n];
    let mut r = b.to_vec();
    project(&mut r);
    let bnorm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
    if bnorm == 0.0 {
        return x;
    }
    let target = bnorm * rel.sqrt().clamp(1e-14, 0.5);
    let mut z: Vec<f64> = r.iter().zip(&inv).map(|(r, i)| r * i).collect();
    project(&mut z);
    let mut dir = z.clone();
    let mut rz = r.iter().zip(&z).map(|(a, b)| a * b).sum::<f64>();
    let mut ad = vec![0.0; n];
    for _ in 0..n.clamp(10, 500) {
        apply(&dir, &mut ad);
        let dad = dir.iter().zip(&ad).map(|(a, b)| a * b).sum::<f64>();
        if dad <= 0.0 {
            break;
        }
        let alpha = rz / dad;
        x.iter_mut().zip(&dir).for_each(|(x, d)| *x += alpha * d);
        r.iter_mut().zip(&ad).for_each(|(r, a)| *r -= alpha * a);
        if r.iter().map(|v| v * v).sum::<f64>().sqrt() <= target {
            break;
        }
        z.iter_mut()
            .zip(r.iter().zip(&inv))
            .for_each(|(z, (r, i))| *z = r * i);
        project(&mut z);
        let rz_new = r.iter().zip(&z).map(|(a, b)| a * b).sum::<f64>();
        let beta = rz_new / rz;
        rz = rz_new;
        dir.iter_mut().zip(&z).for_each(|(d, z)| *d = z + beta * *d);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_items_closed_form() {
        // 3 wins of 0 over 1, 1 of 1 over 0: s0 - s1 = ln 3
        let p = aggregate(&[0, 0, 0, 1], &[1, 1, 1, 0], None, None, None).expect("agg");
        let f = fit(&p, 0.0, 1e-12, 100).expect("fit");
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

    #[test]
    fn bad_input() {
        assert!(aggregate(&[0], &[0], None, None, None).is_err());
        assert!(aggregate(&[0, 1], &[1], None, None, None).is_err());
        assert!(aggregate(&[-1], &[1], None, None, None).is_err());
        assert!(aggregate(&[0], &[5], None, None, Some(3)).is_err());
        assert!(aggregate(&[0], &[1], Some(&[f64::NAN]), None, None).is_err());
    }
}
