//! Input checks shared by the Pareto operations: matrix shapes, non-finite entries, and the
//! group offsets of the batched calls.

use crate::{Error, Result};

pub(super) fn check_matrix(
    what: &'static str,
    data: &[f64],
    rows: usize,
    cols: usize,
) -> Result<()> {
    if rows.checked_mul(cols) != Some(data.len()) {
        return Err(Error::shape(format!(
            "{what}: {} values cannot form a {rows} x {cols} matrix",
            data.len()
        )));
    }
    Ok(())
}

/// The first non-finite entry of a row-major matrix, scanning in row order (deterministic).
pub(super) fn first_non_finite(what: &'static str, data: &[f64], cols: usize) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(k) => Err(Error::NonFinite {
            what,
            location: format!("row {}, column {}", k / cols, k % cols),
            value: data[k],
        }),
    }
}

/// Checks a row-major `n x m` matrix of points: the shape, at least one objective, no NaN
/// (naming the first one).
pub(super) fn check(what: &'static str, f: &[f64], n: usize, m: usize) -> Result<()> {
    if n.checked_mul(m) != Some(f.len()) {
        return Err(Error::shape(format!(
            "{what}: {} values cannot form a {n} x {m} matrix",
            f.len()
        )));
    }
    if m == 0 {
        return Err(Error::invalid(format!(
            "{what}: need at least one objective"
        )));
    }
    // a branch-free scan per block (vectorized); the position only when there is a NaN
    let has_nan = f
        .chunks(256)
        .any(|c| c.iter().fold(false, |acc, v| acc | v.is_nan()));
    if let Some(k) = has_nan.then(|| f.iter().position(|v| v.is_nan())).flatten() {
        return Err(Error::NonFinite {
            what,
            location: format!("row {}, column {}", k / m, k % m),
            value: f[k],
        });
    }
    Ok(())
}

/// Checks group offsets (rising from 0 to `n`): the groups' row ranges.
pub(super) fn check_offsets(offsets: &[i64], n: usize) -> Result<Vec<(usize, usize)>> {
    if offsets.is_empty() || offsets[0] != 0 || offsets[offsets.len() - 1] != n as i64 {
        return Err(Error::invalid(format!(
            "offsets must start at 0 and end at the number of rows ({n})"
        )));
    }
    offsets
        .windows(2)
        .enumerate()
        .map(|(g, w)| {
            if w[1] < w[0] {
                Err(Error::invalid(format!("offsets decrease at group {g}")))
            } else {
                Ok((w[0] as usize, w[1] as usize))
            }
        })
        .collect()
}
