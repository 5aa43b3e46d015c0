//! LSH banding: the band/row choice for a threshold, band keys, and union-find clusters.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use super::text::fmix64;

/// Gauss-Legendre nodes and weights on [-1, 1], 8 points.
const GL8: [(f64, f64); 8] = [
    (-0.960_289_856_497_536_3, 0.101_228_536_290_376_26),
    (-0.796_666_477_413_626_7, 0.222_381_034_453_374_47),
    (-0.525_532_409_916_329, 0.313_706_645_877_887_3),
    (-0.183_434_642_495_649_8, 0.362_683_783_378_362),
    (0.183_434_642_495_649_8, 0.362_683_783_378_362),
    (0.525_532_409_916_329, 0.313_706_645_877_887_3),
    (0.796_666_477_413_626_7, 0.222_381_034_453_374_47),
    (0.960_289_856_497_536_3, 0.101_228_536_290_376_26),
];

/// The integral of `f` over [lo, hi] by composite 8-point Gauss-Legendre on 64 panels (the
/// integrands here are smooth; the error is below 1e-13).
fn integrate(f: impl Fn(f64) -> f64, lo: f64, hi: f64) -> f64 {
    const PANELS: usize = 64;
    let h = (hi - lo) / PANELS as f64;
    let mut total = 0.0;
    for p in 0..PANELS {
        let mid = lo + (p as f64 + 0.5) * h;
        for &(x, w) in &GL8 {
            total += w * f(mid + 0.5 * h * x);
        }
    }
    total * 0.5 * h
}

/// The probability mass of pairs below `threshold` that become candidates (b bands of r rows).
pub fn false_positive_area(threshold: f64, b: usize, r: usize) -> f64 {
    let (b, r) = (b as i32, r as i32);
    integrate(|s| 1.0 - (1.0 - s.powi(r)).powi(b), 0.0, threshold)
}

/// The probability mass of pairs above `threshold` that never become candidates.
pub fn false_negative_area(threshold: f64, b: usize, r: usize) -> f64 {
    let (b, r) = (b as i32, r as i32);
    integrate(|s| (1.0 - s.powi(r)).powi(b), threshold, 1.0)
}

/// The longest signature: the band search below visits every `bands * rows <= num_perm`, a
/// few hundred times the work of the search at 128 there, and larger values are refused before
/// it starts.
pub const MAX_NUM_PERM: usize = 4096;

/// The (bands, rows) with `bands * rows <= num_perm` minimising the weighted sum of the false
/// positive and false negative areas (the first minimum in order of bands, then rows: the
/// choice datasketch's `MinHashLSH` makes).
pub fn optimal_bands(
    threshold: f64,
    num_perm: usize,
    fp_weight: f64,
    fn_weight: f64,
) -> crate::Result<(usize, usize)> {
    if !(threshold > 0.0 && threshold < 1.0) {
        return Err(crate::Error::invalid(format!(
            "threshold must be in (0, 1), got {threshold}"
        )));
    }
    if !(2..=MAX_NUM_PERM).contains(&num_perm) {
        return Err(crate::Error::invalid(format!(
            "num_perm must be in [2, {MAX_NUM_PERM}], got {num_perm}"
        )));
    }
    // The search is not free (it grows with num_perm, see MAX_NUM_PERM); every call with the
    // same arguments reuses it.
    type Key = (u64, usize, u64, u64);
    static CACHE: OnceLock<Mutex<HashMap<Key, (usize, usize)>>> = OnceLock::new();
    let key = (
        threshold.to_bits(),
        num_perm,
        fp_weight.to_bits(),
        fn_weight.to_bits(),
    );
    let cache = CACHE.get_or_init(Default::default);
    if let Some(&hit) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return Ok(hit);
    }
    const TIE: f64 = 1e-12; // relative; the integrals are good to ~1e-13
    let mut best = (f64::INFINITY, (1, 1));
    for b in 1..=num_perm {
        for r in 1..=num_perm / b {
            let err = fp_weight * false_positive_area(threshold, b, r)
                + fn_weight * false_negative_area(threshold, b, r);
            // strictly better beyond quadrature rounding: exact ties (threshold 0.5,
            // num_perm 2: (1, 1) and (2, 1) both 0.125) keep the first, as datasketch's
            // quadrature happens to
            if err < best.0 * (1.0 - TIE) {
                best = (err, (b, r));
            }
        }
    }
    cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, best.1);
    Ok(best.1)
}

/// The key of one band of a signature (`rows` values) in a 64-bit space.
#[inline]
pub fn band_key(values: &[u32]) -> u64 {
    let mut h = values.len() as u64;
    for pair in values.chunks(2) {
        let x = pair[0] as u64 | (pair.get(1).copied().unwrap_or(0) as u64) << 32;
        h = (h.rotate_left(29) ^ fmix64(x)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fmix64(h)
}

/// Union-find whose roots are the smallest index of their set (so a cluster's id is its first
/// member), with path halving.
#[derive(Clone, Debug, Default)]
pub struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    pub fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n as u32).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// Adds `k` singletons.
    pub fn grow(&mut self, k: usize) {
        let n = self.parent.len() as u32;
        self.parent.extend(n..n + k as u32);
    }

    #[inline]
    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let g = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = g;
            x = g;
        }
        x
    }

    /// Joins the sets of `x` and `y`; false when they were already one.
    #[inline]
    pub fn union(&mut self, x: u32, y: u32) -> bool {
        let (a, b) = (self.find(x), self.find(y));
        if a == b {
            return false;
        }
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        self.parent[hi as usize] = lo;
        true
    }

    /// The root (first member) of every element.
    pub fn roots(&mut self) -> Vec<u32> {
        (0..self.parent.len() as u32)
            .map(|i| self.find(i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasketch_choices() {
        // The table of ../shared/spec/CPU_OPS.md (datasketch's MinHashLSH, weights 0.5/0.5).
        for (t, want) in [
            (0.5, (25, 5)),
            (0.7, (14, 9)),
            (0.8, (9, 13)),
            (0.9, (5, 25)),
        ] {
            assert_eq!(optimal_bands(t, 128, 0.5, 0.5), Ok(want), "threshold {t}");
        }
        assert!(optimal_bands(1.0, 128, 0.5, 0.5).is_err());
        assert!(optimal_bands(f64::NAN, 128, 0.5, 0.5).is_err());
    }

    #[test]
    fn areas_against_closed_forms() {
        // b = r = 1: P(s) = s, so the FP area is t^2 / 2 and the FN area (1 - t)^2 / 2.
        let t: f64 = 0.3;
        assert!((false_positive_area(t, 1, 1) - t * t / 2.0).abs() < 1e-15);
        assert!((false_negative_area(t, 1, 1) - (1.0 - t).powi(2) / 2.0).abs() < 1e-15);
    }

    #[test]
    fn union_find_roots_are_first_members() {
        let mut uf = UnionFind::new(6);
        assert!(uf.union(4, 2));
        assert!(uf.union(5, 4));
        assert!(!uf.union(2, 5));
        assert!(uf.union(3, 1));
        assert_eq!(uf.roots(), [0, 1, 2, 1, 2, 2]);
        uf.grow(2);
        assert!(uf.union(7, 5));
        assert_eq!(uf.find(7), 2);
    }
}
