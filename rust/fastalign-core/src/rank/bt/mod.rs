//! Bradley-Terry maximum likelihood by Newton's method with matrix-free conjugate-gradient
//! steps over the aggregated comparison graph.
//!
//! Objective (maximized): `sum_k w_k log sigmoid(s[win_k] - s[lose_k]) - prior/2 * ||s||^2`,
//! a tie counting as half a win each way. Comparisons are first summed per unordered pair
//! (a counting sort by the lower id, then dense sums per row), so every iteration costs
//! O(distinct pairs). Converged when every item's gradient is at most `tol` times the total
//! weight of its comparisons (at least 1). Without a prior the maximum exists only when the
//! "beat" graph is strongly connected (Zermelo's condition); otherwise the call fails and says
//! which items form a group that never loses (or never wins) against the rest.
//! [`fit_rows`] takes the comparisons themselves and fits dense tables instead
//! ([`dense`]) when they cover most pairs of items.
//!
//! Layout, each layer using only those before it: [`graph`] (checked comparisons summed per
//! pair, identifiability, the log-odds start), then the models over it: [`pairs`] (the pair
//! list), [`davidson`] (the Davidson tie model on the pair list) and [`dense`] (dense tables,
//! with their SIMD row kernels in `dense_rows`); this module dispatches between them.

pub mod davidson;
pub mod dense;
mod dense_rows;
pub mod graph;
pub mod pairs;
#[cfg(test)]
mod testdata;

pub use crate::rank::newton::Fit;
pub use davidson::fit_davidson;
pub use graph::{
    aggregate, beat_components, check_identifiable, reach_from_first, scale, slots, wins_totals,
    Pairs,
};
pub use pairs::fit;

use crate::Result;
use graph::{aggregate_n, item_count};

/// Fits Bradley-Terry strengths (natural-log scale, mean 0) to comparison rows, as
/// [`aggregate`] and [`fit`] do: on dense tables when the comparisons cover most pairs of
/// items ([`dense`]), on the pair list otherwise.
#[allow(clippy::too_many_arguments)]
pub fn fit_rows(
    winners: &[i64],
    losers: &[i64],
    weights: Option<&[f64]>,
    ties: Option<&[bool]>,
    n_items: Option<usize>,
    prior: f64,
    tol: f64,
    max_iter: usize,
) -> Result<Fit> {
    let n = item_count(winners, losers, weights, ties, n_items)?;
    if !dense::dense_enough(n, winners.len()) {
        let pairs = aggregate_n(winners, losers, weights, ties, n)?;
        return fit(&pairs, prior, tol, max_iter);
    }
    if weights.is_none() && ties.is_none() && winners.len() < dense::F32_EXACT {
        let table = dense::counted::<f32, u32>(winners, losers, n)?;
        dense::fit(&table, prior, tol, max_iter)
    } else if weights.is_none() && ties.is_none() {
        let table = dense::counted::<f64, u64>(winners, losers, n)?;
        dense::fit(&table, prior, tol, max_iter)
    } else {
        let table = dense::weighed(winners, losers, weights, ties, n)?;
        dense::fit(&table, prior, tol, max_iter)
    }
}

