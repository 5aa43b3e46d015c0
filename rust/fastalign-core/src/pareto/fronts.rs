//! Non-dominated sorting, crowding distance and Pareto preference pairs (minimization; the
//! Python facade flips the sign of objectives to maximize).
//!
//! Points are rows of a row-major ``n x m`` matrix. ``p`` dominates ``q`` when it is no worse
//! in every objective and better in at least one; identical points do not dominate each other
//! (they share a front).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use rayon::prelude::*;

use super::checks::{check, check_offsets};
use crate::{Error, Result};

/// ``p`` dominates ``q`` (the definition the fast paths implement; tests use it directly).
#[cfg(test)]
fn dominates(p: &[f64], q: &[f64]) -> bool {
    let mut strict = false;
    for (a, b) in p.iter().zip(q) {
        if a > b {
            return false;
        }
        if a < b {
            strict = true;
        }
    }
    strict
}

/// An `f64` ordered by `total_cmp`, as a `BTreeMap` key (the staircases of the sweeps here
/// and in the hypervolume).
#[derive(Clone, Copy, PartialEq)]
pub(super) struct Key(pub(super) f64);
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn lex(a: &[f64], b: &[f64]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match x.total_cmp(y) {
            Ordering::Equal => continue,
            o => return o,
        }
    }
    Ordering::Equal
}

/// The front index (0 = non-dominated) of every row of ``f`` (``n x m``).
///
/// Two objectives: O(n log n) (sweep in lexicographic order with a binary search over the
/// fronts' smallest second objective). More: ENS-BS (lexicographic order, then a binary
/// search for the first front with no member dominating the point), O(m n log n) front
/// tests, each against the members of one front.
pub fn non_dominated_sort(f: &[f64], n: usize, m: usize) -> Result<Vec<i64>> {
    check("F", f, n, m)?;
    Ok(sort_rows(f, n, m))
}

fn sort_rows(f: &[f64], n: usize, m: usize) -> Vec<i64> {
    if (2..=64).contains(&n) && m > 1 {
        let mut front = vec![0i64; n];
        sort_small(f, n, m, &mut front);
        return front;
    }
    let row = |i: usize| &f[i * m..(i + 1) * m];
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| lex(row(a), row(b)).then(a.cmp(&b)));
    let mut front = vec![0i64; n];
    if m == 1 {
        // fronts are the distinct values in increasing order
        let mut k = -1i64;
        let mut last: Option<f64> = None;
        for &i in &order {
            if last != Some(f[i]) {
                k += 1;
                last = Some(f[i]);
            }
            front[i] = k;
        }
        return front;
    }
    let mut prev: Option<usize> = None;
    if m == 2 {
        // min_f2[k]: smallest second objective in front k (increasing in k)
        let mut min_f2: Vec<f64> = Vec::new();
        for &i in &order {
            if let Some(p) = prev {
                if row(p) == row(i) {
                    front[i] = front[p];
                    continue;
                }
            }
            let y = f[i * 2 + 1];
            // first front whose members do not dominate i: min_f2 > y
            let k = min_f2.partition_point(|&v| v <= y);
            if k == min_f2.len() {
                min_f2.push(y);
            } else {
                min_f2[k] = y;
            }
            front[i] = k as i64;
            prev = Some(i);
        }
        return front;
    }
    if m == 3 && n > 64 {
        // (small groups are faster with the plain scans below: no tree allocations)
        return sort_three(f, &order, front);
    }
    // ENS-BS. Rows come in lexicographic order, so an earlier row q has q[0] <= p[0], and
    // (duplicates aside, handled above) q dominates p exactly when q[j] <= p[j] for j >= 1.
    // Each front keeps the trailing objectives of its members contiguously (cache-friendly
    // scans, newest last: the likeliest to dominate the next row).
    let tail = m - 1;
    let mut fronts: Vec<Vec<f64>> = Vec::new();
    for &i in &order {
        if let Some(p) = prev {
            if row(p) == row(i) {
                front[i] = front[p];
                continue;
            }
        }
        let p = &row(i)[1..];
        let dominated_by = |members: &Vec<f64>| {
            members
                .chunks_exact(tail)
                .rev()
                .any(|q| q.iter().zip(p).all(|(a, b)| a <= b))
        };
        let (mut lo, mut hi) = (0usize, fronts.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if dominated_by(&fronts[mid]) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == fronts.len() {
            fronts.push(Vec::new());
        }
        fronts[lo].extend_from_slice(p);
        front[i] = lo as i64;
        prev = Some(i);
    }
    front
}

