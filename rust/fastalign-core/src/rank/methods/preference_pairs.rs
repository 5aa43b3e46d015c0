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
    if mode == PairMode::BestWorst {
        return Ok(best_worst(scores, offsets, margin));
    }
    // rows by score, best first, within each group (stable: earlier rows first among equals)
    let mut order: Vec<usize> = (0..scores.len()).collect();
    for w in offsets.windows(2) {
        order[w[0] as usize..w[1] as usize]
            .sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    }
    let keep = |a: usize, b: usize| scores[a] - scores[b] > margin;
    // each group's chosen rows (a prefix of its order) and the part of the order their
    // rejected rows come from
    let split = |g: &[usize]| -> (usize, usize) {
        match mode {
            PairMode::TopBottom(k) => {
                let k = k.min(g.len() / 2).max(1);
                (k, g.len() - k)
            }
            _ => (g.len(), 0), // all: row x against every later row
        }
    };
    let groups = || {
        offsets
            .windows(2)
            .map(|w| &order[w[0] as usize..w[1] as usize])
            .filter(|g| g.len() >= 2)
    };
    // count first: along the order the gap only grows, so the rows a chosen row beats by more
    // than the margin are a suffix of its candidates (a NaN gap, inf - inf, only at its start)
    let mut total: u128 = 0;
    for g in groups() {
        let (chosen, from) = split(g);
        for x in 0..chosen {
            let cand = &g[from.max(x + 1)..];
            total += (cand.len() - cand.partition_point(|&b| !keep(g[x], b))) as u128;
        }
    }
    let what = || {
        let k = match mode {
            PairMode::TopBottom(k) => format!(" (k={k})"),
            _ => String::new(),
        };
        let name = if mode == PairMode::All {
            "all"
        } else {
            "top_bottom"
        };
        format!(
            "mode='{name}'{k} would produce {} pairs",
            crate::error::grouped(total)
        )
    };
    // the output, allocated once at its exact size (or an error before any pair is made)
    let bytes = crate::mem::bytes_of::<(i64, i64, f64)>(total);
    let too_big = || Error::Memory {
        what: what(),
        bytes,
    };
    let len = usize::try_from(total).map_err(|_| too_big())?;
    let mut c: Vec<i64> = crate::mem::vec_with_capacity(len, what).map_err(|_| too_big())?;
    let mut r: Vec<i64> = crate::mem::vec_with_capacity(len, what).map_err(|_| too_big())?;
    let mut gap: Vec<f64> = crate::mem::vec_with_capacity(len, what).map_err(|_| too_big())?;
    for g in groups() {
        let (chosen, from) = split(g);
        for x in 0..chosen {
            for &b in &g[from.max(x + 1)..] {
                let a = g[x];
                if keep(a, b) {
                    c.push(a as i64);
                    r.push(b as i64);
                    gap.push(scores[a] - scores[b]);
                }
            }
        }
    }
    debug_assert_eq!(c.len(), len, "the count and the pairs disagree");
    Ok((c, r, gap))
}

/// One pair per group: the first of its highest scores against the last of its lowest (the
/// ends of the stable best-first order, in one scan), when their gap exceeds the margin.
fn best_worst(scores: &[f64], offsets: &[i64], margin: f64) -> (Vec<i64>, Vec<i64>, Vec<f64>) {
    let groups = offsets.len() - 1;
    let (mut c, mut r, mut g) = (
        Vec::with_capacity(groups),
        Vec::with_capacity(groups),
        Vec::with_capacity(groups),
    );
    for w in offsets.windows(2) {
        let (s, e) = (w[0] as usize, w[1] as usize);
        if e - s < 2 {
            continue;
        }
        let (mut best, mut worst) = (s, s);
        for i in s + 1..e {
            if scores[i] > scores[best] {
                best = i;
            }
            if scores[i] <= scores[worst] {
                worst = i;
            }
        }
        let gap = scores[best] - scores[worst];
        if gap > margin {
            c.push(best as i64);
            r.push(worst as i64);
            g.push(gap);
        }
    }
    (c, r, g)
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

    /// The pairs as the loop before the counting pass made them.
    fn pairs_by_loop(s: &[f64], off: &[i64], mode: PairMode, margin: f64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        for w in off.windows(2) {
            let mut order: Vec<usize> = (w[0] as usize..w[1] as usize).collect();
            if order.len() < 2 {
                continue;
            }
            order.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)));
            let (top, bottom) = match mode {
                PairMode::TopBottom(k) => {
                    let k = k.min(order.len() / 2).max(1);
                    (k, order.len() - k)
                }
                _ => (order.len(), 0),
            };
            for x in 0..top {
                for y in bottom.max(x + 1)..order.len() {
                    let gap = s[order[x]] - s[order[y]];
                    if gap > margin || (margin == 0.0 && gap > 0.0) {
                        out.push((order[x] as i64, order[y] as i64));
                    }
                }
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn counted_pairs_equal_the_pair_loop(
            raw in proptest::collection::vec(0u8..12, 0..60),
            cuts in proptest::collection::vec(0usize..60, 0..6),
            k in 1usize..5,
            all in proptest::bool::ANY,
            margin in proptest::sample::select(vec![0.0, -0.0, 0.5, 1.0, 3.0]),
        ) {
            // few levels (ties), and infinities (inf - inf is NaN)
            let s: Vec<f64> = raw.iter().map(|&v| match v {
                0 => f64::INFINITY,
                1 => f64::NEG_INFINITY,
                v => f64::from(v) * 0.5,
            }).collect();
            let mut off: Vec<i64> = cuts.iter().map(|&c| c.min(s.len()) as i64).collect();
            off.extend([0, s.len() as i64]);
            off.sort_unstable();
            let mode = if all { PairMode::All } else { PairMode::TopBottom(k) };
            let (c, r, g) = preference_pairs(&s, &off, mode, margin).expect("valid");
            let got: Vec<(i64, i64)> = c.iter().copied().zip(r.iter().copied()).collect();
            proptest::prop_assert_eq!(got, pairs_by_loop(&s, &off, mode, margin));
            for k in 0..c.len() {
                proptest::prop_assert_eq!(g[k], s[c[k] as usize] - s[r[k] as usize]);
            }
        }
    }
}
