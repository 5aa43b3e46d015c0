//! The one place where core results become Python results.

use std::panic::{catch_unwind, AssertUnwindSafe};

use fastalign_core::Error;
use numpy::{Element, PyReadonlyArray, PyUntypedArrayMethods};
use pyo3::prelude::*;

// The exception classes live in Python (fastalign/errors.py) so that they can inherit from
// both FastalignError and the matching builtin (ValueError, RuntimeError, MemoryError). They
// are imported lazily, on the first error.
pyo3::import_exception!(fastalign.errors, InvalidInputError);
pyo3::import_exception!(fastalign.errors, ShapeError);
pyo3::import_exception!(fastalign.errors, ConvergenceError);
pyo3::import_exception!(fastalign.errors, InternalError);
pyo3::import_exception!(fastalign.errors, AllocationError);

/// Maps a core error to the matching Python exception, keeping its message.
pub fn to_pyerr(err: Error) -> PyErr {
    let msg = err.to_string();
    match err {
        Error::InvalidArgument(_) | Error::NonFinite { .. } => InvalidInputError::new_err(msg),
        Error::Shape(_) => ShapeError::new_err(msg),
        Error::NoConvergence(_) => ConvergenceError::new_err(msg),
        Error::Memory { .. } => AllocationError::new_err(msg),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

/// Runs core work with the GIL released, turning a core error into its Python exception and a
/// panic into `fastalign.errors.InternalError` (never an abort, never a BaseException).
///
/// Every entry point that does real work goes through here, so none can forget a step.
pub fn run<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> fastalign_core::Result<T> + Send,
{
    match py.detach(|| catch_unwind(AssertUnwindSafe(work))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(to_pyerr(err)),
        Err(payload) => Err(InternalError::new_err(format!(
            "internal error in fastalign's Rust core (please report it): {}",
            panic_message(payload.as_ref())
        ))),
    }
}

/// The data of a NumPy array as a slice, without copying; a non-contiguous array is an error
/// here (the Python facades make arrays contiguous before calling in).
pub fn contiguous<'a, T: Element, D: numpy::ndarray::Dimension>(
    array: &'a PyReadonlyArray<'_, T, D>,
    name: &str,
) -> PyResult<&'a [T]> {
    array.as_slice().map_err(|_| {
        InvalidInputError::new_err(format!(
            "{name} must be C-contiguous (got strides {:?})",
            array.strides()
        ))
    })
}
