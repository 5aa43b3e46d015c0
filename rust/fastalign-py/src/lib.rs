//! fastalign._core: the thin PyO3 layer over fastalign-core.
//!
//! One file per area (bleu, dedup, pareto, rank, sys) and one naming rule: every function is
//! `<area>_<what>` (`pareto_hypervolume`, `dedup_lsh_params`, `sys_num_threads`); this file
//! holds only the module table. Every entry point follows one pattern: borrow NumPy inputs
//! zero-copy, run the core function through `errors::run` (which releases the GIL, catches
//! panics and maps core errors to Python exceptions), and hand the owned result back to NumPy
//! without copying.

use pyo3::prelude::*;

mod bleu;
mod dedup;
mod errors;
mod pareto;
mod rank;
mod rl;
mod sys;

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(pareto::pareto_pama, m)?)?;
    m.add_function(wrap_pyfunction!(rl::rl_gae_f64, m)?)?;
    m.add_function(wrap_pyfunction!(rl::rl_gae_f32, m)?)?;
    m.add_function(wrap_pyfunction!(pareto::pareto_mgda_weights, m)?)?;
    m.add_function(wrap_pyfunction!(pareto::pareto_non_dominated_sort, m)?)?;
    m.add_function(wrap_pyfunction!(pareto::pareto_crowding_distance, m)?)?;
    m.add_function(wrap_pyfunction!(pareto::pareto_hypervolume, m)?)?;
    m.add_function(wrap_pyfunction!(pareto::pareto_pairs, m)?)?;
    m.add_function(wrap_pyfunction!(bleu::bleu_sentence_scores, m)?)?;
    m.add_function(wrap_pyfunction!(bleu::bleu_stats, m)?)?;
    m.add_function(wrap_pyfunction!(bleu::bleu_score, m)?)?;
    m.add_function(wrap_pyfunction!(bleu::bleu_tokenize, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_signatures, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_cluster, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_cluster_signatures, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_exact, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_lsh_params, m)?)?;
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
    m.add_function(wrap_pyfunction!(sys::sys_debug_fail, m)?)?;
    m.add_function(wrap_pyfunction!(sys::sys_cpu_features, m)?)?;
    m.add_function(wrap_pyfunction!(sys::sys_num_threads, m)?)?;
    Ok(())
}
