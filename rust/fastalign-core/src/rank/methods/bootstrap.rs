//! Seeded bootstrap resampling of Bradley-Terry fits.

use rayon::prelude::*;

use crate::rank::bt;
use crate::rank::newton::check_args;
use crate::{Error, Result};

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
    check_args(prior, tol)?;
    let m = winners.len();
    if m == 0 {
        return Err(Error::invalid("no comparisons to resample"));
    }
    // the result first, at its full size (or an error before any round runs), and room for
    // the fits that run at once
    let cells = rounds as u128 * n as u128;
    let what = || {
        format!(
            "bootstrap_rounds={} x {} items would produce {} scores",
            crate::error::grouped(rounds as u128),
            crate::error::grouped(n as u128),
            crate::error::grouped(cells)
        )
    };
    let len = usize::try_from(cells).map_err(|_| Error::Memory {
        what: what(),
        bytes: crate::mem::bytes_of::<f64>(cells),
    })?;
    let mut out = crate::mem::vec_filled(len, f64::NAN, what)?;
    let at_once = rayon::current_num_threads().min(rounds) as u128;
    crate::rank::check_fit_room(n, at_once)?;
    let stop = crate::cancel::Token::current();
    // the rounds, on the pool (a thread that polls the call's token polls while they run)
    let failed: usize = crate::cancel::offload(None, rounds > 1, || {
        let slot = bt::slots(&base, winners, losers);
        out.par_chunks_mut(n.max(1))
            .enumerate()
            .map(|(b, row)| {
                if stop.is_cancelled() {
                    return 0;
                }
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
                // a fit that did not converge counts as failed, never as an interval sample (its
                // row stays NaN)
                match fit.filter(|f| f.converged) {
                    Some(f) => {
                        row.copy_from_slice(&f.scores);
                        0
                    }
                    None => 1,
                }
            })
            .sum()
    });
    stop.check()?;
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

    #[test]
    fn rounds_stop_when_cancelled() {
        use crate::cancel::testing::{cancel_after, polled_stop_after};
        use crate::cancel::Token;
        use std::time::Duration;
        let w: Vec<i64> = (0..300).map(|k| (k * 7 % 5) as i64).collect();
        let l: Vec<i64> = (0..300)
            .map(|k| ((k * 7 % 5 + 1 + k % 4) % 5) as i64)
            .collect();
        let boot = |rounds| bootstrap_bt(&w, &l, None, None, 5, 0.1, 1e-10, 100, rounds, 42, false);
        let want = boot(16).expect("boot");
        let token = Token::new();
        assert_eq!(token.scope(|| boot(16)), Ok(want)); // the same bits
        token.cancel();
        assert_eq!(token.scope(|| boot(16)), Err(Error::Interrupted));
        // stopped while it runs (a million rounds: seconds), by a cancel or by the poll
        let (out, late) = cancel_after(Duration::from_millis(50), || boot(1_000_000));
        assert_eq!(out, Err(Error::Interrupted));
        assert!(late < Duration::from_secs(1), "{late:?}");
        let (out, late, polls) = polled_stop_after(Duration::from_millis(120), || boot(1_000_000));
        assert_eq!(out, Err(Error::Interrupted));
        assert!(late < Duration::from_secs(1), "{late:?}");
        assert!(polls >= 2, "{polls}");
    }

    #[test]
    fn too_many_rounds_are_an_error_not_an_abort() {
        let (w, l) = ([0i64, 1], [1i64, 0]);
        // 2^62 x 2 scores: more than any machine, refused before a round runs
        match bootstrap_bt(&w, &l, None, None, 2, 0.1, 1e-10, 100, 1 << 62, 0, false) {
            Err(Error::Memory { what, bytes }) => {
                assert!(what.starts_with("bootstrap_rounds=4,611,686,018,427,387,904 x 2 items"));
                assert_eq!(bytes, (1u128 << 63) * 8);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