/// Small groups (the RL case: 8-64 samples per prompt): all pairwise dominance relations as
/// one 64-bit mask per row, then fronts peeled with bit operations. No allocation but the
/// output, O(n^2 m) comparisons, which for such n beats every sorting-based method.
fn sort_small(f: &[f64], n: usize, m: usize, front: &mut [i64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above), the only requirement of
            // calling a function compiled with `target_feature(enable = "avx2")`.
            #[allow(unsafe_code)]
            unsafe {
                sort_small_avx2(f, n, m, front)
            };
            return;
        }
    }
    sort_small_impl(f, n, m, front)
}

/// The same code compiled for AVX2 (4 f64 comparisons and one mask extraction per step).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sort_small_avx2(f: &[f64], n: usize, m: usize, front: &mut [i64]) {
    sort_small_impl(f, n, m, front)
}

#[inline(always)]
fn sort_small_impl(f: &[f64], n: usize, m: usize, front: &mut [i64]) {
    // the pairwise comparisons with the number of objectives (and a capacity of 16, 32 or 64
    // rows, so that small groups touch small buffers) known at compile time for the common
    // cases (unrolled, branch-free), generic otherwise
    macro_rules! by_cap {
        ($m:literal) => {
            if n <= 16 {
                dominance_bits::<$m, 16>(f, n)
            } else if n <= 32 {
                dominance_bits::<$m, 32>(f, n)
            } else {
                dominance_bits::<$m, 64>(f, n)
            }
        };
    }
    let dominated_by = match m {
        2 => by_cap!(2),
        3 => by_cap!(3),
        4 => by_cap!(4),
        _ => dominance_bits_any(f, n, m),
    };
    peel_fronts(&dominated_by, n, front);
}

/// `dominated_by[i]`: bit j set when row j dominates row i (n <= CAP <= 64 rows of M
/// objectives). Columns first (structure of arrays), then one independent pass over j per row
/// i, so the mask of row i is built in a register rather than by scattered read-modify-writes.
#[allow(clippy::needless_range_loop)] // index loops over fixed-size columns read clearest
#[inline(always)]
fn dominance_bits<const M: usize, const CAP: usize>(f: &[f64], n: usize) -> [u64; 64] {
    let mut cols = [[0.0f64; CAP]; M];
    for j in 0..n {
        for k in 0..M {
            cols[k][j] = f[j * M + k];
        }
    }
    let mut dominated_by = [0u64; 64];
    for (i, out) in dominated_by.iter_mut().enumerate().take(n) {
        let mut p = [0.0f64; M];
        for k in 0..M {
            p[k] = cols[k][i];
        }
        let mut mask = 0u64;
        for j in 0..n {
            let (mut le, mut lt) = (true, false);
            for k in 0..M {
                le &= cols[k][j] <= p[k];
                lt |= cols[k][j] < p[k];
            }
            mask |= u64::from(le & lt) << j;
        }
        *out = mask;
    }
    dominated_by
}

fn dominance_bits_any(f: &[f64], n: usize, m: usize) -> [u64; 64] {
    let mut dominated_by = [0u64; 64];
    for i in 0..n {
        let p = &f[i * m..(i + 1) * m];
        for j in 0..i {
            let q = &f[j * m..(j + 1) * m];
            let (mut q_le, mut p_le, mut q_lt, mut p_lt) = (true, true, false, false);
            for (a, b) in q.iter().zip(p) {
                q_le &= a <= b;
                p_le &= b <= a;
                q_lt |= a < b;
                p_lt |= b < a;
            }
            if q_le && q_lt {
                dominated_by[i] |= 1 << j;
            } else if p_le && p_lt {
                dominated_by[j] |= 1 << i;
            }
        }
    }
    dominated_by
}

