//! Exact hypervolume (minimization) of a set of points bounded by a reference point: sweeps
//! for 2 and 3 objectives, WFG beyond; batched per group.

use std::collections::BTreeMap;

use rayon::prelude::*;

use super::checks::{check, check_offsets};
use super::fronts::Key;
use crate::{Error, Result};

/// Exact hypervolume dominated by the rows of ``f`` and bounded by ``reference``
/// (minimization). Rows that do not strictly dominate the reference add nothing. 2 objectives:
/// O(n log n) sweep; 3: O(n log n) sweep over the third objective with a balanced-tree
/// staircase; more: WFG's exclusive volumes over non-dominated limit sets, down to the
/// 3-objective sweep.
pub fn hypervolume(f: &[f64], n: usize, m: usize, reference: &[f64]) -> Result<f64> {
    check("F", f, n, m)?;
    if reference.len() != m {
        return Err(Error::shape(format!(
            "reference has {} values for {m} objectives",
            reference.len()
        )));
    }
    if reference.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid("reference must be finite"));
    }
    let pts: Vec<&[f64]> = (0..n)
        .map(|i| &f[i * m..(i + 1) * m])
        .filter(|p| p.iter().zip(reference).all(|(a, r)| a < r))
        .collect();
    Ok(hv(&pts, reference))
}

/// Per group (``offsets``), in parallel: the hypervolume of the group's rows.
pub fn hypervolume_batched(
    f: &[f64],
    n: usize,
    m: usize,
    offsets: &[i64],
    reference: &[f64],
) -> Result<Vec<f64>> {
    check("F", f, n, m)?;
    let groups = check_offsets(offsets, n)?;
    groups
        .par_iter()
        .with_min_len(64)
        .map(|&(s, e)| hypervolume(&f[s * m..e * m], e - s, m, reference))
        .collect()
}

fn hv(pts: &[&[f64]], r: &[f64]) -> f64 {
    if pts.is_empty() {
        return 0.0;
    }
    match r.len() {
        1 => r[0] - pts.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min),
        2 => hv2(pts, r),
        3 => hv3(pts, r),
        _ => {
            let mut rows = Vec::with_capacity(pts.len() * r.len());
            for p in pts {
                insert_nondominated(&mut rows, p);
            }
            wfg(&rows, r)
        }
    }
}

/// Adds `c` to the flat rows of a mutually non-dominated set (minimization): nothing when a
/// row weakly dominates it (equal rows included), else it replaces the rows it dominates.
fn insert_nondominated(rows: &mut Vec<f64>, c: &[f64]) {
    let d = c.len();
    let mut i = 0;
    while i * d < rows.len() {
        let q = &rows[i * d..(i + 1) * d];
        if q.iter().zip(c).all(|(a, b)| a <= b) {
            return;
        }
        if c.iter().zip(q).all(|(a, b)| a <= b) {
            // swap-remove row i (the last row moves into its place; look at i again)
            let last = rows.len() / d - 1;
            if i != last {
                let (head, tail) = rows.split_at_mut(last * d);
                head[i * d..(i + 1) * d].copy_from_slice(&tail[..d]);
            }
            rows.truncate(last * d);
        } else {
            i += 1;
        }
    }
    rows.extend_from_slice(c);
}

/// WFG (While, Bradstreet and Barone 2012) on the flat rows of a non-dominated set, d >= 4:
/// the volume is the sum of each point's exclusive part, its box minus the hypervolume of its
/// limit set (the later points, each clipped to the box: max(p, q)). The points go in
/// descending order of the last objective, so every clipped point keeps p's last coordinate
/// and the limit set lives in d - 1 objectives (the sweep over that coordinate is the box's
/// height). The limit sets are reduced to their non-dominated points, which is what keeps
/// them small; d - 1 = 3 ends in the O(n log n) sweep.
fn wfg(rows: &[f64], r: &[f64]) -> f64 {
    let d = r.len();
    let mut pts: Vec<&[f64]> = rows.chunks_exact(d).collect();
    pts.sort_by(|a, b| b[d - 1].total_cmp(&a[d - 1]));
    let exclusive = |k: usize| -> f64 {
        let (p, sub, r_sub) = (pts[k], d - 1, &r[..d - 1]);
        let mut limit: Vec<f64> = Vec::new();
        let mut clipped = vec![0.0; sub];
        for q in &pts[k + 1..] {
            for j in 0..sub {
                clipped[j] = p[j].max(q[j]);
            }
            if clipped[..] == p[..sub] {
                return 0.0; // q covers p's box: no exclusive volume
            }
            insert_nondominated(&mut limit, &clipped);
        }
        let boxed: f64 = (0..sub).map(|j| r[j] - p[j]).product();
        let covered = if limit.is_empty() {
            0.0
        } else if sub > 3 {
            wfg(&limit, r_sub)
        } else {
            let lp: Vec<&[f64]> = limit.chunks_exact(sub).collect();
            hv(&lp, r_sub)
        };
        (r[d - 1] - p[d - 1]) * (boxed - covered)
    };
    // the points' exclusive parts are independent: in parallel for larger sets (or fewer
    // points in many objectives, where each part is costly), summed in order either way (the
    // same bits for any thread count)
    let parts: Vec<f64> = if pts.len() >= 64 || (d >= 6 && pts.len() >= 8) {
        (0..pts.len())
            .into_par_iter()
            .with_max_len(1)
            .map(exclusive)
            .collect()
    } else {
        (0..pts.len()).map(exclusive).collect()
    };
    parts.iter().sum()
}

