//! PAMA's combined advantage: per row, the projection of 0 onto the objectives' range.

use rayon::prelude::*;

use super::checks::{check_matrix, first_non_finite};
use crate::{Error, Result};

/// Rows per parallel task: large enough that scheduling costs nothing next to the work.
const ROW_BLOCK: usize = 2048;

/// PAMA's combined advantage for each row of `advantages` (`rows x cols`, one column per
/// objective): the projection of 0 onto `[min_i a_i, max_i a_i]`, i.e. 0 when the objectives
/// disagree in sign, else the entry closest to 0.
///
/// Errors on a shape mismatch, on zero objectives, or on a non-finite advantage (naming the
/// row and column of the first one).
pub fn pama(advantages: &[f64], rows: usize, cols: usize) -> Result<Vec<f64>> {
    check_matrix("advantages", advantages, rows, cols)?;
    if cols == 0 {
        return Err(Error::invalid(
            "advantages: need at least one objective (column)",
        ));
    }
    first_non_finite("advantages", advantages, cols)?;
    let mut out = vec![0.0; rows];
    out.par_chunks_mut(ROW_BLOCK)
        .zip(advantages.par_chunks(ROW_BLOCK * cols))
        .for_each(|(out_block, in_block)| {
            for (o, row) in out_block.iter_mut().zip(in_block.chunks_exact(cols)) {
                *o = pama_row(row);
            }
        });
    Ok(out)
}

/// The projection of 0 onto `[min(row), max(row)]` for one non-empty, finite row.
#[inline]
fn pama_row(row: &[f64]) -> f64 {
    let (mut lo, mut hi) = (row[0], row[0]);
    for &v in &row[1..] {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    // clamp(0, lo, hi); adding 0.0 turns a -0.0 into +0.0 so the result is canonical.
    0.0_f64.clamp(lo, hi) + 0.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pama_examples() {
        let a = [1.0, 2.0, -1.0, 3.0, -2.0, -0.5, 0.0, 4.0];
        assert_eq!(pama(&a, 4, 2), Ok(vec![1.0, 0.0, -0.5, 0.0]));
        assert_eq!(pama(&[], 0, 3), Ok(vec![]));
    }

    #[test]
    fn pama_rejects_bad_input() {
        assert!(matches!(pama(&[1.0, 2.0, 3.0], 2, 2), Err(Error::Shape(_))));
        assert!(matches!(pama(&[], 2, 0), Err(Error::InvalidArgument(_))));
        match pama(&[1.0, 2.0, 3.0, f64::NAN], 2, 2) {
            Err(Error::NonFinite { location, .. }) => assert_eq!(location, "row 1, column 1"),
            other => panic!("unexpected {other:?}"),
        }
    }

    proptest! {
        #[test]
        fn pama_is_projection_of_zero(
            rows in 0usize..5000,
            cols in 1usize..6,
            seed in any::<u64>(),
        ) {
            // A cheap deterministic generator keeps large matrices fast to build.
            let mut state = seed | 1;
            let data: Vec<f64> = (0..rows * cols)
                .map(|_| {
                    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                    (state % 2001) as f64 / 100.0 - 10.0
                })
                .collect();
            let got = pama(&data, rows, cols).expect("valid input");
            for (r, row) in data.chunks_exact(cols).enumerate() {
                let lo = row.iter().cloned().fold(f64::INFINITY, f64::min);
                let hi = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let want = if lo > 0.0 { lo } else if hi < 0.0 { hi } else { 0.0 };
                prop_assert_eq!(got[r], want);
                // |s*| is the smallest |s| over the interval
                prop_assert!(row.iter().all(|v| got[r].abs() <= v.abs() || (lo <= 0.0 && hi >= 0.0)));
            }
        }
    }
}