/// Fronts from the dominance bits: front k = the rows left that nobody left dominates. Branch
/// free: each round marks the rows nobody left dominates and adds one to the front of every
/// row still left after it.
#[inline(always)]
fn peel_fronts(dominated_by: &[u64; 64], n: usize, front: &mut [i64]) {
    let front = &mut front[..n];
    let dominated_by = &dominated_by[..n];
    let mut left: u64 = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
    front.fill(0);
    while left != 0 {
        let mut current = 0u64;
        for (i, &d) in dominated_by.iter().enumerate() {
            current |= u64::from(d & left == 0) << i;
        }
        left &= !current;
        for (i, f) in front.iter_mut().enumerate() {
            *f += ((left >> i) & 1) as i64;
        }
    }
}

/// Three objectives in O(n log^2 n): rows in lexicographic order, so an earlier row q
/// dominates p exactly when (q1, q2) <= (p1, p2) (duplicates aside). Each front keeps the 2-D
/// staircase of its members' (f1, f2) projections (f2 strictly decreasing in f1), which
/// answers "does some member dominate p?" with one ordered-map lookup; a binary search over
/// fronts then finds p's front, as in ENS-BS.
fn sort_three(f: &[f64], order: &[usize], mut front: Vec<i64>) -> Vec<i64> {
    let row = |i: usize| &f[i * 3..i * 3 + 3];
    let mut stairs: Vec<BTreeMap<Key, f64>> = Vec::new();
    let mut prev: Option<usize> = None;
    for &i in order {
        if let Some(p) = prev {
            if row(p) == row(i) {
                front[i] = front[p];
                continue;
            }
        }
        let (y, z) = (f[i * 3 + 1], f[i * 3 + 2]);
        let dominated_by = |st: &BTreeMap<Key, f64>| {
            st.range(..=Key(y))
                .next_back()
                .is_some_and(|(_, &qz)| qz <= z)
        };
        let (mut lo, mut hi) = (0usize, stairs.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if dominated_by(&stairs[mid]) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == stairs.len() {
            stairs.push(BTreeMap::new());
        }
        let st = &mut stairs[lo];
        // drop the staircase points that (y, z) covers: y' >= y and z' >= z
        let covered: Vec<Key> = st
            .range(Key(y)..)
            .take_while(|(_, &qz)| qz >= z)
            .map(|(&k, _)| k)
            .collect();
        for k in covered {
            st.remove(&k);
        }
        st.insert(Key(y), z);
        front[i] = lo as i64;
        prev = Some(i);
    }
    front
}

/// Fronts of each group of rows ``offsets[g]..offsets[g + 1]``, independently and in parallel.
pub fn non_dominated_sort_batched(
    f: &[f64],
    n: usize,
    m: usize,
    offsets: &[i64],
) -> Result<Vec<i64>> {
    check("F", f, n, m)?;
    let groups = check_offsets(offsets, n)?;
    let mut out = vec![0i64; n];
    let mut slices = Vec::with_capacity(groups.len());
    let mut rest = out.as_mut_slice();
    for &(s, e) in &groups {
        let (dst, tail) = rest.split_at_mut(e - s);
        slices.push((s, dst));
        rest = tail;
    }
    // groups are small in the RL case: hand them to threads in runs, not one by one
    slices
        .into_par_iter()
        .with_min_len(64)
        .for_each(|(s, dst)| {
            let len = dst.len();
            let rows = &f[s * m..(s + len) * m];
            if (2..=64).contains(&len) && m > 1 {
                sort_small(rows, len, m, dst); // straight into the output, no allocation
            } else {
                dst.copy_from_slice(&sort_rows(rows, len, m));
            }
        });
    Ok(out)
}

/// NSGA-II crowding distance of every row within its front: per objective, the boundary rows
/// of a front get infinity and the others the normalized gap between their neighbours
/// (objectives with zero range in the front add nothing). Ties keep row order.
pub fn crowding_distance(f: &[f64], n: usize, m: usize, fronts: &[i64]) -> Result<Vec<f64>> {
    check("F", f, n, m)?;
    if fronts.len() != n {
        return Err(Error::shape(format!(
            "fronts has {} entries for {n} rows",
            fronts.len()
        )));
    }
    let mut by_front: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, &k) in fronts.iter().enumerate() {
        by_front.entry(k).or_default().push(i);
    }
    let mut dist = vec![0.0; n];
    for members in by_front.values() {
        if members.len() <= 2 {
            for &i in members {
                dist[i] = f64::INFINITY;
            }
            continue;
        }
        for j in 0..m {
            let mut idx = members.clone();
            idx.sort_by(|&a, &b| f[a * m + j].total_cmp(&f[b * m + j]).then(a.cmp(&b)));
            let lo = f[idx[0] * m + j];
            let hi = f[idx[idx.len() - 1] * m + j];
            dist[idx[0]] = f64::INFINITY;
            dist[idx[idx.len() - 1]] = f64::INFINITY;
            let range = hi - lo;
            if range > 0.0 && range.is_finite() {
                for w in idx.windows(3) {
                    dist[w[1]] += (f[w[2] * m + j] - f[w[0] * m + j]) / range;
                }
            }
        }
    }
    Ok(dist)
}

