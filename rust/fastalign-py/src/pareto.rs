//! Pareto entry points: row-major float64 objective matrices in, NumPy arrays out.

use fastalign_core::{pareto, Error};
use numpy::{
    IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;

use crate::errors::{contiguous, run, to_pyerr};

/// PAMA combined advantages, one per row of a C-contiguous float64 matrix.
#[pyfunction]
pub fn pareto_pama<'py>(
    py: Python<'py>,
    advantages: PyReadonlyArray2<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (rows, cols) = (advantages.shape()[0], advantages.shape()[1]);
    let data = contiguous(&advantages, "advantages")?;
    let out = run(py, || pareto::pama(data, rows, cols))?;
    Ok(out.into_pyarray(py))
}

/// MGDA min-norm simplex weights for a batch of Gram matrices ``[B, n, n]`` (flat ``[B * n]``).
#[pyfunction]
#[pyo3(signature = (gram, tol, max_iter))]
pub fn pareto_mgda_weights<'py>(
    py: Python<'py>,
    gram: PyReadonlyArray3<'py, f64>,
    tol: f64,
    max_iter: usize,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (batch, n) = (gram.shape()[0], gram.shape()[1]);
    if gram.shape()[2] != n {
        return Err(to_pyerr(Error::shape(format!(
            "gram must be [B, n, n], got {:?}",
            gram.shape()
        ))));
    }
    let data = contiguous(&gram, "gram")?;
    let out = run(py, || pareto::mgda_weights(data, batch, n, tol, max_iter))?;
    Ok(out.into_pyarray(py))
}

/// Front index per row (0 = non-dominated), minimization; batched by ``offsets`` when given.
#[pyfunction]
#[pyo3(signature = (f, offsets=None))]
pub fn pareto_non_dominated_sort<'py>(
    py: Python<'py>,
    f: PyReadonlyArray2<'py, f64>,
    offsets: Option<PyReadonlyArray1<'py, i64>>,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let (n, m) = (f.shape()[0], f.shape()[1]);
    let data = contiguous(&f, "F")?;
    let out = match &offsets {
        None => run(py, || pareto::non_dominated_sort(data, n, m))?,
        Some(o) => {
            let o = contiguous(o, "offsets")?;
            run(py, || pareto::non_dominated_sort_batched(data, n, m, o))?
        }
    };
    Ok(out.into_pyarray(py))
}

/// NSGA-II crowding distance of each row within its front (``fronts`` given), or within its
/// group's fronts (``offsets`` given, fronts computed per group).
#[pyfunction]
#[pyo3(signature = (f, fronts=None, offsets=None))]
pub fn pareto_crowding_distance<'py>(
    py: Python<'py>,
    f: PyReadonlyArray2<'py, f64>,
    fronts: Option<PyReadonlyArray1<'py, i64>>,
    offsets: Option<PyReadonlyArray1<'py, i64>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (n, m) = (f.shape()[0], f.shape()[1]);
    let data = contiguous(&f, "F")?;
    let out = match (&fronts, &offsets) {
        (Some(fr), None) => {
            let fr = contiguous(fr, "fronts")?;
            run(py, || pareto::crowding_distance(data, n, m, fr))?
        }
        (None, Some(o)) => {
            let o = contiguous(o, "offsets")?;
            run(py, || pareto::crowding_distance_batched(data, n, m, o))?
        }
        _ => {
            return Err(to_pyerr(Error::invalid(
                "pass exactly one of fronts and offsets",
            )))
        }
    };
    Ok(out.into_pyarray(py))
}

/// Exact hypervolume (minimization) bounded by ``reference``: one value, or one per group.
#[pyfunction]
#[pyo3(signature = (f, reference, offsets=None))]
pub fn pareto_hypervolume<'py>(
    py: Python<'py>,
    f: PyReadonlyArray2<'py, f64>,
    reference: PyReadonlyArray1<'py, f64>,
    offsets: Option<PyReadonlyArray1<'py, i64>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (n, m) = (f.shape()[0], f.shape()[1]);
    let data = contiguous(&f, "F")?;
    let r = contiguous(&reference, "reference")?;
    let out = match &offsets {
        None => vec![run(py, || pareto::hypervolume(data, n, m, r))?],
        Some(o) => {
            let o = contiguous(o, "offsets")?;
            run(py, || pareto::hypervolume_batched(data, n, m, o, r))?
        }
    };
    Ok(out.into_pyarray(py))
}

/// Pareto-based preference pairs per group: int64 rows (group, chosen, rejected), flat.
#[pyfunction]
pub fn pareto_pairs<'py>(
    py: Python<'py>,
    f: PyReadonlyArray2<'py, f64>,
    offsets: PyReadonlyArray1<'py, i64>,
    all: bool,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let (n, m) = (f.shape()[0], f.shape()[1]);
    let data = contiguous(&f, "F")?;
    let o = contiguous(&offsets, "offsets")?;
    let pairs = run(py, || pareto::pareto_pairs(data, n, m, o, all))?;
    Ok(pairs.into_pyarray(py))
}
