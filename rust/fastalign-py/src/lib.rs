//! fastalign._core: the thin PyO3 layer over fastalign-core.
//!
//! Every entry point follows one pattern: borrow NumPy inputs zero-copy, run the core function
//! through [`run`] (which releases the GIL, catches panics and maps core errors to Python
//! exceptions), and hand the owned result back to NumPy without copying.

use numpy::{
    IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;

mod bleu;
mod dedup;
mod errors;
mod rank;

use errors::run;

/// PAMA combined advantages, one per row of a C-contiguous float64 matrix.
#[pyfunction]
fn pama<'py>(
    py: Python<'py>,
    advantages: PyReadonlyArray2<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (rows, cols) = (advantages.shape()[0], advantages.shape()[1]);
    let data = errors::contiguous(&advantages, "advantages")?;
    let out = run(py, || fastalign_core::pareto::pama(data, rows, cols))?;
    Ok(out.into_pyarray(py))
}

/// MGDA min-norm simplex weights for a batch of Gram matrices ``[B, n, n]`` (flat ``[B * n]``).
#[pyfunction]
#[pyo3(signature = (gram, tol, max_iter))]
fn mgda_weights<'py>(
    py: Python<'py>,
    gram: PyReadonlyArray3<'py, f64>,
    tol: f64,
    max_iter: usize,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (batch, n) = (gram.shape()[0], gram.shape()[1]);
    if gram.shape()[2] != n {
        return Err(errors::to_pyerr(fastalign_core::Error::shape(format!(
            "gram must be [B, n, n], got {:?}",
            gram.shape()
        ))));
    }
    let data = errors::contiguous(&gram, "gram")?;
    let out = run(py, || {
        fastalign_core::pareto::mgda_weights(data, batch, n, tol, max_iter)
    })?;
    Ok(out.into_pyarray(py))
}

/// Front index per row (0 = non-dominated), minimization; batched by ``offsets`` when given.
#[pyfunction]
#[pyo3(signature = (f, offsets=None))]
fn non_dominated_sort<'py>(
    py: Python<'py>,
    f: PyReadonlyArray2<'py, f64>,
    offsets: Option<PyReadonlyArray1<'py, i64>>,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let (n, m) = (f.shape()[0], f.shape()[1]);
    let data = errors::contiguous(&f, "F")?;
    let out = match &offsets {
        None => run(py, || {
            fastalign_core::pareto::non_dominated_sort(data, n, m)
        })?,
        Some(o) => {
            let o = errors::contiguous(o, "offsets")?;
            run(py, || {
                fastalign_core::pareto::non_dominated_sort_batched(data, n, m, o)
            })?
        }
    };
    Ok(out.into_pyarray(py))
}

/// NSGA-II crowding distance of each row within its front (``fronts`` given), or within its
/// group's fronts (``offsets`` given, fronts computed per group).
#[pyfunction]
#[pyo3(signature = (f, fronts=None, offsets=None))]
fn crowding_distance<'py>(
    py: Python<'py>,
    f: PyReadonlyArray2<'py, f64>,
    fronts: Option<PyReadonlyArray1<'py, i64>>,
    offsets: Option<PyReadonlyArray1<'py, i64>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (n, m) = (f.shape()[0], f.shape()[1]);
    let data = errors::contiguous(&f, "F")?;
    let out = match (&fronts, &offsets) {
        (Some(fr), None) => {
            let fr = errors::contiguous(fr, "fronts")?;
            run(py, || {
                fastalign_core::pareto::crowding_distance(data, n, m, fr)
            })?
        }
        (None, Some(o)) => {
            let o = errors::contiguous(o, "offsets")?;
            run(py, || {
                fastalign_core::pareto::crowding_distance_batched(data, n, m, o)
            })?
        }
        _ => {
            return Err(errors::to_pyerr(fastalign_core::Error::invalid(
                "pass exactly one of fronts and offsets",
            )))
        }
    };
    Ok(out.into_pyarray(py))
}

