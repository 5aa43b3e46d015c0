//! Online Elo ratings over comparisons in order.

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
    crate::rank::check_items(n)?;
    let mut r = crate::mem::vec_filled(n, init, || {
        format!("n_items={} ratings", crate::error::grouped(n as u128))
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elo_first_update() {
        // equal ratings: expected 0.5 each, the winner gains k / 2
        let r = elo(&[0], &[1], None, 2, 4.0, 400.0, 10.0, 1000.0).expect("elo");
        assert_eq!(r, [1002.0, 998.0]);
        let r = elo(&[0], &[1], Some(&[true]), 2, 4.0, 400.0, 10.0, 1000.0).expect("elo");
        assert_eq!(r, [1000.0, 1000.0]);
    }
}
