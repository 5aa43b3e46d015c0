//! Exact hypervolume (minimization) of a set of points bounded by a reference point: sweeps
//! for 2 to 5 objectives, WFG beyond (down to the 5-objective sweep); batched per group.

use std::cell::RefCell;
use std::collections::BTreeMap;

use rayon::prelude::*;

use super::checks::{check, check_offsets};
use super::fronts::Key;
use crate::{Error, Result};

/// Exact hypervolume dominated by the rows of ``f`` and bounded by ``reference``
/// (minimization). Rows that do not strictly dominate the reference add nothing. 2 objectives:
/// O(n log n) sweep; 3: O(n log n) sweep over the third objective with a balanced-tree
/// staircase; 4: O(n^2) sweep over the fourth objective adding each point's 3-objective
/// contribution (the idea of Guerreiro and Fonseca's HV4D+); 5: the same sweep one level up,
/// each point's 4-objective contribution from a 3-objective sweep of the points below it
/// and 3-objective contributions of those above (in parallel for 128 points or more); more:
/// WFG's exclusive volumes over non-dominated limit sets, down to the 5-objective sweep.
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
        4 => hv4(pts, r),
        5 => hv5(pts, r, true),
        _ => {
            let mut rows = Vec::with_capacity(pts.len() * r.len());
            for p in pts {
                insert_nondominated(&mut rows, p);
            }
            wfg(&rows, r, true)
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

/// WFG (While, Bradstreet and Barone 2012) on the flat rows of a non-dominated set, d >= 6:
/// the volume is the sum of each point's exclusive part, its box minus the hypervolume of its
/// limit set (the later points, each clipped to the box: max(p, q)). The points go in
/// descending order of the last objective, so every clipped point keeps p's last coordinate
/// and the limit set lives in d - 1 objectives (the sweep over that coordinate is the box's
/// height). The limit sets are reduced to their non-dominated points, which is what keeps
/// them small (d - 1 = 5 ends in the 5-objective sweep, which skips dominated points itself;
/// two points or fewer in inclusion-exclusion).
fn wfg(rows: &[f64], r: &[f64], parallel: bool) -> f64 {
    let d = r.len();
    if rows.len() <= 2 * d {
        return few(rows, r);
    }
    let mut pts: Vec<&[f64]> = rows.chunks_exact(d).collect();
    pts.sort_by(|a, b| b[d - 1].total_cmp(&a[d - 1]));
    let exclusive = |k: usize| -> f64 {
        let (p, sub, r_sub) = (pts[k], d - 1, &r[..d - 1]);
        let mut limit: Vec<f64> = Vec::with_capacity((pts.len() - k - 1) * sub);
        let (mut stack, mut heap) = ([0.0; 16], Vec::new());
        let clipped: &mut [f64] = if sub <= 16 {
            &mut stack[..sub]
        } else {
            heap.resize(sub, 0.0);
            &mut heap
        };
        for q in &pts[k + 1..] {
            for j in 0..sub {
                clipped[j] = p[j].max(q[j]);
            }
            if clipped[..] == p[..sub] {
                return 0.0; // q covers p's box: no exclusive volume
            }
            if sub <= 5 {
                limit.extend_from_slice(clipped); // the sweeps skip dominated points themselves
            } else {
                insert_nondominated(&mut limit, clipped);
            }
        }
        let boxed: f64 = (0..sub).map(|j| r[j] - p[j]).product();
        let covered = if limit.len() <= 2 * sub {
            few(&limit, r_sub) // none, one or two points: by inclusion-exclusion
        } else if sub > 5 {
            wfg(&limit, r_sub, false)
        } else {
            let lp: Vec<&[f64]> = limit.chunks_exact(sub).collect();
            if sub == 5 {
                hv5(&lp, r_sub, false) // the exclusive parts already run in parallel
            } else {
                hv(&lp, r_sub)
            }
        };
        (r[d - 1] - p[d - 1]) * (boxed - covered)
    };
    // the points' exclusive parts are independent: at the top level (`parallel`), in
    // parallel for larger sets (or fewer points in many objectives, where each part is
    // costly), summed in order either way (the same bits for any thread count)
    let parts: Vec<f64> = if parallel && (pts.len() >= 64 || (d >= 6 && pts.len() >= 16)) {
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

/// The hypervolume of at most two points (flat rows), by inclusion-exclusion.
fn few(rows: &[f64], r: &[f64]) -> f64 {
    let d = r.len();
    let boxed = |corner: &mut dyn Iterator<Item = f64>| -> f64 {
        corner.zip(r).map(|(c, rj)| rj - c).product()
    };
    match rows.len() / d {
        0 => 0.0,
        1 => boxed(&mut rows.iter().copied()),
        _ => {
            let (a, b) = rows.split_at(d);
            boxed(&mut a.iter().copied()) + boxed(&mut b.iter().copied())
                - boxed(&mut a.iter().zip(b).map(|(x, y)| x.max(*y)))
        }
    }
}

/// Four objectives: a sweep over the last one. The points go in ascending order of it; the
/// slab between two consecutive values is the 3-objective volume of the points so far times
/// its height, and that volume grows by each new point's contribution (computed in O(n) by
/// [`contribution3`] over the 3-objective non-dominated front, kept sorted both by z and by
/// x). Points a kept point weakly dominates add nothing and are not kept; points the new one
/// dominates leave the front. O(n^2) but for the short binary searches of the staircase.
fn hv4(pts: &[&[f64]], r: &[f64]) -> f64 {
    let mut order: Vec<[f64; 4]> = pts.iter().map(|p| [p[0], p[1], p[2], p[3]]).collect();
    order.sort_unstable_by(|a, b| a[3].total_cmp(&b[3]));
    let mut front = Front3::default();
    let mut stair = Vec::new();
    let (mut v3, mut total) = (0.0, 0.0);
    for (k, p) in order.iter().enumerate() {
        let p3 = [p[0], p[1], p[2]];
        if let Some(c) = contribution3(&p3, &front, r, &mut stair) {
            v3 += c;
            front.insert(&p3);
        }
        let next = order.get(k + 1).map_or(r[3], |q| q[3]);
        total += v3 * (next - p[3]);
    }
    total
}

/// Five objectives: the same sweep one level up, over the fifth objective, adding each
/// point's 4-objective contribution to the 4-objective front so far ([`contribution4`]).
/// With `parallel` and enough points, a first pass finds when each point joins and leaves
/// the front (dominance only), then the contributions are computed apart, each against the
/// front of its moment, and summed in order: the same bits for any thread count.
fn hv5(pts: &[&[f64]], r: &[f64], parallel: bool) -> f64 {
    let mut order: Vec<[f64; 5]> = pts.iter().map(|p| [p[0], p[1], p[2], p[3], p[4]]).collect();
    order.sort_unstable_by(|a, b| a[4].total_cmp(&b[4]));
    let head = |p: &[f64; 5]| [p[0], p[1], p[2], p[3]];
    let contributions: Vec<f64> = if parallel && order.len() >= 128 {
        // the front over time: point j is on it from its own step (unless a point before it
        // weakly dominates it) to the step of the first later point that dominates it
        let n = order.len();
        let mut gone = vec![0usize; n]; // 0: never on the front (j < gone[j] when it is)
        let mut front: Vec<usize> = Vec::new();
        let le = |a: &[f64; 5], b: &[f64; 5]| (0..4).all(|j| a[j] <= b[j]);
        for (k, p) in order.iter().enumerate() {
            if front.iter().any(|&j| le(&order[j], p)) {
                continue;
            }
            front.retain(|&j| {
                let stays = !le(p, &order[j]);
                if !stays {
                    gone[j] = k;
                }
                stays
            });
            front.push(k);
            gone[k] = n;
        }
        // the points by w, each with its span on the front
        let mut by_w: Vec<(usize, usize, [f64; 4])> = (0..n)
            .filter(|&j| gone[j] > j)
            .map(|j| (j, gone[j], head(&order[j])))
            .collect();
        by_w.sort_unstable_by(|a, b| a.2[3].total_cmp(&b.2[3]));
        (0..n)
            .into_par_iter()
            .with_min_len(8)
            .map_init(
                || (Scratch4::default(), Vec::new()),
                |(scratch, before), k| {
                    before.clear();
                    before.extend(by_w.iter().filter(|e| e.0 < k && k <= e.1).map(|e| e.2));
                    contribution4(&head(&order[k]), before, r, scratch).unwrap_or(0.0)
                },
            )
            .collect()
    } else {
        // buffers kept per thread: WFG calls this once per exclusive part, on small sets
        thread_local! {
            static BUFFERS: RefCell<(Vec<[f64; 4]>, Scratch4)> = RefCell::default();
        }
        BUFFERS.with(|buffers| {
            let mut fresh = Default::default();
            let mut held = buffers.try_borrow_mut();
            let (front, scratch) = match held.as_deref_mut() {
                Ok(b) => b,
                Err(_) => &mut fresh,
            };
            front.clear();
            order
                .iter()
                .map(|p| {
                    let p4 = head(p);
                    let Some(c) = contribution4(&p4, front, r, scratch) else {
                        return 0.0;
                    };
                    // the points p dominates lie at or after its place in w order
                    let start = front.partition_point(|q| q[3] < p4[3]);
                    let mut w = start;
                    for i in start..front.len() {
                        let q = front[i];
                        front[w] = q;
                        w += usize::from(!(0..4).all(|j| p4[j] <= q[j]));
                    }
                    front.truncate(w);
                    let at = front.partition_point(|q| q[3] <= p4[3]);
                    front.insert(at, p4);
                    c
                })
                .collect()
        })
    };
    let (mut v4, mut total) = (0.0, 0.0);
    for (k, (p, c)) in order.iter().zip(&contributions).enumerate() {
        v4 += c;
        let next = order.get(k + 1).map_or(r[4], |q| q[4]);
        total += v4 * (next - p[4]);
    }
    total
}

/// Buffers of [`contribution4`], reused between calls.
#[derive(Default)]
struct Scratch4 {
    lower: Vec<[f64; 3]>,
    kept: Vec<[f64; 3]>,
    sorted: Vec<[f64; 3]>,
    front: Front3,
    stair: Vec<(f64, f64)>,
}

/// The volume `p` adds to the union of the boxes [q, r] of the 4-objective `front` (sorted by
/// w), or None when a point of it weakly dominates `p`. A sweep over w from p's own: the
/// points at or below p's w, clipped to p's box, leave an open 3-D volume of it (their own
/// 3-D sweep, which also keeps their non-dominated front); each point above closes its
/// clipped box's contribution to that front from its w on.
fn contribution4(p: &[f64; 4], front: &[[f64; 4]], r: &[f64], s: &mut Scratch4) -> Option<f64> {
    let p3 = [p[0], p[1], p[2]];
    let split = front.partition_point(|q| q[3] <= p[3]);
    // a clipped point with two of p's coordinates closes p's box beyond its third (a cap):
    // the lowest cap per axis; clipped points at or beyond a cap add nothing
    let mut cap = [r[0], r[1], r[2]];
    for q in &front[..split] {
        let le = [q[0] <= p[0], q[1] <= p[1], q[2] <= p[2]];
        if le[0] && le[1] && le[2] {
            return None;
        }
        for j in 0..3 {
            if le[(j + 1) % 3] && le[(j + 2) % 3] && q[j] < cap[j] {
                cap[j] = q[j];
            }
        }
    }
    s.lower.clear();
    for q in &front[..split] {
        let c = [p[0].max(q[0]), p[1].max(q[1]), p[2].max(q[2])];
        if c[0] < cap[0] && c[1] < cap[1] && c[2] < cap[2] {
            s.lower.push(c);
        }
    }
    for j in 0..3 {
        if cap[j] < r[j] {
            let mut c = p3;
            c[j] = cap[j];
            s.lower.push(c);
        }
    }
    // in (z, x, y) order a point the staircase does not cover is one no other dominates
    s.lower.sort_unstable_by(|a, b| {
        (a[2].total_cmp(&b[2]))
            .then(a[0].total_cmp(&b[0]))
            .then(a[1].total_cmp(&b[1]))
    });
    s.stair.clear();
    s.stair.extend([(p[0], r[1]), (r[0], p[1])]);
    s.kept.clear();
    let mut area = (r[0] - p[0]) * (r[1] - p[1]);
    let (mut open, mut z) = (0.0, p[2]);
    for c in &s.lower {
        open += area * (c[2] - z);
        z = c[2];
        if let Some(a) = close(&mut s.stair, &p3, c) {
            area -= a;
            s.kept.push(*c);
        }
    }
    open += area * (r[2] - z);
    s.front.rebuild(&s.kept, &mut s.sorted);
    let (mut volume, mut w) = (0.0, p[3]);
    for q in &front[split..] {
        volume += open * (q[3] - w);
        w = q[3];
        let c = [p[0].max(q[0]), p[1].max(q[1]), p[2].max(q[2])];
        if c == p3 {
            return Some(volume); // q's box holds p's 3-D box: closed from here
        }
        if c[0] >= cap[0] || c[1] >= cap[1] || c[2] >= cap[2] {
            continue; // a cap point dominates c
        }
        if let Some(a) = contribution3(&c, &s.front, r, &mut s.stair) {
            open -= a;
            s.front.insert(&c);
            for j in 0..3 {
                if c[(j + 1) % 3] == p3[(j + 1) % 3] && c[(j + 2) % 3] == p3[(j + 2) % 3] {
                    cap[j] = c[j]; // a new, lower cap
                }
            }
        }
    }
    Some(volume + open * (r[3] - w))
}

/// A mutually non-dominated set of 3-objective points, twice: sorted by z, and by (x, y);
/// columns apiece, so that the scans over them are branch-free and vectorize.
#[derive(Default)]
struct Front3 {
    by_z: Cols,
    by_x: Cols,
}

#[derive(Default)]
struct Cols {
    x: Vec<f64>,
    y: Vec<f64>,
    z: Vec<f64>,
}

impl Cols {
    fn clear(&mut self) {
        self.x.clear();
        self.y.clear();
        self.z.clear();
    }

    fn push(&mut self, p: &[f64; 3]) {
        self.x.push(p[0]);
        self.y.push(p[1]);
        self.z.push(p[2]);
    }

    fn insert(&mut self, at: usize, p: &[f64; 3]) {
        self.x.insert(at, p[0]);
        self.y.insert(at, p[1]);
        self.z.insert(at, p[2]);
    }

    /// Drops the points from `start` on that `p` weakly dominates (a branch-free compaction).
    fn drop_dominated(&mut self, start: usize, p: &[f64; 3]) {
        let mut w = start;
        for i in start..self.x.len() {
            let (x, y, z) = (self.x[i], self.y[i], self.z[i]);
            (self.x[w], self.y[w], self.z[w]) = (x, y, z);
            w += usize::from(!(p[0] <= x && p[1] <= y && p[2] <= z));
        }
        self.x.truncate(w);
        self.y.truncate(w);
        self.z.truncate(w);
    }
}

impl Front3 {
    /// The front of `points`, mutually non-dominated and sorted by z.
    fn rebuild(&mut self, points: &[[f64; 3]], scratch: &mut Vec<[f64; 3]>) {
        self.by_z.clear();
        self.by_x.clear();
        scratch.clear();
        scratch.extend_from_slice(points);
        scratch.sort_unstable_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
        for (pz, px) in points.iter().zip(scratch.iter()) {
            self.by_z.push(pz);
            self.by_x.push(px);
        }
    }

    /// Adds `p` (no kept point weakly dominates it) and drops the points it dominates (they
    /// lie at or after p's place in either order).
    fn insert(&mut self, p: &[f64; 3]) {
        let start = self.by_z.z.partition_point(|&z| z < p[2]);
        self.by_z.drop_dominated(start, p);
        let at = self.by_z.z.partition_point(|&z| z <= p[2]);
        self.by_z.insert(at, p);
        let start = self.by_x.x.partition_point(|&x| x < p[0]);
        self.by_x.drop_dominated(start, p);
        let mut at = start;
        while at < self.by_x.x.len() && self.by_x.x[at] == p[0] && self.by_x.y[at] <= p[1] {
            at += 1;
        }
        self.by_x.insert(at, p);
    }
}

/// The volume `p` adds to the union of the boxes [q, r] of `front`, or None when a point of
/// `front` weakly dominates `p`. A sweep over z from p's own: the points at or below p's z
/// shape the open part of p's (x, y) quadrant at the start, a staircase (in `stair`, reused
/// between calls) read off in x order; each point above closes more of it at its z.
fn contribution3(
    p: &[f64; 3],
    front: &Front3,
    r: &[f64],
    stair: &mut Vec<(f64, f64)>,
) -> Option<f64> {
    let (bx, bz) = (&front.by_x, &front.by_z);
    // below p's z, left of p (x <= p.x): these clip to the left wall, the lowest counts
    let left = bx.x.partition_point(|&x| x <= p[0]);
    let mut lowest = f64::INFINITY;
    for (&y, &z) in bx.y[..left].iter().zip(&bx.z[..left]) {
        let v = if z <= p[2] { y } else { f64::INFINITY };
        lowest = if v < lowest { v } else { lowest };
    }
    if lowest <= p[1] {
        return None;
    }
    // then, in x order, the points inside p's quadrant, each kept if it is below the
    // staircase so far; the first point under p (y <= p.y) is the bottom wall and ends it
    stair.clear();
    stair.push((p[0], lowest.min(r[1])));
    let mut bottom_x = r[0];
    for i in left..bx.x.len() {
        if bx.z[i] > p[2] {
            continue;
        }
        let y = bx.y[i];
        if y <= p[1] {
            bottom_x = bx.x[i];
            break;
        }
        if y < stair[stair.len() - 1].1 {
            stair.push((bx.x[i], y));
        }
    }
    if bottom_x < r[0] {
        stair.push((bottom_x, p[1]));
    }
    stair.push((r[0], p[1]));
    let mut open: f64 = stair
        .windows(2)
        .map(|s| (s[1].0 - s[0].0) * (s[0].1 - p[1]))
        .sum();
    // above, in z order: each point closes its clipped quadrant from its z on
    let split = bz.z.partition_point(|&z| z <= p[2]);
    let (mut volume, mut z) = (0.0, p[2]);
    for i in split..bz.z.len() {
        let q = [bz.x[i], bz.y[i], bz.z[i]];
        volume += open * (q[2] - z);
        z = q[2];
        if q[0] <= p[0] {
            if q[1] <= p[1] {
                return Some(volume); // q's quadrant holds p's whole quadrant: closed from here
            }
            if q[1] >= stair[0].1 {
                continue; // above the left wall's point: nothing new
            }
        } else if q[1] <= p[1] {
            let b = stair[stair.len() - 2];
            if b.1 <= p[1] && b.0 <= q[0] {
                continue; // right of the bottom wall's point: nothing new
            }
        }
        open -= close(stair, p, &q).unwrap_or(0.0);
    }
    Some(volume + open * (r[2] - z))
}

/// Adds q's quadrant, clipped to p's, to the staircase of p's quadrant (x ascending, y
/// descending, from the sentinel (p.x, r.y) to the sentinel (r.x, p.y), neither covering
/// anything) and returns the area it newly covers, or None when a staircase point weakly
/// dominates the clipped q (nothing changes).
fn close(stair: &mut Vec<(f64, f64)>, p: &[f64; 3], q: &[f64; 3]) -> Option<f64> {
    let (cx, cy) = (p[0].max(q[0]), p[1].max(q[1]));
    let i = stair.partition_point(|s| s.0 <= cx) - 1; // stair[0].0 = p.x <= cx
    let (ix, iy) = stair[i];
    if iy <= cy {
        return None;
    }
    // the points after i that c dominates go (never the last sentinel); the area between
    // cy and each one's old bound closes
    let last = stair.len() - 1;
    let (mut x0, mut y0, mut j) = (cx, iy, i + 1);
    let mut covered = 0.0;
    while j < last && stair[j].1 >= cy {
        covered += (stair[j].0 - x0) * (y0 - cy);
        (x0, y0) = stair[j];
        j += 1;
    }
    covered += (stair[j].0 - x0) * (y0 - cy);
    if ix == cx {
        stair[i] = (cx, cy);
        stair.drain(i + 1..j);
    } else {
        stair.splice(i + 1..j, [(cx, cy)]);
    }
    Some(covered)
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
        fn sweeps_match_slicing(seed in any::<u64>(), n in 0usize..120, m in 4usize..6,
                                levels in prop_oneof![2u64..40, Just(1u64 << 30)]) {
            // few levels: ties, duplicates and dominated points; 2^30: distinct values
            let f = grid(seed, n * m, levels);
            let r = vec![levels as f64 + 0.5; m];
            let pts: Vec<&[f64]> = f.chunks_exact(m).collect();
            let got = hypervolume(&f, n, m, &r).expect("valid");
            let want = hv_slicing(&pts, &r);
            prop_assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{} vs {}", got, want);
        }

        #[test]
        fn parallel_sweep5_matches_sequential(seed in any::<u64>(), n in 128usize..400,
                                              levels in prop_oneof![2u64..12, Just(1u64 << 30)]) {
            // the parallel path (the front's spans, contributions apart) against the sweep
            // that keeps the front as it goes (itself checked against slicing above)
            let f = grid(seed, n * 5, levels);
            let r = vec![levels as f64 + 0.5; 5];
            let pts: Vec<&[f64]> = f.chunks_exact(5).collect();
            let (got, want) = (hv5(&pts, &r, true), hv5(&pts, &r, false));
            prop_assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{} vs {}", got, want);
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
