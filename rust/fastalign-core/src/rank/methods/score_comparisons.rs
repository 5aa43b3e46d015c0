//! Comparisons aggregated from a matrix of judges' scores.

use crate::{Error, Result};

/// Most items [`score_comparisons`] takes (its counts are two dense `n x n` tables).
pub const MAX_SCORED_ITEMS: usize = 8192;

/// Comparisons aggregated from a score matrix (`n_items x n_judges`, row-major; NaN =
/// not judged): for every judge and every pair of items it scored, the higher score wins
/// and scores within `margin` of each other tie. Returns one row per (winner, loser) with
/// the count of judges as its weight, then one row per tied pair (`i < j`, tie flag set),
/// pairs in row-major order.
#[allow(clippy::type_complexity)]
pub fn score_comparisons(
    scores: &[f64],
    n_items: usize,
    n_judges: usize,
    margin: f64,
) -> Result<(Vec<i64>, Vec<i64>, Vec<f64>, Vec<bool>)> {
    if scores.len() != n_items * n_judges {
        return Err(Error::shape(format!(
            "scores has {} values, expected {n_items} x {n_judges}",
            scores.len()
        )));
    }
    if n_items > MAX_SCORED_ITEMS {
        return Err(Error::invalid(format!(
            "a score matrix of {n_items} items is over the limit of {MAX_SCORED_ITEMS}; pass \
             the comparisons themselves instead"
        )));
    }
    if !(margin.is_finite() && margin >= 0.0) {
        return Err(Error::invalid(format!(
            "margin must be finite and >= 0, got {margin}"
        )));
    }
    if let Some(k) = scores.iter().position(|v| v.is_infinite()) {
        return Err(Error::NonFinite {
            what: "scores",
            location: format!(
                "item {}, judge {}",
                k / n_judges.max(1),
                k % n_judges.max(1)
            ),
            value: scores[k],
        });
    }
    let n = n_items;
    // wins[i * n + j]: judges preferring i to j; ties[i * n + j] (i < j): judges tying them
    let mut wins = vec![0u32; n * n];
    let mut ties = vec![0u32; n * n];
    let mut col: Vec<(u32, f64)> = Vec::with_capacity(n);
    for j in 0..n_judges {
        col.clear();
        col.extend(
            (0..n)
                .map(|i| (i as u32, scores[i * n_judges + j]))
                .filter(|(_, v)| !v.is_nan()),
        );
        for (x, &(a, sa)) in col.iter().enumerate() {
            for &(b, sb) in &col[x + 1..] {
                let (a, b) = (a as usize, b as usize);
                if (sa - sb).abs() <= margin {
                    ties[a * n + b] += 1;
                } else if sa > sb {
                    wins[a * n + b] += 1;
                } else {
                    wins[b * n + a] += 1;
                }
            }
        }
    }
    let (mut w, mut l, mut wt, mut ti) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (k, &c) in wins.iter().enumerate() {
        if c > 0 {
            w.push((k / n) as i64);
            l.push((k % n) as i64);
            wt.push(c as f64);
            ti.push(false);
        }
    }
    for (k, &c) in ties.iter().enumerate() {
        if c > 0 {
            w.push((k / n) as i64);
            l.push((k % n) as i64);
            wt.push(c as f64);
            ti.push(true);
        }
    }
    Ok((w, l, wt, ti))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_comparisons_counts_judges() -> Result<()> {
        // items x judges; NaN = not judged
        let nan = f64::NAN;
        let s = [
            3.0, 1.0, 2.0, /**/ 1.0, 1.0, nan, /**/ 2.0, 5.0, 2.0,
        ];
        let (w, l, wt, ti) = score_comparisons(&s, 3, 3, 0.0)?;
        let rows: Vec<_> = (0..w.len()).map(|k| (w[k], l[k], wt[k], ti[k])).collect();
        assert_eq!(
            rows,
            vec![
                (0, 1, 1.0, false),
                (0, 2, 1.0, false),
                (2, 0, 1.0, false),
                (2, 1, 2.0, false),
                (0, 1, 1.0, true),
                (0, 2, 1.0, true),
            ]
        );
        assert!(score_comparisons(&s, 3, 2, 0.0).is_err());
        assert!(score_comparisons(&[f64::INFINITY, 1.0], 2, 1, 0.0).is_err());
        assert!(score_comparisons(&s, 3, 3, -1.0).is_err());
        Ok(())
    }
}
