//! Ranking aggregation over comparisons, rankings and preference matrices:
//!
//! - [`bt`]: Bradley-Terry maximum likelihood (pair list, dense tables, Davidson's tie model);
//! - [`pl`]: Plackett-Luce maximum likelihood over rankings;
//! - [`newton`]: the Newton / conjugate-gradient driver both fit with;
//! - [`lottery`]: the maximal lottery of a pairwise-preference matrix;
//! - [`kemeny`]: the Kemeny ranking of a preference matrix (exact for few items, local search
//!   beyond);
//! - [`methods`]: Elo, Borda, Copeland, Schulze, cycle statistics of the majority graph,
//!   preference-pair construction, comparisons from a score matrix, and bootstrap resampling of
//!   Bradley-Terry fits.
//!
//! Here: the item-count and matrix checks they share, and competition ranks of scores.

// edge-list loops index several parallel arrays by edge; index loops read clearest
#![allow(clippy::needless_range_loop)]

pub mod bt;
pub mod kemeny;
pub mod lottery;
pub mod methods;
pub mod newton;
pub mod pl;
#[cfg(test)]
mod testdata;

/// The most items a ranking call accepts (each item costs a few vectors of 8-byte values;
/// beyond this an id is almost surely a mistake, and allocation failure would abort).
pub const MAX_ITEMS: usize = 1 << 27;

/// An error for item counts above [`MAX_ITEMS`].
pub fn check_items(n: usize) -> crate::Result<()> {
    if n > MAX_ITEMS {
        return Err(crate::Error::invalid(format!(
            "{n} items (from n_items or the largest id) is more than the {MAX_ITEMS} supported; \
             ids must be 0..n_items-1 (map sparse ids or labels to dense ids first)"
        )));
    }
    Ok(())
}

/// The peak memory of a Newton fit per item, about: a score vector's worth of `f64`s for the
/// iterate, its gradients and curvature diagonals, the trial point, the conjugate-gradient
/// vectors and the convergence scale, and the comparison graph's per-item tables beside them
/// (measured, peak virtual size of fits over 4M items: 240-256 bytes an item for
/// Bradley-Terry, 240-276 for Plackett-Luce).
pub(crate) const FIT_BYTES_PER_ITEM: u128 = 320;

/// Checks that `fits` Newton fits over `n` items can run at once (their per-item working sets,
/// which they allocate in pieces): [`crate::Error::Memory`] naming the item count otherwise.
pub(crate) fn check_fit_room(n: usize, fits: u128) -> crate::Result<()> {
    let bytes = (n as u128) * FIT_BYTES_PER_ITEM * fits.max(1);
    crate::mem::check_room(bytes, || {
        let fits = if fits > 1 {
            format!("{fits} fits at once")
        } else {
            "a fit".to_owned()
        };
        format!(
            "{fits} over {} items (n_items, or the largest id + 1) would need about {} bytes \
             an item",
            crate::error::grouped(n as u128),
            FIT_BYTES_PER_ITEM
        )
    })
}

/// Competition ranks ("1224") of scores, highest first: equal scores share the best rank.
pub fn ranks_desc(scores: &[f64]) -> Vec<i64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut ranks = vec![0i64; scores.len()];
    for (pos, &i) in order.iter().enumerate() {
        ranks[i] = if pos > 0 && scores[order[pos - 1]] == scores[i] {
            ranks[order[pos - 1]]
        } else {
            pos as i64 + 1
        };
    }
    ranks
}

/// Checks a row-major `m x m` preference matrix: the right size (non-empty when
/// `non_empty`), every weight finite and >= 0 (the error names the first bad cell).
pub(crate) fn check_matrix(p: &[f64], m: usize, non_empty: bool) -> crate::Result<()> {
    if p.len() != m * m || (non_empty && m == 0) {
        let what = if non_empty {
            "a non-empty m x m"
        } else {
            "an m x m"
        };
        return Err(crate::Error::shape(format!(
            "P must be {what} matrix, got {} values for m = {m}",
            p.len()
        )));
    }
    if let Some(k) = p.iter().position(|v| !v.is_finite() || *v < 0.0) {
        return Err(crate::Error::NonFinite {
            what: "P",
            location: format!(
                "row {}, column {} (weights must be finite and >= 0)",
                k / m,
                k % m
            ),
            value: p[k],
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn competition_ranks() {
        assert_eq!(super::ranks_desc(&[0.5, 2.0, 0.5, -1.0]), [2, 1, 2, 4]);
        assert!(super::ranks_desc(&[]).is_empty());
    }
}