#[cfg(test)]
mod tests {
    use super::dense::dense_enough;
    use super::graph::log_odds;
    use super::pairs::fit as fit_pairs;
    use super::testdata::rows;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edge_weights() {
        // a tie whose half rounds to 0 is no edge at all, as in the pair list: 0 never loses
        let (w, l) = ([0i64, 0], [1i64, 1]);
        let (wt, ti) = ([1.0, 5e-324], [false, true]);
        let dense = fit_rows(&w, &l, Some(&wt), Some(&ti), None, 0.0, 1e-10, 100);
        let pairs = aggregate(&w, &l, Some(&wt), Some(&ti), None)
            .and_then(|p| fit_pairs(&p, 0.0, 1e-10, 100));
        let (a, b) = (dense.expect_err("dense"), pairs.expect_err("pairs"));
        assert_eq!(a.to_string(), b.to_string());
        // wins and totals summed in different orders: the log-odds of a negative loss would
        // be NaN, and the fit would stop at once with NaN scores. (Weights 17 orders of
        // magnitude apart are beyond f64 gradients: item 0's 12 wins over items 2 and 3 are
        // below the rounding of its 1e17; neither path converges, and both say so.)
        assert!(log_odds(&[1e17 + 16.0, 3.0], &[1e17, 0.0])
            .iter()
            .all(|x| x.is_finite()));
        let mut cmp = vec![(0i64, 2i64, 1.0); 6];
        cmp.extend(vec![(0, 3, 1.0); 6]);
        cmp.extend([(0, 1, 1e17), (1, 0, 1.0), (2, 0, 1.0), (3, 0, 1.0)]);
        let w: Vec<i64> = cmp.iter().map(|c| c.0).collect();
        let l: Vec<i64> = cmp.iter().map(|c| c.1).collect();
        let wt: Vec<f64> = cmp.iter().map(|c| c.2).collect();
        assert!(dense_enough(4, w.len()));
        let dense = fit_rows(&w, &l, Some(&wt), None, None, 0.0, 1e-10, 50).expect("dense");
        let p = aggregate(&w, &l, Some(&wt), None, None).expect("pairs");
        let pairs = fit_pairs(&p, 0.0, 1e-10, 50).expect("pairs");
        assert_eq!(dense.converged, pairs.converged, "{dense:?} {pairs:?}");
        assert!(dense.iterations > 0 && dense.scores.iter().all(|x| x.is_finite()));
        // any scale of weights: the same fit (the curvature cache is relative)
        let n = 20;
        let (w, l, wt, _) = rows(n, 800, 8, true, 0.0);
        let wt = wt.expect("weights");
        let base = fit_rows(&w, &l, Some(&wt), None, Some(n), 0.0, 1e-12, 200).expect("base");
        for scale in [1e-300, 1e-46, 1e-30, 1e30, 1e40, 1e300] {
            let scaled: Vec<f64> = wt.iter().map(|x| x * scale).collect();
            let f = fit_rows(&w, &l, Some(&scaled), None, Some(n), 0.0, 1e-12, 200).expect("fit");
            assert!(f.converged, "{scale}: {f:?}");
            for (x, y) in f.scores.iter().zip(&base.scores) {
                assert!((x - y).abs() <= 1e-9, "{scale}: {x} {y}");
            }
        }
    }

    #[test]
    fn the_same_bits_for_any_thread_count() {
        let n = 150;
        for (weighted, tie_rate) in [(false, 0.0), (true, 0.1)] {
            let (w, l, wt, ti) = rows(n, 150_000, 4, weighted, tie_rate);
            let run = |threads| {
                crate::sys::with_threads(Some(threads), || {
                    fit_rows(&w, &l, wt.as_deref(), ti.as_deref(), None, 0.0, 1e-10, 100)
                })
                .expect("fit")
            };
            let one = run(1);
            assert!(one.converged);
            assert_eq!(one, run(2));
            assert_eq!(one, run(3));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// The dense fit equals the pair list's (or fails with the same error).
        #[test]
        fn dense_fits_equal_the_pair_list(
            n in 2usize..30,
            per_cell in 0.5f64..4.0,
            seed in 0u64..1_000_000,
            weighted in any::<bool>(),
            tie_rate in prop_oneof![Just(0.0), 0.0f64..0.5],
            prior in prop_oneof![Just(0.0), 0.01f64..2.0],
        ) {
            let m = ((n * n) as f64 * per_cell) as usize;
            let (w, l, wt, ti) = rows(n, m, seed, weighted, tie_rate);
            prop_assume!(dense_enough(n, m));
            let dense = fit_rows(&w, &l, wt.as_deref(), ti.as_deref(), Some(n), prior, 1e-11, 200);
            let pairs = aggregate(&w, &l, wt.as_deref(), ti.as_deref(), Some(n))
                .and_then(|p| fit_pairs(&p, prior, 1e-11, 200));
            match (dense, pairs) {
                (Ok(a), Ok(b)) => {
                    prop_assert!(a.converged && b.converged);
                    for (x, y) in a.scores.iter().zip(&b.scores) {
                        prop_assert!((x - y).abs() <= 1e-8, "{x} {y}");
                    }
                }
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                (a, b) => prop_assert!(false, "{a:?} vs {b:?}"),
            }
        }
    }
}