fn hv2(pts: &[&[f64]], r: &[f64]) -> f64 {
    let mut order: Vec<(f64, f64)> = pts.iter().map(|p| (p[0], p[1])).collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut area = 0.0;
    let mut y_min = r[1];
    for (x, y) in order {
        if y < y_min {
            area += (r[0] - x) * (y_min - y);
            y_min = y;
        }
    }
    area
}

fn hv3(pts: &[&[f64]], r: &[f64]) -> f64 {
    let mut order: Vec<&[f64]> = pts.to_vec();
    order.sort_by(|a, b| a[2].total_cmp(&b[2]));
    // staircase of the (x, y) front so far: x ascending, y strictly descending
    let mut stair: BTreeMap<Key, f64> = BTreeMap::new();
    let mut area = 0.0;
    let mut volume = 0.0;
    for (k, p) in order.iter().enumerate() {
        let (px, py) = (p[0], p[1]);
        // y bound just left of px: the predecessor with x < px (r_y when none)
        let pred_y = stair.range(..Key(px)).next_back().map_or(r[1], |(_, &y)| y);
        // a staircase point at the same x with y <= py dominates (or equals) p
        let same_x_y = stair.get(&Key(px)).copied().unwrap_or(f64::INFINITY);
        if pred_y > py && same_x_y > py {
            // p adds area: walk the successors (x >= px), removing those p dominates
            let mut x0 = px;
            let mut y_cur = pred_y;
            let mut remove = Vec::new();
            let mut stop_x = r[0];
            for (&Key(qx), &qy) in stair.range(Key(px)..) {
                area += (qx - x0) * (y_cur - py);
                if qy < py {
                    stop_x = qx;
                    break;
                }
                remove.push(Key(qx));
                x0 = qx;
                y_cur = qy;
                stop_x = r[0];
            }
            if stop_x == r[0] {
                area += (r[0] - x0) * (y_cur - py);
            }
            for key in remove {
                stair.remove(&key);
            }
            stair.insert(Key(px), py);
        }
        let next = if k + 1 < order.len() {
            order[k + 1][2]
        } else {
            r[2]
        };
        volume += area * (next - p[2]);
    }
    volume
}

#[cfg(test)]
mod tests {
    use super::super::testdata::grid;
    use super::*;
    use proptest::prelude::*;

    /// The previous d >= 4 method (slicing along the last objective, every slice from
    /// scratch): slow, simple, and a reference beyond inclusion-exclusion's 9 points.
    fn hv_slicing(pts: &[&[f64]], r: &[f64]) -> f64 {
        let d = r.len();
        if d <= 3 || pts.is_empty() {
            return hv(pts, r);
        }
        let mut order: Vec<&[f64]> = pts.to_vec();
        order.sort_by(|a, b| a[d - 1].total_cmp(&b[d - 1]));
        let mut total = 0.0;
        let mut active: Vec<&[f64]> = Vec::with_capacity(order.len());
        for (k, p) in order.iter().enumerate() {
            active.push(&p[..d - 1]);
            let next = if k + 1 < order.len() {
                order[k + 1][d - 1]
            } else {
                r[d - 1]
            };
            if next > p[d - 1] {
                total += hv_slicing(&active, &r[..d - 1]) * (next - p[d - 1]);
            }
        }
        total
    }

    fn hv_inclusion_exclusion(f: &[f64], n: usize, m: usize, r: &[f64]) -> f64 {
        let pts: Vec<&[f64]> = (0..n)
            .map(|i| &f[i * m..(i + 1) * m])
            .filter(|p| p.iter().zip(r).all(|(a, b)| a < b))
            .collect();
        let k = pts.len();
        let mut total = 0.0;
        for mask in 1u32..(1 << k) {
            let mut corner = vec![f64::NEG_INFINITY; m];
            for (i, p) in pts.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    for j in 0..m {
                        corner[j] = corner[j].max(p[j]);
                    }
                }
            }
            let vol: f64 = (0..m).map(|j| r[j] - corner[j]).product();
            total += if mask.count_ones() % 2 == 1 {
                vol
            } else {
                -vol
            };
        }
        total
    }

    proptest! {
        #[test]
        fn hypervolume_matches_inclusion_exclusion(seed in any::<u64>(), n in 0usize..9,
                                                   m in 1usize..6) {
            let f = grid(seed, n * m, 10);
            let r = vec![9.5; m];
            let got = hypervolume(&f, n, m, &r).expect("valid");
            let want = hv_inclusion_exclusion(&f, n, m, &r);
            prop_assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{} vs {}", got, want);
        }

        #[test]
        fn wfg_matches_slicing(seed in any::<u64>(), n in 0usize..40, m in 4usize..7,
                               levels in 3u64..30) {
            let f = grid(seed, n * m, levels); // ties and duplicates on few levels
            let r = vec![levels as f64 - 0.5; m];
            let pts: Vec<&[f64]> = f.chunks_exact(m).filter(|p| p.iter().all(|&v| v < r[0])).collect();
            let got = hypervolume(&f, n, m, &r).expect("valid");
            let want = hv_slicing(&pts, &r);
            prop_assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{} vs {}", got, want);
        }
    }
}
