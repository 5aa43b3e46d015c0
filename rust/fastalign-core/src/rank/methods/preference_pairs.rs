//! Preference pairs (chosen, rejected) from per-response scores grouped by prompt.

use crate::{Error, Result};

/// How pairs are chosen within a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairMode {
    /// The best against the worst (one pair per group, none when they tie).
    BestWorst,
    /// Every pair whose score gap exceeds the margin.
    All,
    /// Each of the `k` best against each of the `k` worst (gap above the margin).
    TopBottom(usize),
}

/// Preference pairs from per-response scores grouped by `offsets` (one group per prompt):
/// (chosen row, rejected row, score gap), rows as global indices; ties broken by row order.
pub fn preference_pairs(
    scores: &[f64],
    offsets: &[i64],
    mode: PairMode,
    margin: f64,
) -> Result<(Vec<i64>, Vec<i64>, Vec<f64>)> {
    if let Some(k) = scores.iter().position(|v| v.is_nan()) {
        return Err(Error::NonFinite {
            what: "scores",
            location: format!("row {k}"),
            value: scores[k],
        });
    }
    if !(margin.is_finite() && margin >= 0.0) {
        return Err(Error::invalid(format!(
            "margin must be finite and >= 0, got {margin}"
        )));
    }
    if offsets.is_empty()
        || offsets[0] != 0
        || *offsets.last().unwrap_or(&0) != scores.len() as i64
        || offsets.windows(2).any(|w| w[1] < w[0])
    {
        return Err(Error::invalid(format!(
            "offsets must rise from 0 to the number of scores ({})",
            scores.len()
        )));
    }
    let groups = offsets.len() - 1;
    let cap = if mode == PairMode::BestWorst {
        groups
    } else {
        0
    };
    let (mut c, mut r, mut g) = (
        Vec::with_capacity(cap),
        Vec::with_capacity(cap),
        Vec::with_capacity(cap),
    );
    let mut push = |a: usize, b: usize| {
        let gap = scores[a] - scores[b];
        if gap > margin || (margin == 0.0 && gap > 0.0) {
            c.push(a as i64);
            r.push(b as i64);
            g.push(gap);
        }
    };
    let mut order: Vec<usize> = Vec::new(); // reused by the sorting modes
    for w in offsets.windows(2) {
        let (s, e) = (w[0] as usize, w[1] as usize);
        if e - s < 2 {
            continue;
        }
        if mode == PairMode::BestWorst {
            // the ends of the stable best-first order, in one scan: the first of the
            // highest scores and the last of the lowest
            let (mut best, mut worst) = (s, s);
            for i in s + 1..e {
                if scores[i] > scores[best] {
                    best = i;
                }
                if scores[i] <= scores[worst] {
                    worst = i;
                }
            }
            push(best, worst);
            continue;
        }
        // rows by score, best first (stable: earlier rows first among equals)
        order.clear();
        order.extend(s..e);
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        match mode {
            PairMode::TopBottom(k) => {
                let k = k.min(order.len() / 2).max(1);
                for &a in &order[..k] {
                    for &b in &order[order.len() - k..] {
                        push(a, b);
                    }
                }
            }
            _ => {
                // PairMode::All (best-worst took the scan above)
                for x in 0..order.len() {
                    for y in x + 1..order.len() {
                        push(order[x], order[y]);
                    }
                }
            }
        }
    }
    Ok((c, r, g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_modes() {
        let s = [0.1, 0.9, 0.5, 0.5, 2.0, 1.0];
        let off = [0, 4, 6];
        let (c, r, g) = preference_pairs(&s, &off, PairMode::BestWorst, 0.0).expect("pairs");
        assert_eq!((c, r), (vec![1, 4], vec![0, 5]));
        assert!((g[0] - 0.8).abs() < 1e-15);
        let (c, _, _) = preference_pairs(&s, &off, PairMode::All, 0.0).expect("pairs");
        assert_eq!(c.len(), 5 + 1); // the tied pair (2, 3) is skipped
        let (c, r, _) = preference_pairs(&s, &off, PairMode::TopBottom(2), 0.3).expect("pairs");
        assert_eq!((c, r), (vec![1, 1, 2, 4], vec![3, 0, 0, 5]));
        assert!(preference_pairs(&[f64::NAN], &[0, 1], PairMode::All, 0.0).is_err());
    }
}
