//! Rating and voting methods over comparisons, rankings and preference matrices: Elo, Borda,
//! Copeland, Schulze, cycle statistics of the majority graph, preference-pair construction,
//! and seeded bootstrap resampling of Bradley-Terry fits.

use rayon::prelude::*;

use super::{bt, check_matrix};
use crate::{Error, Result};

/// Online Elo over comparisons in order (FastChat's `compute_elo`): expected score
/// `1 / (1 + base^((r_b - r_a) / scale))`, update `k * (actual - expected)`, a tie scoring 0.5.
#[allow(clippy::too_many_arguments)]
pub fn elo(
    winners: &[i64],
    losers: &[i64],
    ties: Option<&[bool]>,
    n: usize,
    k: f64,
    scale: f64,
    base: f64,
    init: f64,
) -> Result<Vec<f64>> {
    if winners.len() != losers.len() || ties.is_some_and(|t| t.len() != winners.len()) {
        return Err(Error::shape(
            "winners, losers and ties must have the same length",
        ));
    }
    if !(k.is_finite() && scale.is_finite() && scale > 0.0 && base > 1.0 && init.is_finite()) {
        return Err(Error::invalid(
            "elo needs finite k and init, scale > 0 and base > 1",
        ));
    }
    super::check_items(n)?;
    let mut r = vec![init; n];
    for (idx, (&a, &b)) in winners.iter().zip(losers).enumerate() {
        if a < 0 || b < 0 || a as u64 >= n as u64 || b as u64 >= n as u64 || a == b {
            return Err(Error::invalid(format!(
                "comparison {idx}: item ids ({a}, {b}) out of range [0, {n}) or equal"
            )));
        }
        let (a, b) = (a as usize, b as usize);
        let ea = 1.0 / (1.0 + base.powf((r[b] - r[a]) / scale));
        let eb = 1.0 / (1.0 + base.powf((r[a] - r[b]) / scale));
        let sa = if ties.is_some_and(|t| t[idx]) {
            0.5
        } else {
            1.0
        };
        r[a] += k * (sa - ea);
        r[b] += k * (1.0 - sa - eb);
    }
    Ok(r)
}

/// Borda points: in a ranking of `L` items, position `p` (0 = best) earns `L - 1 - p`.
pub fn borda(rk: &super::pl::Rankings) -> Vec<f64> {
    let mut pts = vec![0.0; rk.n];
    for w in rk.offsets.windows(2) {
        let r = &rk.items[w[0]..w[1]];
        for (p, &i) in r.iter().enumerate() {
            pts[i as usize] += (r.len() - 1 - p) as f64;
        }
    }
    pts
}

/// Copeland scores: pairwise-majority wins minus losses (a tied pair counts for neither).
pub fn copeland(p: &[f64], m: usize) -> Result<Vec<f64>> {
    check_matrix(p, m, false)?;
    Ok((0..m)
        .map(|i| {
            (0..m)
                .filter(|&j| j != i)
                .map(|j| {
                    let (a, b) = (p[i * m + j], p[j * m + i]);
                    f64::from(u8::from(a > b)) - f64::from(u8::from(a < b))
                })
                .sum()
        })
        .collect())
}

/// Schulze: strongest-path strengths (widest paths over the pairwise wins `P[i][j]` where
/// `P[i][j] > P[j][i]`), and per item the number of others it beats by path strength (the
/// Schulze ranking orders by it; the winners beat everyone else they are not tied with).
pub fn schulze(p: &[f64], m: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    check_matrix(p, m, false)?;
    let mut s = vec![0.0f64; m * m];
    for i in 0..m {
        for j in 0..m {
            if i != j && p[i * m + j] > p[j * m + i] {
                s[i * m + j] = p[i * m + j];
            }
        }
    }
    for k in 0..m {
        for i in 0..m {
            if i == k {
                continue;
            }
            let sik = s[i * m + k];
            if sik == 0.0 {
                continue;
            }
            for j in 0..m {
                if j != i && j != k {
                    let via = sik.min(s[k * m + j]);
                    if via > s[i * m + j] {
                        s[i * m + j] = via;
                    }
                }
            }
        }
    }
    let wins = (0..m)
        .map(|i| {
            (0..m)
                .filter(|&j| j != i && s[i * m + j] > s[j * m + i])
                .count() as f64
        })
        .collect();
    Ok((wins, s))
}