/// Exact hypervolume (minimization) bounded by ``reference``: one value, or one per group.
#[pyfunction]
#[pyo3(signature = (f, reference, offsets=None))]
fn hypervolume<'py>(
    py: Python<'py>,
    f: PyReadonlyArray2<'py, f64>,
    reference: PyReadonlyArray1<'py, f64>,
    offsets: Option<PyReadonlyArray1<'py, i64>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (n, m) = (f.shape()[0], f.shape()[1]);
    let data = errors::contiguous(&f, "F")?;
    let r = errors::contiguous(&reference, "reference")?;
    let out = match &offsets {
        None => vec![run(py, || {
            fastalign_core::pareto::hypervolume(data, n, m, r)
        })?],
        Some(o) => {
            let o = errors::contiguous(o, "offsets")?;
            run(py, || {
                fastalign_core::pareto::hypervolume_batched(data, n, m, o, r)
            })?
        }
    };
    Ok(out.into_pyarray(py))
}

/// Pareto-based preference pairs per group: int64 rows (group, chosen, rejected), flat.
#[pyfunction]
fn pareto_pairs<'py>(
    py: Python<'py>,
    f: PyReadonlyArray2<'py, f64>,
    offsets: PyReadonlyArray1<'py, i64>,
    all: bool,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let (n, m) = (f.shape()[0], f.shape()[1]);
    let data = errors::contiguous(&f, "F")?;
    let o = errors::contiguous(&offsets, "offsets")?;
    let pairs = run(py, || {
        fastalign_core::pareto::pareto_pairs(data, n, m, o, all)
    })?;
    Ok(pairs.concat().into_pyarray(py))
}

/// Test-only hook: fails the way `kind` names ("ok", "invalid", "shape", "nonfinite",
/// "convergence", "panic"), through the same path as every real entry point.
#[pyfunction]
fn _debug_fail(py: Python<'_>, kind: &str) -> PyResult<()> {
    let kind = kind.to_owned();
    run(py, move || fastalign_core::debug::fail(&kind))
}

/// The SIMD features the CPU reports.
#[pyfunction]
fn cpu_features() -> Vec<&'static str> {
    fastalign_core::sys::cpu_features()
}

/// The number of threads the Rust core uses.
#[pyfunction]
fn num_threads() -> usize {
    fastalign_core::sys::num_threads()
}

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(pama, m)?)?;
    m.add_function(wrap_pyfunction!(mgda_weights, m)?)?;
    m.add_function(wrap_pyfunction!(non_dominated_sort, m)?)?;
    m.add_function(wrap_pyfunction!(crowding_distance, m)?)?;
    m.add_function(wrap_pyfunction!(hypervolume, m)?)?;
    m.add_function(wrap_pyfunction!(pareto_pairs, m)?)?;
    m.add_function(wrap_pyfunction!(bleu::bleu_sentence_scores, m)?)?;
    m.add_function(wrap_pyfunction!(bleu::bleu_stats, m)?)?;
    m.add_function(wrap_pyfunction!(bleu::bleu_score, m)?)?;
    m.add_function(wrap_pyfunction!(bleu::bleu_tokenize, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_signatures, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_cluster, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_cluster_signatures, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_exact, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::lsh_params, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_jaccard, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_normalize, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_signatures_utf8, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_band_keys, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_bucket_forest, m)?)?;
    m.add_class::<dedup::MinHashIndexCore>()?;
    m.add_function(wrap_pyfunction!(rank::rank_bradley_terry, m)?)?;
    m.add_function(wrap_pyfunction!(rank::rank_maximal_lottery, m)?)?;
    m.add_function(wrap_pyfunction!(rank::rank_plackett_luce, m)?)?;
    m.add_function(wrap_pyfunction!(rank::rank_elo, m)?)?;
    m.add_function(wrap_pyfunction!(rank::rank_kemeny, m)?)?;
    m.add_function(wrap_pyfunction!(rank::rank_borda, m)?)?;
    m.add_function(wrap_pyfunction!(rank::rank_copeland, m)?)?;
    m.add_function(wrap_pyfunction!(rank::rank_schulze, m)?)?;
    m.add_function(wrap_pyfunction!(rank::rank_cycles, m)?)?;
    m.add_function(wrap_pyfunction!(rank::rank_preference_pairs, m)?)?;
    m.add_function(wrap_pyfunction!(rank::rank_bootstrap_bt, m)?)?;
    m.add_function(wrap_pyfunction!(rank::rank_score_comparisons, m)?)?;
    m.add_function(wrap_pyfunction!(_debug_fail, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_features, m)?)?;
    m.add_function(wrap_pyfunction!(num_threads, m)?)?;
    Ok(())
}
