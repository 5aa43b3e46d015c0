//! The one place where core results become Python results.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use fastalign_core::cancel::Token;
use fastalign_core::Error;
use numpy::{Element, PyReadonlyArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyKeyboardInterrupt;
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
        Error::Interrupted => PyKeyboardInterrupt::new_err(()),
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

/// The `threading` ident of Python's main thread, the one thread that runs signal handlers
/// (0 until the first call looks it up: `import fastalign` does not import `threading`).
static MAIN_THREAD: AtomicU64 = AtomicU64::new(0);

/// Whether the calling thread is Python's main thread.
fn on_main_thread(py: Python<'_>) -> bool {
    let mut main = MAIN_THREAD.load(Ordering::Relaxed);
    if main == 0 {
        let ident = py.import("threading").and_then(|t| {
            t.call_method0("main_thread")?
                .getattr("ident")?
                .extract::<u64>()
        });
        main = ident.unwrap_or(u64::MAX); // unknown: no thread is the main one
        MAIN_THREAD.store(main, Ordering::Relaxed);
    }
    // SAFETY: no arguments and no preconditions (not even an attached thread state): the
    // ident of the calling thread, as `threading.get_ident()` returns it
    let me = unsafe { pyo3::ffi::PyThread_get_thread_ident() } as u64;
    me == main
}

/// Runs core work with the GIL released, turning a core error into its Python exception and a
/// panic into `fastalign.errors.InternalError` (never an abort).
///
/// On Python's main thread (the one thread Python runs signal handlers on) the work runs under
/// a cancellation token ([`Token`]) that this thread polls: at the work's checks that run here
/// and while its long parallel sections run on the pool (every
/// [`fastalign_core::cancel::POLL_EVERY`]), the GIL is taken back for a moment and Python's
/// pending signal handlers run. When one raises (Ctrl-C: `KeyboardInterrupt`), the token is
/// cancelled, the work's loops return [`Error::Interrupted`] at their next check, and the call
/// raises what the handler raised. A handler that raises nothing lets the work go on. Other
/// threads run the work without a token. Signals that came during the work are handled right
/// after it, before its result is built.
///
/// Every entry point that does real work goes through here, so none can forget a step.
pub fn run<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> fastalign_core::Result<T> + Send,
{
    let (outcome, raised) = if on_main_thread(py) {
        // the first exception a signal handler raised while the work ran
        let raised: Arc<Mutex<Option<PyErr>>> = Arc::default();
        let slot = Arc::clone(&raised);
        let token = Token::with_poll(move || match Python::attach(|py| py.check_signals()) {
            Ok(()) => false,
            Err(err) => {
                slot.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(err);
                true
            }
        });
        let outcome = py.detach(|| token.run_polled(|| catch_unwind(AssertUnwindSafe(work))));
        let raised = raised.lock().unwrap_or_else(PoisonError::into_inner).take();
        (outcome, raised)
    } else {
        (py.detach(|| catch_unwind(AssertUnwindSafe(work))), None)
    };
    if let Some(err) = raised {
        return Err(err); // whatever the work did: the handler's exception, as Python would
    }
    // a signal that came while the work ran (one without checks, or off the main thread: a
    // no-op there) is handled now, before any result is built: building the first NumPy
    // array imports NumPy's API, which a pending KeyboardInterrupt would break
    py.check_signals()?;
    match outcome {
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