/// Cycle statistics of the majority graph (edge i -> j when `P[i][j] > P[j][i]`): the
/// strongly connected component of each item (components numbered in topological order, the
/// top one first), their count, and the number of directed 3-cycles.
pub fn cycles(p: &[f64], m: usize) -> Result<(Vec<u32>, usize, u64)> {
    check_matrix(p, m, false)?;
    let words = m.div_ceil(64);
    let (mut out_bits, mut in_bits) = (vec![0u64; m * words], vec![0u64; m * words]);
    let (mut w, mut l) = (Vec::new(), Vec::new());
    for i in 0..m {
        for j in 0..m {
            if i != j && p[i * m + j] > p[j * m + i] {
                out_bits[i * words + j / 64] |= 1 << (j % 64);
                in_bits[j * words + i / 64] |= 1 << (i % 64);
                w.push(i as i64);
                l.push(j as i64);
            }
        }
    }
    // each 3-cycle i -> j -> k -> i is found once per edge: count k for every edge, divide by 3
    let mut three = 0u64;
    for (&i, &j) in w.iter().zip(&l) {
        let (i, j) = (i as usize, j as usize);
        three += (0..words)
            .map(|x| (out_bits[j * words + x] & in_bits[i * words + x]).count_ones() as u64)
            .sum::<u64>();
    }
    let pairs = bt::aggregate(&w, &l, None, None, Some(m))?;
    let (comp, count) = bt::beat_components(&pairs);
    Ok((comp, count, three / 3))
}

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