/// Per group (``offsets``), in parallel: the crowding distance of each row within its
/// group's fronts.
pub fn crowding_distance_batched(
    f: &[f64],
    n: usize,
    m: usize,
    offsets: &[i64],
) -> Result<Vec<f64>> {
    check("F", f, n, m)?;
    let groups = check_offsets(offsets, n)?;
    let parts: Result<Vec<Vec<f64>>> = groups
        .par_iter()
        .with_min_len(64)
        .map(|&(s, e)| {
            let g = &f[s * m..e * m];
            crowding_distance(g, e - s, m, &sort_rows(g, e - s, m))
        })
        .collect();
    Ok(parts?.concat())
}

/// Pareto-based preference pairs per group: rows ``(group, chosen, rejected)``, flat (three
/// values a pair), with ``chosen`` a row of the group's first front and ``rejected`` a row of
/// its last front (global row indices). ``all = false``: one pair per group, the first such
/// rows in input order; ``all = true``: every (first-front, last-front) combination. Groups
/// with a single front (nothing dominates anything) give no pair.
///
/// The fronts come first and the pairs are counted from them; the output is then allocated
/// once, at its exact size, or the call fails with [`Error::Memory`] before any pair is made.
pub fn pareto_pairs(f: &[f64], n: usize, m: usize, offsets: &[i64], all: bool) -> Result<Vec<i64>> {
    check("F", f, n, m)?;
    let groups = check_offsets(offsets, n)?;
    // per group: the rows (group-local) of its first and last fronts; none with one front
    let ends: Vec<(Vec<usize>, Vec<usize>)> = groups
        .par_iter()
        .with_min_len(64)
        .map(|&(s, e)| {
            let fr = sort_rows(&f[s * m..e * m], e - s, m);
            let last = fr.iter().copied().max().unwrap_or(0);
            if last == 0 {
                return (Vec::new(), Vec::new());
            }
            let rows = |k: i64| (0..fr.len()).filter(|&i| fr[i] == k).collect();
            if all {
                (rows(0), rows(last))
            } else {
                let first = |k: i64| fr.iter().position(|&x| x == k).unwrap_or(0);
                (vec![first(0)], vec![first(last)])
            }
        })
        .collect();
    let counts: Vec<u128> = ends
        .iter()
        .map(|(b, w)| b.len() as u128 * w.len() as u128)
        .collect();
    let total: u128 = counts.iter().sum();
    let what = || {
        format!(
            "all_pairs={} would produce {} pairs",
            if all { "True" } else { "False" },
            crate::error::grouped(total)
        )
    };
    let len = usize::try_from(total.saturating_mul(3)).map_err(|_| Error::Memory {
        what: what(),
        bytes: crate::mem::bytes_of::<[i64; 3]>(total),
    })?;
    let mut out = crate::mem::vec_filled(len, 0i64, what)?;
    // each group's pairs into its own part of the output, in parallel
    let mut parts: Vec<&mut [i64]> = Vec::with_capacity(groups.len());
    let mut rest = out.as_mut_slice();
    for &c in &counts {
        let (part, tail) = rest.split_at_mut(3 * c as usize);
        parts.push(part);
        rest = tail;
    }
    parts
        .into_par_iter()
        .zip(ends.par_iter().zip(groups.par_iter()))
        .enumerate()
        .with_min_len(64)
        .for_each(|(gi, (part, ((best, worst), &(s, _))))| {
            let mut rows = part.chunks_exact_mut(3);
            for &c in best {
                for &r in worst {
                    if let Some(row) = rows.next() {
                        row.copy_from_slice(&[gi as i64, (s + c) as i64, (s + r) as i64]);
                    }
                }
            }
        });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::testdata::grid;
    use super::*;
    use proptest::prelude::*;

    fn brute_fronts(f: &[f64], n: usize, m: usize) -> Vec<i64> {
        let mut front = vec![-1i64; n];
        let mut k = 0;
        let mut left: Vec<usize> = (0..n).collect();
        while !left.is_empty() {
            let cur: Vec<usize> = left
                .iter()
                .copied()
                .filter(|&i| {
                    !left
                        .iter()
                        .any(|&j| dominates(&f[j * m..(j + 1) * m], &f[i * m..(i + 1) * m]))
                })
                .collect();
            for &i in &cur {
                front[i] = k;
            }
            left.retain(|i| !cur.contains(i));
            k += 1;
        }
        front
    }

    proptest! {
        #[test]
        fn fronts_match_brute_force(seed in any::<u64>(), n in 0usize..60, m in 1usize..5,
                                    levels in 2u64..12) {
            let f = grid(seed, n * m, levels); // few levels: many ties and duplicates
            prop_assert_eq!(non_dominated_sort(&f, n, m).expect("valid"), brute_fronts(&f, n, m));
        }

        #[test]
        fn three_objective_sweep_matches_brute_force(seed in any::<u64>(), n in 65usize..400,
                                                     levels in 3u64..40) {
            let f = grid(seed, n * 3, levels);
            prop_assert_eq!(non_dominated_sort(&f, n, 3).expect("valid"), brute_fronts(&f, n, 3));
        }

        #[test]
        fn batched_equals_per_group(seed in any::<u64>(), sizes in prop::collection::vec(0usize..12, 1..6)) {
            let n: usize = sizes.iter().sum();
            let f = grid(seed, n * 3, 5);
            let mut offsets = vec![0i64];
            for s in &sizes { offsets.push(offsets[offsets.len() - 1] + *s as i64); }
            let got = non_dominated_sort_batched(&f, n, 3, &offsets).expect("valid");
            for w in offsets.windows(2) {
                let (s, e) = (w[0] as usize, w[1] as usize);
                prop_assert_eq!(&got[s..e], &brute_fronts(&f[s * 3..e * 3], e - s, 3)[..]);
            }
        }
    }

    /// The pairs as the loop before the counting pass made them (one group after another).
    fn pairs_by_loop(f: &[f64], m: usize, offsets: &[i64], all: bool) -> Vec<i64> {
        let mut out = Vec::new();
        for (gi, w) in offsets.windows(2).enumerate() {
            let (s, e) = (w[0] as usize, w[1] as usize);
            let fr = brute_fronts(&f[s * m..e * m], e - s, m);
            let last = fr.iter().copied().max().unwrap_or(0);
            if last == 0 {
                continue;
            }
            'group: for c in (0..fr.len()).filter(|&i| fr[i] == 0) {
                for r in (0..fr.len()).filter(|&i| fr[i] == last) {
                    out.extend([gi as i64, (s + c) as i64, (s + r) as i64]);
                    if !all {
                        break 'group;
                    }
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn counted_pairs_equal_the_pair_loop(seed in any::<u64>(), m in 1usize..4,
                                             sizes in prop::collection::vec(0usize..20, 1..80),
                                             all in any::<bool>()) {
            let n: usize = sizes.iter().sum();
            let f = grid(seed, n * m, 4);
            let mut offsets = vec![0i64];
            for s in &sizes { offsets.push(offsets[offsets.len() - 1] + *s as i64); }
            prop_assert_eq!(pareto_pairs(&f, n, m, &offsets, all).expect("valid"),
                            pairs_by_loop(&f, m, &offsets, all));
        }
    }

    #[test]
    fn crowding_examples() {
        let f = [0.0, 4.0, 1.0, 2.0, 3.0, 1.0, 4.0, 0.0];
        let d = crowding_distance(&f, 4, 2, &[0, 0, 0, 0]).expect("valid");
        assert!(d[0].is_infinite() && d[3].is_infinite());
        assert!((d[1] - (3.0 / 4.0 + 3.0 / 4.0)).abs() < 1e-15);
        assert!((d[2] - (3.0 / 4.0 + 2.0 / 4.0)).abs() < 1e-15);
    }

    #[test]
    fn nan_rows_are_rejected() {
        match non_dominated_sort(&[1.0, f64::NAN], 1, 2) {
            Err(Error::NonFinite { location, .. }) => assert_eq!(location, "row 0, column 1"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
