//! Ranking entry points: comparison arrays in, scores out.

use fastalign_core::rank::{self, bt, methods, pl};
use fastalign_core::sys::with_threads;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::errors::{contiguous, run};

type FitOut<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<i64>>,
    bool,
    usize,
    f64,
);

/// A fit and its ranks as Python gets them.
fn fit_out(py: Python<'_>, fit: bt::Fit, ranks: Vec<i64>) -> FitOut<'_> {
    (
        fit.scores.into_pyarray(py),
        ranks.into_pyarray(py),
        fit.converged,
        fit.iterations,
        fit.gradient,
    )
}

/// Bradley-Terry MLE: ((scores, ranks, converged, iterations, relative gradient), tie
/// parameter: NaN for ties as half wins, Davidson's nu otherwise).
#[pyfunction]
#[pyo3(signature = (winners, losers, weights, ties, n_items, prior, tol, max_iter, davidson=false))]
#[allow(clippy::too_many_arguments)]
pub fn rank_bradley_terry<'py>(
    py: Python<'py>,
    winners: PyReadonlyArray1<'py, i64>,
    losers: PyReadonlyArray1<'py, i64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    ties: Option<PyReadonlyArray1<'py, bool>>,
    n_items: Option<usize>,
    prior: f64,
    tol: f64,
    max_iter: usize,
    davidson: bool,
) -> PyResult<(FitOut<'py>, f64)> {
    let w = contiguous(&winners, "winners")?;
    let l = contiguous(&losers, "losers")?;
    let wt = weights
        .as_ref()
        .map(|a| contiguous(a, "weights"))
        .transpose()?;
    let ti = ties.as_ref().map(|a| contiguous(a, "ties")).transpose()?;
    let (fit, ranks, nu) = run(py, || {
        let (fit, nu) = if davidson {
            let pairs = bt::aggregate(w, l, wt, ti, n_items)?;
            bt::fit_davidson(&pairs, prior, tol, max_iter)?
        } else {
            let fit = bt::fit_rows(w, l, wt, ti, n_items, prior, tol, max_iter)?;
            (fit, f64::NAN)
        };
        let ranks = rank::ranks_desc(&fit.scores);
        Ok((fit, ranks, nu))
    })?;
    Ok((fit_out(py, fit, ranks), nu))
}

/// Plackett-Luce MLE: (scores, ranks, converged, iterations, relative gradient).
#[pyfunction]
#[pyo3(signature = (items, offsets, n_items, prior, tol, max_iter))]
pub fn rank_plackett_luce<'py>(
    py: Python<'py>,
    items: PyReadonlyArray1<'py, i64>,
    offsets: PyReadonlyArray1<'py, i64>,
    n_items: Option<usize>,
    prior: f64,
    tol: f64,
    max_iter: usize,
) -> PyResult<FitOut<'py>> {
    let it = contiguous(&items, "rankings")?;
    let off = contiguous(&offsets, "offsets")?;
    let (fit, ranks) = run(py, || {
        let rk = pl::rankings(it, off, n_items)?;
        let fit = pl::fit(&rk, prior, tol, max_iter)?;
        let ranks = rank::ranks_desc(&fit.scores);
        Ok((fit, ranks))
    })?;
    Ok(fit_out(py, fit, ranks))
}

/// The maximal lottery of a square preference matrix.
#[pyfunction]
pub fn rank_maximal_lottery<'py>(
    py: Python<'py>,
    p: PyReadonlyArray2<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let m = p.shape()[0];
    if p.shape()[1] != m {
        return Err(crate::errors::to_pyerr(fastalign_core::Error::shape(
            format!("P must be square, got {:?}", p.shape()),
        )));
    }
    let data = contiguous(&p, "P")?;
    let out = run(py, || rank::lottery::maximal_lottery(data, m))?;
    Ok(out.into_pyarray(py))
}

fn square<'a>(p: &'a PyReadonlyArray2<'_, f64>) -> PyResult<(&'a [f64], usize)> {
    let m = p.shape()[0];
    if p.shape()[1] != m {
        return Err(crate::errors::to_pyerr(fastalign_core::Error::shape(
            format!("P must be square, got {:?}", p.shape()),
        )));
    }
    Ok((contiguous(p, "P")?, m))
}

/// Online Elo ratings over comparisons in order.
#[pyfunction]
#[pyo3(signature = (winners, losers, ties, n, k, scale, base, init))]
#[allow(clippy::too_many_arguments)]
pub fn rank_elo<'py>(
    py: Python<'py>,
    winners: PyReadonlyArray1<'py, i64>,
    losers: PyReadonlyArray1<'py, i64>,
    ties: Option<PyReadonlyArray1<'py, bool>>,
    n: usize,
    k: f64,
    scale: f64,
    base: f64,
    init: f64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let w = contiguous(&winners, "winners")?;
    let l = contiguous(&losers, "losers")?;
    let t = ties.as_ref().map(|a| contiguous(a, "ties")).transpose()?;
    let out = run(py, || methods::elo(w, l, t, n, k, scale, base, init))?;
    Ok(out.into_pyarray(py))
}

/// Borda points of rankings (flat items + offsets).
#[pyfunction]
pub fn rank_borda<'py>(
    py: Python<'py>,
    items: PyReadonlyArray1<'py, i64>,
    offsets: PyReadonlyArray1<'py, i64>,
    n_items: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let it = contiguous(&items, "rankings")?;
    let off = contiguous(&offsets, "offsets")?;
    let out = run(py, || Ok(methods::borda(&pl::rankings(it, off, n_items)?)))?;
    Ok(out.into_pyarray(py))
}