/// splitmix64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Bradley-Terry scores of `rounds` bootstrap resamples of the comparisons (row-major
/// `rounds x n`), in parallel; round `b` draws its rows from a generator seeded by
/// `(seed, b)` alone, so results do not depend on the thread count. A resample without a
/// maximum (possible without a prior), or whose fit did not converge, gives a row of NaN;
/// the count of such rounds is returned too.
#[allow(clippy::too_many_arguments)]
pub fn bootstrap_bt(
    winners: &[i64],
    losers: &[i64],
    weights: Option<&[f64]>,
    ties: Option<&[bool]>,
    n: usize,
    prior: f64,
    tol: f64,
    max_iter: usize,
    rounds: usize,
    seed: u64,
    davidson: bool,
) -> Result<(Vec<f64>, usize)> {
    // aggregate once; a resample then only re-weights the pairs of the full table (drawing
    // row k adds its weights to its pair), which is the same as aggregating the drawn rows
    let base = bt::aggregate(winners, losers, weights, ties, Some(n))?;
    super::newton::check_args(prior, tol)?;
    let m = winners.len();
    if m == 0 {
        return Err(Error::invalid("no comparisons to resample"));
    }
    let slot = bt::slots(&base, winners, losers);
    let fits: Vec<Option<Vec<f64>>> = (0..rounds)
        .into_par_iter()
        .map(|b| {
            let mut state = mix(seed ^ mix(b as u64));
            let k_pairs = base.i.len();
            let (mut wij, mut wji) = (vec![0.0f64; k_pairs], vec![0.0f64; k_pairs]);
            let mut tie = vec![0.0f64; if ties.is_some() { k_pairs } else { 0 }];
            for _ in 0..m {
                state = mix(state);
                // Lemire's multiply-shift: an index in [0, m) without modulo bias worth noting
                let k = ((state as u128 * m as u128) >> 64) as usize;
                let at = slot[k] as usize;
                if at == u32::MAX as usize {
                    continue;
                }
                let w = weights.map_or(1.0, |w| w[k]);
                if ties.is_some_and(|t| t[k]) {
                    wij[at] += 0.5 * w;
                    wji[at] += 0.5 * w;
                    tie[at] += w;
                } else if winners[k] < losers[k] {
                    wij[at] += w;
                } else {
                    wji[at] += w;
                }
            }
            // keep the pairs drawn at least once
            let mut pairs = bt::Pairs {
                n,
                ..bt::Pairs::default()
            };
            for e in 0..k_pairs {
                if wij[e] + wji[e] > 0.0 {
                    pairs.i.push(base.i[e]);
                    pairs.j.push(base.j[e]);
                    pairs.wij.push(wij[e]);
                    pairs.wji.push(wji[e]);
                    pairs.tie.push(tie.get(e).copied().unwrap_or(0.0));
                }
            }
            let fit = if davidson {
                bt::fit_davidson(&pairs, prior, tol, max_iter)
                    .ok()
                    .map(|f| f.0)
            } else {
                bt::fit(&pairs, prior, tol, max_iter).ok()
            };
            // a fit that did not converge counts as failed, never as an interval sample
            fit.filter(|f| f.converged).map(|f| f.scores)
        })
        .collect();
    let mut out = Vec::with_capacity(rounds * n);
    let mut failed = 0;
    for f in fits {
        match f {
            Some(s) => out.extend(s),
            None => {
                failed += 1;
                out.resize(out.len() + n, f64::NAN);
            }
        }
    }
    Ok((out, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_reweighting_equals_aggregating_the_drawn_rows() -> Result<()> {
        // rows drawn exactly as bootstrap_bt draws them, aggregated from scratch, then fitted
        let mut st = 7u64;
        let mut next = || {
            st = mix(st);
            st
        };
        let (n, m) = (6usize, 300usize);
        let (mut w, mut l, mut wt, mut ti) = (vec![], vec![], vec![], vec![]);
        for _ in 0..m {
            let a = (next() % n as u64) as i64;
            let b = (a + 1 + (next() % (n as u64 - 1)) as i64) % n as i64;
            w.push(a);
            l.push(b);
            wt.push(0.5 + (next() % 4) as f64);
            ti.push(next() % 5 == 0);
        }
        let (out, failed) = bootstrap_bt(
            &w,
            &l,
            Some(&wt),
            Some(&ti),
            n,
            0.1,
            1e-12,
            200,
            3,
            11,
            false,
        )?;
        assert_eq!(failed, 0);
        for b in 0..3usize {
            let mut state = mix(11 ^ mix(b as u64));
            let (mut dw, mut dl, mut dwt, mut dti) = (vec![], vec![], vec![], vec![]);
            for _ in 0..m {
                state = mix(state);
                let k = ((state as u128 * m as u128) >> 64) as usize;
                dw.push(w[k]);
                dl.push(l[k]);
                dwt.push(wt[k]);
                dti.push(ti[k]);
            }
            let p = bt::aggregate(&dw, &dl, Some(&dwt), Some(&dti), Some(n))?;
            let f = bt::fit(&p, 0.1, 1e-12, 200)?;
            for i in 0..n {
                assert!((out[b * n + i] - f.scores[i]).abs() < 1e-9);
            }
        }
        Ok(())
    }

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

    #[test]
    fn elo_first_update() {
        // equal ratings: expected 0.5 each, the winner gains k / 2
        let r = elo(&[0], &[1], None, 2, 4.0, 400.0, 10.0, 1000.0).expect("elo");
        assert_eq!(r, [1002.0, 998.0]);
        let r = elo(&[0], &[1], Some(&[true]), 2, 4.0, 400.0, 10.0, 1000.0).expect("elo");
        assert_eq!(r, [1000.0, 1000.0]);
    }

    #[test]
    fn schulze_and_copeland_on_a_classic() {
        // Wikipedia's Schulze example (45 voters, 5 candidates A..E): winner E
        let d = [
            0., 20., 26., 30., 22., 25., 0., 16., 33., 18., 19., 29., 0., 17., 24., 15., 12., 28.,
            0., 14., 23., 27., 21., 31., 0.,
        ];
        let (wins, _) = schulze(&d, 5).expect("schulze");
        assert_eq!(wins, [3.0, 1.0, 2.0, 0.0, 4.0]); // E > A > C > B > D
        let c = copeland(&d, 5).expect("copeland");
        assert_eq!(c.iter().sum::<f64>(), 0.0);
    }

    #[test]
    fn three_cycles_and_components() {
        // rock-paper-scissors plus a dominated fourth item
        let p = [
            0., 1., 0., 1., 0., 0., 1., 1., 1., 0., 0., 1., 0., 0., 0., 0.,
        ];
        let (comp, count, three) = cycles(&p, 4).expect("cycles");
        assert_eq!((count, three), (2, 1));
        assert_eq!(comp[0], comp[1]);
        assert_ne!(comp[0], comp[3]);
    }

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

    #[test]
    fn bootstrap_is_deterministic_for_any_thread_count() {
        let w: Vec<i64> = (0..300).map(|k| (k * 7 % 5) as i64).collect();
        let l: Vec<i64> = (0..300)
            .map(|k| ((k * 7 % 5 + 1 + k % 4) % 5) as i64)
            .collect();
        let run = |t| {
            crate::sys::with_threads(Some(t), || {
                bootstrap_bt(&w, &l, None, None, 5, 0.1, 1e-10, 100, 16, 42, false)
            })
            .expect("boot")
        };
        assert_eq!(run(1), run(2));
        assert_ne!(
            run(1).0,
            bootstrap_bt(&w, &l, None, None, 5, 0.1, 1e-10, 100, 16, 43, false)
                .expect("b")
                .0
        );
    }
}
