//! The time-step recurrences of RL advantage estimation, as one reverse scan per row.
//!
//! GAE (Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage
//! Estimation") over the valid tokens of each row: with `V'` the value of the next valid token
//! (or the row's bootstrap value past its last valid token, 0 without one),
//!
//! ```text
//! delta_t = r_t + gamma * V' - V_t,    A_t = delta_t + gamma * lam * A',    R_t = A_t + V_t
//! ```
//!
//! where `A'` is the next valid token's advantage (0 past the last). Masked tokens (padding,
//! prompt, or interior gaps such as tool output) are skipped: they carry `V'` and `A'` through
//! unchanged and get 0. Without values and with `lam = 1` the same scan is the discounted
//! reward-to-go `G_t = r_t + gamma * G'`. The arithmetic is float64 whatever the storage type.

use crate::{Error, Result};

/// Storage types the scan reads and writes (it computes in float64).
pub trait Real: Copy + Send + Sync + Default {
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl Real for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

impl Real for f32 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[allow(clippy::cast_possible_truncation)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

/// Advantages and returns (`[rows, cols]`, row-major) by the GAE scan; `values` None means
/// all zeros (then the returns equal the advantages), `last_values` one bootstrap value per
/// row (None: 0). `mask` is one byte per token, non-zero where the token is valid.
#[allow(clippy::too_many_arguments)]
pub fn gae<R: Real>(
    rewards: &[R],
    values: Option<&[R]>,
    mask: &[u8],
    last_values: Option<&[R]>,
    rows: usize,
    cols: usize,
    gamma: f64,
    lam: f64,
) -> Result<(Vec<R>, Vec<R>)> {
    let len = rows
        .checked_mul(cols)
        .ok_or_else(|| Error::shape("rows x cols overflows"))?;
    let mut adv = crate::mem::vec_filled(len, R::default(), || "advantages".into())?;
    let mut ret = crate::mem::vec_filled(len, R::default(), || "returns".into())?;
    gae_into(
        rewards,
        values,
        mask,
        last_values,
        rows,
        cols,
        gamma,
        lam,
        &mut adv,
        &mut ret,
    )?;
    Ok((adv, ret))
}

/// [`gae`] into caller-owned outputs (`[rows, cols]` each; every element is written, 0 on
/// masked tokens), so that a binding can hand over buffers its own allocator made.
#[allow(clippy::too_many_arguments)]
pub fn gae_into<R: Real>(
    rewards: &[R],
    values: Option<&[R]>,
    mask: &[u8],
    last_values: Option<&[R]>,
    rows: usize,
    cols: usize,
    gamma: f64,
    lam: f64,
    adv: &mut [R],
    ret: &mut [R],
) -> Result<()> {
    let len = rows
        .checked_mul(cols)
        .ok_or_else(|| Error::shape("rows x cols overflows"))?;
    let check = |name: &str, got: usize, want: usize| {
        if got == want {
            Ok(())
        } else {
            Err(Error::shape(format!(
                "{name} has {got} values, expected {want}"
            )))
        }
    };
    check("rewards", rewards.len(), len)?;
    check("mask", mask.len(), len)?;
    check("advantages", adv.len(), len)?;
    check("returns", ret.len(), len)?;
    if let Some(v) = values {
        check("values", v.len(), len)?;
    }
    if let Some(l) = last_values {
        check("last_values", l.len(), rows)?;
    }
    if !(gamma.is_finite() && lam.is_finite()) {
        return Err(Error::invalid("gamma and lam must be finite"));
    }
    if cols == 0 {
        return Ok(());
    }
    let gl = gamma * lam;
    let row = |(b, (a_row, r_row)): (usize, (&mut [R], &mut [R]))| {
        let at = b * cols;
        let (rw, mk) = (&rewards[at..at + cols], &mask[at..at + cols]);
        let vals = values.map(|v| &v[at..at + cols]);
        let mut next_v = last_values.map_or(0.0, |l| l[b].to_f64());
        let mut next_a = 0.0;
        for t in (0..cols).rev() {
            if mk[t] == 0 {
                // outputs 0; V' and A' carry over the gap
                a_row[t] = R::default();
                r_row[t] = R::default();
                continue;
            }
            let v = vals.map_or(0.0, |v| v[t].to_f64());
            let a = rw[t].to_f64() + gamma * next_v - v + gl * next_a;
            a_row[t] = R::from_f64(a);
            r_row[t] = R::from_f64(a + v);
            next_v = v;
            next_a = a;
        }
    };
    // one thread: on the 2-core machine two threads were slower (1.3-2x: the outputs' first
    // writes fault their pages in, and faults from two threads contend); the scan itself is
    // ~2 ns a token
    adv.chunks_mut(cols)
        .zip(ret.chunks_mut(cols))
        .enumerate()
        .for_each(row);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The recurrence as written in verl's loop (masked tokens carry the next value and
    /// advantage), in float64, with 0 on masked tokens.
    fn looped(r: &[f64], v: &[f64], m: &[u8], last: f64, gamma: f64, lam: f64) -> Vec<f64> {
        let (mut next_v, mut next_a) = (last, 0.0);
        let mut out = vec![0.0; r.len()];
        for t in (0..r.len()).rev() {
            let delta = r[t] + gamma * next_v - v[t];
            let a = delta + gamma * lam * next_a;
            if m[t] != 0 {
                next_v = v[t];
                next_a = a;
                out[t] = a;
            }
        }
        out
    }

    proptest! {
        #[test]
        fn scan_matches_the_loop(rows in 1usize..5, cols in 0usize..40, seed in any::<u64>(),
                                 gamma in 0.0f64..1.5, lam in 0.0f64..1.0) {
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            let n = rows * cols;
            let r: Vec<f64> = (0..n).map(|_| (next() % 1000) as f64 / 100.0 - 5.0).collect();
            let v: Vec<f64> = (0..n).map(|_| (next() % 1000) as f64 / 100.0 - 5.0).collect();
            let m: Vec<u8> = (0..n).map(|_| u8::from(next() % 4 != 0)).collect();
            let last: Vec<f64> = (0..rows).map(|_| (next() % 100) as f64 / 10.0).collect();
            let (a, ret) = gae(&r, Some(&v), &m, Some(&last), rows, cols, gamma, lam).expect("valid");
            for (b, &lb) in last.iter().enumerate() {
                let sl = b * cols..(b + 1) * cols;
                let want = looped(&r[sl.clone()], &v[sl.clone()], &m[sl.clone()], lb, gamma, lam);
                for (t, &w) in want.iter().enumerate() {
                    let i = b * cols + t;
                    prop_assert!((a[i] - w).abs() <= 1e-12 * w.abs().max(1.0));
                    let wr = if m[i] != 0 { w + v[i] } else { 0.0 };
                    prop_assert!((ret[i] - wr).abs() <= 1e-12 * wr.abs().max(1.0));
                }
            }
        }
    }

    #[test]
    fn each_row_is_its_own_scan() {
        let (rows, cols) = (64, 2048);
        let r: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919) % 13) as f32 - 6.0)
            .collect();
        let m: Vec<u8> = (0..rows * cols).map(|i| u8::from(i % 5 != 0)).collect();
        let (a, _) = gae(&r, None, &m, None, rows, cols, 0.99, 1.0).expect("valid");
        let (b, _) = gae(&r[..cols], None, &m[..cols], None, 1, cols, 0.99, 1.0).expect("valid");
        assert_eq!(a[..cols], b[..]);
    }

    #[test]
    fn shapes_are_checked() {
        assert!(gae(&[1.0f64; 3], None, &[1; 4], None, 2, 2, 1.0, 1.0).is_err());
        assert!(gae(&[1.0f64; 4], None, &[1; 4], Some(&[0.0]), 2, 2, 1.0, 1.0).is_err());
        assert!(gae(&[1.0f64; 4], None, &[1; 4], None, 2, 2, f64::NAN, 1.0).is_err());
    }
}
