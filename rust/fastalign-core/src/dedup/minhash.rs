//! MinHash signatures with a true permutation family.
//!
//! A shingle's 64-bit hash is folded to 32 bits (its high half after a full 64-bit mix), and
//! permutation `k` maps it to `a_k * h + b_k mod 2^32` with `a_k` odd: a bijection of the
//! 32-bit universe, computed in wrapping u32 arithmetic (no overflow to mishandle, unlike the
//! `(a * h + b) mod p` formula over uint64 that datasketch used before 2.0). The signature of
//! a set is the minimum of each permutation over its shingles; the fraction of equal slots of
//! two signatures estimates their Jaccard similarity without bias (tested).
//!
//! The inner loop runs over blocks of 32 permutations held in registers, once per shingle. On
//! x86-64 a copy compiled for AVX2 is chosen at run time (8 u32 lanes per instruction).

// The one unsafe operation of the crate: calling the AVX2 copy of the kernel after checking at
// run time that the CPU has AVX2.
#![allow(unsafe_code)]

/// The permutation parameters of one seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permutations {
    pub a: Vec<u32>,
    pub b: Vec<u32>,
}

/// splitmix64: the seed expander.
#[inline]
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Permutations {
    /// `num_perm` permutations drawn from `seed` (the same seed gives the same family).
    pub fn new(num_perm: usize, seed: u64) -> Self {
        let mut state = seed ^ 0x005E_ED0F_FA57_A119;
        let (mut a, mut b) = (Vec::with_capacity(num_perm), Vec::with_capacity(num_perm));
        for _ in 0..num_perm {
            let x = splitmix64(&mut state);
            a.push((x as u32) | 1);
            b.push((x >> 32) as u32);
        }
        Permutations { a, b }
    }

    pub fn len(&self) -> usize {
        self.a.len()
    }

    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }
}

/// A shingle's 64-bit hash (already fully mixed) as the 32-bit input of the permutations.
#[inline]
pub fn fold32(h: u64) -> u32 {
    (h >> 32) as u32
}

const BLOCK: usize = 32;

#[inline(always)]
fn block<const W: usize>(hs: &[u32], a: &[u32], b: &[u32], out: &mut [u32]) {
    let a: &[u32; W] = a.try_into().expect("block width");
    let b: &[u32; W] = b.try_into().expect("block width");
    let mut m = [u32::MAX; W];
    for &h in hs {
        for k in 0..W {
            m[k] = m[k].min(a[k].wrapping_mul(h).wrapping_add(b[k]));
        }
    }
    out.copy_from_slice(&m);
}

#[inline(always)]
fn signature_generic(hs: &[u32], perms: &Permutations, out: &mut [u32]) {
    let p = perms.len();
    let full = p - p % BLOCK;
    let mut k = 0;
    while k < full {
        block::<BLOCK>(
            hs,
            &perms.a[k..k + BLOCK],
            &perms.b[k..k + BLOCK],
            &mut out[k..k + BLOCK],
        );
        k += BLOCK;
    }
    while k + 8 <= p {
        block::<8>(
            hs,
            &perms.a[k..k + 8],
            &perms.b[k..k + 8],
            &mut out[k..k + 8],
        );
        k += 8;
    }
    for ((o, &a), &b) in out[k..].iter_mut().zip(&perms.a[k..]).zip(&perms.b[k..]) {
        *o = hs
            .iter()
            .map(|&h| a.wrapping_mul(h).wrapping_add(b))
            .min()
            .unwrap_or(u32::MAX);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn signature_avx2(hs: &[u32], perms: &Permutations, out: &mut [u32]) {
    signature_generic(hs, perms, out)
}

/// The MinHash signature (`perms.len()` values) of a set given by its 32-bit shingle inputs
/// (repeats allowed); all `u32::MAX` for an empty set.
pub fn signature(hs: &[u32], perms: &Permutations, out: &mut [u32]) {
    assert_eq!(out.len(), perms.len(), "signature buffer length");
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above), the only requirement of
            // calling a function compiled with `target_feature(enable = "avx2")`.
            unsafe { signature_avx2(hs, perms, out) };
            return;
        }
    }
    signature_generic(hs, perms, out)
}

