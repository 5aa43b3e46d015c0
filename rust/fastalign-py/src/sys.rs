//! Machine and test hooks: the CPU features and thread count the core uses, and a hook that
//! fails through the common error path.

use pyo3::prelude::*;

use crate::errors::run;

/// Test-only hook: fails the way `kind` names ("ok", "invalid", "shape", "nonfinite",
/// "convergence", "memory", "interrupted", "panic"), through the same path as every real entry
/// point.
#[pyfunction]
pub fn sys_debug_fail(py: Python<'_>, kind: &str) -> PyResult<()> {
    let kind = kind.to_owned();
    run(py, move || fastalign_core::debug::fail(&kind))
}

/// The SIMD features the CPU reports.
#[pyfunction]
pub fn sys_cpu_features() -> Vec<&'static str> {
    fastalign_core::sys::cpu_features()
}

/// The number of threads the Rust core uses.
#[pyfunction]
pub fn sys_num_threads() -> usize {
    fastalign_core::sys::num_threads()
}
