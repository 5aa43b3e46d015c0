//! RL entry points: the GAE / reward-to-go scan over float32 or float64 `[B, T]` buffers.

use fastalign_core::rl::{self, Real};
use numpy::{
    Element, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::prelude::*;

use crate::errors::{contiguous, run};

type Pair<'py, R> = (Bound<'py, PyArray2<R>>, Bound<'py, PyArray2<R>>);

#[allow(clippy::too_many_arguments)]
fn gae<'py, R: Real + Element>(
    py: Python<'py>,
    rewards: &PyReadonlyArray2<'py, R>,
    values: Option<&PyReadonlyArray2<'py, R>>,
    mask: &PyReadonlyArray2<'py, u8>,
    last_values: Option<&PyReadonlyArray1<'py, R>>,
    gamma: f64,
    lam: f64,
) -> PyResult<Pair<'py, R>> {
    let (rows, cols) = (rewards.shape()[0], rewards.shape()[1]);
    let r = contiguous(rewards, "rewards")?;
    let m = contiguous(mask, "mask")?;
    let v = values.map(|v| contiguous(v, "values")).transpose()?;
    let l = last_values
        .map(|l| contiguous(l, "last_values"))
        .transpose()?;
    // the outputs come from NumPy's allocator (which asks for huge pages for large arrays:
    // a fresh Vec paid a page fault per 4 KiB, more than the scan itself)
    let adv = PyArray2::<R>::zeros(py, [rows, cols], false);
    let ret = PyArray2::<R>::zeros(py, [rows, cols], false);
    {
        let mut adv_w = adv.readwrite();
        let mut ret_w = ret.readwrite();
        let (a, b) = (adv_w.as_slice_mut()?, ret_w.as_slice_mut()?);
        run(py, || {
            rl::gae_into(r, v, m, l, rows, cols, gamma, lam, a, b)
        })?;
    }
    Ok((adv, ret))
}

/// One `#[pyfunction]` per storage type, both over [`gae`].
macro_rules! gae_entry {
    ($name:ident, $t:ty, $doc:literal) => {
        #[doc = $doc]
        #[pyfunction]
        #[pyo3(signature = (rewards, values, mask, last_values, gamma, lam))]
        pub fn $name<'py>(
            py: Python<'py>,
            rewards: PyReadonlyArray2<'py, $t>,
            values: Option<PyReadonlyArray2<'py, $t>>,
            mask: PyReadonlyArray2<'py, u8>,
            last_values: Option<PyReadonlyArray1<'py, $t>>,
            gamma: f64,
            lam: f64,
        ) -> PyResult<Pair<'py, $t>> {
            gae(
                py,
                &rewards,
                values.as_ref(),
                &mask,
                last_values.as_ref(),
                gamma,
                lam,
            )
        }
    };
}

gae_entry!(
    rl_gae_f64,
    f64,
    "GAE advantages and returns over float64 ``[B, T]`` (``values`` None: zeros)."
);
gae_entry!(
    rl_gae_f32,
    f32,
    "GAE advantages and returns over float32 ``[B, T]`` (computed in float64)."
);