/// Copeland scores of a preference matrix.
#[pyfunction]
pub fn rank_copeland<'py>(
    py: Python<'py>,
    p: PyReadonlyArray2<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (data, m) = square(&p)?;
    Ok(run(py, || methods::copeland(data, m))?.into_pyarray(py))
}

/// Schulze: (wins by path strength, strongest paths flat [m * m]).
#[pyfunction]
pub fn rank_schulze<'py>(
    py: Python<'py>,
    p: PyReadonlyArray2<'py, f64>,
) -> PyResult<TwoArrays<'py>> {
    let (data, m) = square(&p)?;
    let (wins, paths) = run(py, || methods::schulze(data, m))?;
    Ok((wins.into_pyarray(py), paths.into_pyarray(py)))
}

/// Majority-graph cycles: (component per item, component count, 3-cycle count).
#[pyfunction]
pub fn rank_cycles<'py>(
    py: Python<'py>,
    p: PyReadonlyArray2<'py, f64>,
) -> PyResult<(Bound<'py, PyArray1<i64>>, usize, u64)> {
    let (data, m) = square(&p)?;
    let (comp, count, three) = run(py, || methods::cycles(data, m))?;
    let comp: Vec<i64> = comp.into_iter().map(i64::from).collect();
    Ok((comp.into_pyarray(py), count, three))
}

type TwoArrays<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>);

type PairsOut<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f64>>,
);

/// Preference pairs per group: (chosen rows, rejected rows, gaps).
#[pyfunction]
pub fn rank_preference_pairs<'py>(
    py: Python<'py>,
    scores: PyReadonlyArray1<'py, f64>,
    offsets: PyReadonlyArray1<'py, i64>,
    mode: &str,
    margin: f64,
    k: usize,
) -> PyResult<PairsOut<'py>> {
    let s = contiguous(&scores, "scores")?;
    let o = contiguous(&offsets, "offsets")?;
    let mode = match mode {
        "best_worst" => methods::PairMode::BestWorst,
        "all" => methods::PairMode::All,
        "top_bottom" => methods::PairMode::TopBottom(k),
        other => {
            return Err(crate::errors::to_pyerr(fastalign_core::Error::invalid(
                format!("mode must be 'best_worst', 'all' or 'top_bottom', got {other:?}"),
            )))
        }
    };
    let (c, r, g) = run(py, || methods::preference_pairs(s, o, mode, margin))?;
    Ok((c.into_pyarray(py), r.into_pyarray(py), g.into_pyarray(py)))
}

/// Comparisons aggregated from an items x judges score matrix (NaN = not judged).
#[pyfunction]
#[pyo3(signature = (scores, margin))]
pub fn rank_score_comparisons<'py>(
    py: Python<'py>,
    scores: PyReadonlyArray2<'py, f64>,
    margin: f64,
) -> PyResult<ComparisonsOut<'py>> {
    let (n, j) = (scores.shape()[0], scores.shape()[1]);
    let s = contiguous(&scores, "scores")?;
    let (w, l, wt, ti) = run(py, || methods::score_comparisons(s, n, j, margin))?;
    Ok((
        w.into_pyarray(py),
        l.into_pyarray(py),
        wt.into_pyarray(py),
        ti.into_pyarray(py),
    ))
}

type ComparisonsOut<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<bool>>,
);

/// Bootstrap Bradley-Terry scores: (flat [rounds * n], failed rounds).
#[pyfunction]
#[pyo3(signature = (winners, losers, weights, ties, n, prior, tol, max_iter, rounds, seed, davidson=false, threads=None))]
#[allow(clippy::too_many_arguments)]
pub fn rank_bootstrap_bt<'py>(
    py: Python<'py>,
    winners: PyReadonlyArray1<'py, i64>,
    losers: PyReadonlyArray1<'py, i64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    ties: Option<PyReadonlyArray1<'py, bool>>,
    n: usize,
    prior: f64,
    tol: f64,
    max_iter: usize,
    rounds: usize,
    seed: u64,
    davidson: bool,
    threads: Option<usize>,
) -> PyResult<(Bound<'py, PyArray1<f64>>, usize)> {
    let w = contiguous(&winners, "winners")?;
    let l = contiguous(&losers, "losers")?;
    let wt = weights
        .as_ref()
        .map(|a| contiguous(a, "weights"))
        .transpose()?;
    let ti = ties.as_ref().map(|a| contiguous(a, "ties")).transpose()?;
    let (out, failed) = run(py, || {
        with_threads(threads, || {
            methods::bootstrap_bt(
                w, l, wt, ti, n, prior, tol, max_iter, rounds, seed, davidson,
            )
        })
    })?;
    Ok((out.into_pyarray(py), failed))
}

/// Kemeny ranking: (order, objective, exact).
#[pyfunction]
#[pyo3(signature = (p, exact=None))]
pub fn rank_kemeny<'py>(
    py: Python<'py>,
    p: PyReadonlyArray2<'py, f64>,
    exact: Option<bool>,
) -> PyResult<(Bound<'py, PyArray1<i64>>, f64, bool)> {
    let (data, m) = square(&p)?;
    let k = run(py, || rank::kemeny::kemeny(data, m, exact))?;
    let order: Vec<i64> = k.order.iter().map(|&i| i as i64).collect();
    Ok((order.into_pyarray(py), k.objective, k.exact))
}