/// The fraction of equal slots: the MinHash estimate of the Jaccard similarity.
#[inline]
pub fn estimate(x: &[u32], y: &[u32]) -> f64 {
    let equal = x.iter().zip(y).filter(|(a, b)| a == b).count();
    equal as f64 / x.len().max(1) as f64
}

/// The exact Jaccard similarity of two sorted, deduplicated sets (1 for two empty sets).
pub fn jaccard_sorted(x: &[u64], y: &[u64]) -> f64 {
    if x.is_empty() && y.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < x.len() && j < y.len() {
        match x[i].cmp(&y[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    common as f64 / (x.len() + y.len() - common) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(hs: &[u32], perms: &Permutations) -> Vec<u32> {
        (0..perms.len())
            .map(|k| {
                hs.iter()
                    .map(|&h| perms.a[k].wrapping_mul(h).wrapping_add(perms.b[k]))
                    .min()
                    .unwrap_or(u32::MAX)
            })
            .collect()
    }

    #[test]
    fn kernels_equal_the_definition_for_any_width() {
        let hs: Vec<u32> = (0..300u64)
            .map(|i| fold32(crate::dedup::text::fmix64(i)))
            .collect();
        for p in [1, 7, 8, 31, 32, 33, 64, 100, 128, 256] {
            let perms = Permutations::new(p, 3);
            let mut out = vec![0; p];
            signature(&hs, &perms, &mut out);
            assert_eq!(out, scalar(&hs, &perms), "num_perm {p}");
            signature_generic(&hs, &perms, &mut out);
            assert_eq!(out, scalar(&hs, &perms), "num_perm {p}");
            signature(&[], &perms, &mut out);
            assert!(out.iter().all(|&v| v == u32::MAX));
        }
    }

    #[test]
    fn multipliers_are_odd_and_seeds_differ() {
        let p = Permutations::new(64, 0);
        assert!(p.a.iter().all(|a| a % 2 == 1));
        assert_ne!(p, Permutations::new(64, 1));
        assert_eq!(p, Permutations::new(64, 0));
    }

    #[test]
    fn exact_jaccard() {
        assert_eq!(jaccard_sorted(&[1, 2, 3], &[2, 3, 4]), 0.5);
        assert_eq!(jaccard_sorted(&[], &[]), 1.0);
        assert_eq!(jaccard_sorted(&[1], &[]), 0.0);
    }

    /// The estimate is unbiased with variance J(1-J)/P: over many random pairs of sets with
    /// a known Jaccard similarity, the mean error is within a few standard errors of 0 and the
    /// variance within 25% of the binomial one.
    #[test]
    fn estimate_is_unbiased_with_binomial_variance() {
        let p = 128;
        let mut state = 42u64;
        for &(common, only) in &[(50usize, 25usize), (80, 10), (30, 35), (95, 2)] {
            let j = common as f64 / (common + 2 * only) as f64;
            let trials = 2000;
            let (mut sum, mut sum2) = (0.0, 0.0);
            for t in 0..trials {
                let perms = Permutations::new(p, t as u64);
                let mut draw = || fold32(splitmix64(&mut state));
                let shared: Vec<u32> = (0..common).map(|_| draw()).collect();
                let mut x = shared.clone();
                let mut y = shared;
                x.extend((0..only).map(|_| draw()));
                y.extend((0..only).map(|_| draw()));
                let (mut sx, mut sy) = (vec![0; p], vec![0; p]);
                signature(&x, &perms, &mut sx);
                signature(&y, &perms, &mut sy);
                let e = estimate(&sx, &sy) - j;
                sum += e;
                sum2 += e * e;
            }
            let mean = sum / trials as f64;
            let var = sum2 / trials as f64 - mean * mean;
            let want = j * (1.0 - j) / p as f64;
            let se = (want / trials as f64).sqrt();
            assert!(mean.abs() < 4.0 * se, "J={j}: mean error {mean} (se {se})");
            assert!(
                (var / want - 1.0).abs() < 0.25,
                "J={j}: var {var} vs {want}"
            );
        }
    }
}
