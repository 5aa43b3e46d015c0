//! BLEU entry points: lists of Python strings in, NumPy arrays or tuples out.

use fastalign_core::bleu::{self, Options};
use fastalign_core::sys::with_threads;
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;

use crate::errors::{run, to_pyerr};

/// `(tokenize, flavor, smooth_method, smooth_value, effective_order, max_ngram_order,
/// compensated_sum)`.
#[derive(FromPyObject)]
pub struct OptionArgs(String, String, String, Option<f64>, bool, usize, bool);

fn options(o: &OptionArgs) -> PyResult<Options> {
    let mut opts = Options::new(&o.0, &o.1, &o.2, o.3, o.4, o.5).map_err(to_pyerr)?;
    opts.compensated_sum = o.6;
    Ok(opts)
}

type Refs = Vec<Vec<Option<String>>>;

/// One BLEU score per (hypothesis, references) pair, float64 [n].
#[pyfunction]
#[pyo3(signature = (hyps, refs, opts, threads=None))]
pub fn bleu_sentence_scores<'py>(
    py: Python<'py>,
    hyps: Vec<String>,
    refs: Refs,
    opts: OptionArgs,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let o = options(&opts)?;
    let out = run(py, || {
        with_threads(threads, || bleu::sentence_scores(&hyps, &refs, &o))
    })?;
    Ok(out.into_pyarray(py))
}

/// BLEU statistics: summed over segments ([2 + 2 N]) or per segment (flat [n * (2 + 2 N)]).
#[pyfunction]
#[pyo3(signature = (hyps, refs, opts, summed, threads=None))]
pub fn bleu_stats<'py>(
    py: Python<'py>,
    hyps: Vec<String>,
    refs: Refs,
    opts: OptionArgs,
    summed: bool,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<u64>>> {
    let o = options(&opts)?;
    let out = run(py, || {
        with_threads(threads, || {
            if summed {
                bleu::corpus_stats(&hyps, &refs, &o)
            } else {
                bleu::batch_stats(&hyps, &refs, &o)
            }
        })
    })?;
    Ok(out.into_pyarray(py))
}

/// The score of (summed) statistics: (score, precisions, bp, sys_len, ref_len).
#[pyfunction]
pub fn bleu_score(stats: Vec<u64>, opts: OptionArgs) -> PyResult<(f64, Vec<f64>, f64, u64, u64)> {
    let o = options(&opts)?;
    let s = bleu::score_from_stats(&stats, &o).map_err(to_pyerr)?;
    Ok((s.score, s.precisions, s.bp, s.sys_len, s.ref_len))
}

/// Each text as the options' flavour and tokenizer tokenize it.
#[pyfunction]
pub fn bleu_tokenize(
    py: Python<'_>,
    texts: Vec<String>,
    opts: OptionArgs,
) -> PyResult<Vec<String>> {
    let o = options(&opts)?;
    run(py, || Ok(bleu::tokenize_batch(&texts, &o)))
}
