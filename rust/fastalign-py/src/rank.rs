//! Ranking entry points: comparison arrays in, scores out.

use fastalign_core::rank::{self, bt, pl};
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

/// Bradley-Terry MLE: (scores, ranks, converged, iterations, relative gradient).
#[pyfunction]
#[pyo3(signature = (winners, losers, weights, ties, n_items, prior, tol, max_iter))]
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
) -> PyResult<FitOut<'py>> {
    let w = contiguous(&winners, "winners")?;
    let l = contiguous(&losers, "losers")?;
    let wt = weights
        .as_ref()
        .map(|a| contiguous(a, "weights"))
        .transpose()?;
    let ti = ties.as_ref().map(|a| contiguous(a, "ties")).transpose()?;
    let (fit, ranks) = run(py, || {
        let pairs = bt::aggregate(w, l, wt, ti, n_items)?;
        let fit = bt::fit(&pairs, prior, tol, max_iter)?;
        let ranks = rank::ranks_desc(&fit.scores);
        Ok((fit, ranks))
    })?;
    Ok((
        fit.scores.into_pyarray(py),
        ranks.into_pyarray(py),
        fit.converged,
        fit.iterations,
        fit.gradient,
    ))
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
    Ok((
        fit.scores.into_pyarray(py),
        ranks.into_pyarray(py),
        fit.converged,
        fit.iterations,
        fit.gradient,
    ))
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
