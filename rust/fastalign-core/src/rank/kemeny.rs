//! Kemeny rankings: the order of items that minimizes the total weight of pairwise
//! preferences it contradicts, `sum over i placed before j of P[j][i]`. Exact by dynamic
//! programming over subsets for up to [`EXACT_MAX`] items; beyond, a local search (single-item
//! insertion moves until none improves) from the net-wins order. The objective is reported
//! either way, with whether it is proven optimal.

use crate::{Error, Result};

/// The largest item count solved exactly (2^m subsets).
pub const EXACT_MAX: usize = 16;

/// A ranking and its Kemeny objective.
#[derive(Clone, Debug, PartialEq)]
pub struct Kemeny {
    /// Item ids, first place first.
    pub order: Vec<usize>,
    /// The contradicted preference weight of `order`.
    pub objective: f64,
    /// Whether `order` is proven optimal (the exact method ran).
    pub exact: bool,
}

/// The contradicted preference weight of an order.
pub fn objective(p: &[f64], m: usize, order: &[usize]) -> f64 {
    let mut total = 0.0;
    for (a, &i) in order.iter().enumerate() {
        for &j in &order[a + 1..] {
            total += p[j * m + i];
        }
    }
    total
}

/// The Kemeny ranking of a preference matrix (`P[i][j]` = weight of "i preferred to j");
/// `exact` forces (`Some(true)`, up to [`EXACT_MAX`] items) or forbids the exact method.
pub fn kemeny(p: &[f64], m: usize, exact: Option<bool>) -> Result<Kemeny> {
    super::check_matrix(p, m, true)?;
    let use_exact = exact.unwrap_or(m <= EXACT_MAX);
    if use_exact && m > EXACT_MAX {
        return Err(Error::invalid(format!(
            "the exact Kemeny method handles at most {EXACT_MAX} items, got {m}"
        )));
    }
    let order = if use_exact {
        exact_order(p, m)
    } else {
        local_search(p, m, &crate::cancel::Token::current())?
    };
    Ok(Kemeny {
        objective: objective(p, m, &order),
        order,
        exact: use_exact,
    })
}

/// DP over subsets S (the items placed first): best[S] = min over the last placed j of
/// best[S - j] + (weight of preferences for j over the items of S - j). Among equally good
/// choices the smallest j is placed last, so the order is deterministic.
fn exact_order(p: &[f64], m: usize) -> Vec<usize> {
    let full = (1usize << m) - 1;
    let mut best = vec![f64::INFINITY; 1 << m];
    let mut last = vec![0u8; 1 << m];
    best[0] = 0.0;
    for set in 1..=full {
        let mut bits = set;
        while bits != 0 {
            let j = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let rest = set & !(1 << j);
            // j placed after every item of `rest`: preferences for j over them are contradicted
            let mut add = 0.0;
            let mut r = rest;
            while r != 0 {
                let i = r.trailing_zeros() as usize;
                r &= r - 1;
                add += p[j * m + i];
            }
            let v = best[rest] + add;
            if v < best[set] {
                best[set] = v;
                last[set] = j as u8;
            }
        }
    }
    let mut order = Vec::with_capacity(m);
    let mut set = full;
    while set != 0 {
        let j = last[set] as usize;
        order.push(j);
        set &= !(1 << j);
    }
    order.reverse();
    order
}

/// Insertion local search from the net-wins order: move one item to the position that lowers
/// the objective most, until no move helps (each pass O(m^2)); stops with
/// [`Error::Interrupted`] once `stop` is cancelled (checked before each move, O(m) apart).
fn local_search(p: &[f64], m: usize, stop: &crate::cancel::Token) -> Result<Vec<usize>> {
    let net: Vec<f64> = (0..m)
        .map(|i| (0..m).map(|j| p[i * m + j] - p[j * m + i]).sum())
        .collect();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| net[b].total_cmp(&net[a]).then(a.cmp(&b)));
    // improvements below this are rounding, not progress (relative to the weights)
    let eps = 1e-12
        * p.iter()
            .fold(0.0f64, |a, &v| a.max(v))
            .max(f64::MIN_POSITIVE);
    loop {
        let mut improved = false;
        for from in 0..m {
            stop.check()?;
            let x = order[from];
            // gain of moving x to each position, accumulated outward from `from`
            let (mut best_gain, mut best_to) = (0.0f64, from);
            let mut gain = 0.0;
            for to in (0..from).rev() {
                let y = order[to];
                gain += p[y * m + x] - p[x * m + y]; // x jumps ahead of y
                if gain < best_gain - eps {
                    best_gain = gain;
                    best_to = to;
                }
            }
            gain = 0.0;
            for to in from + 1..m {
                let y = order[to];
                gain += p[x * m + y] - p[y * m + x]; // x falls behind y
                if gain < best_gain - eps {
                    best_gain = gain;
                    best_to = to;
                }
            }
            if best_to != from {
                let item = order.remove(from);
                order.insert(best_to, item);
                improved = true;
            }
        }
        if !improved {
            return Ok(order);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permutations(m: usize) -> Vec<Vec<usize>> {
        if m == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(m - 1) {
            for pos in 0..=p.len() {
                let mut q = p.clone();
                q.insert(pos, m - 1);
                out.push(q);
            }
        }
        out
    }

    #[test]
    fn exact_equals_brute_force_and_search_is_never_better() {
        let mut state = 11u64;
        for m in 1..=7usize {
            for _ in 0..20 {
                let p = crate::rank::testdata::matrix(m, 6, &mut state);
                let brute = permutations(m)
                    .iter()
                    .map(|o| objective(&p, m, o))
                    .fold(f64::INFINITY, f64::min);
                let k = kemeny(&p, m, Some(true)).expect("exact");
                assert_eq!(k.objective, brute, "m={m}");
                let h = kemeny(&p, m, Some(false)).expect("search");
                assert!(h.objective >= brute);
                let mut sorted = h.order.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, (0..m).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn transitive_preferences_are_recovered() {
        // 0 > 2 > 1 > 3 by every voter
        let order = [0usize, 2, 1, 3];
        let mut p = vec![0.0; 16];
        for a in 0..4 {
            for b in a + 1..4 {
                p[order[a] * 4 + order[b]] = 5.0;
            }
        }
        for exact in [true, false] {
            let k = kemeny(&p, 4, Some(exact)).expect("k");
            assert_eq!(k.order, order);
            assert_eq!(k.objective, 0.0);
        }
        assert!(kemeny(&p, 4, None).expect("auto").exact);
    }

    /// A random `m x m` preference matrix (an LCG: the same on every platform).
    fn random_matrix(m: usize, mut state: u64) -> Vec<f64> {
        (0..m * m)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect()
    }

    #[test]
    fn local_search_stops_when_cancelled() {
        use crate::cancel::testing::{cancel_after, polled_stop_after};
        use crate::cancel::Token;
        use std::time::Duration;
        let p = random_matrix(40, 3);
        let want = kemeny(&p, 40, None).expect("search");
        let token = Token::new();
        assert_eq!(token.scope(|| kemeny(&p, 40, None)), Ok(want)); // the same bits
        token.cancel();
        assert_eq!(
            token.scope(|| kemeny(&p, 40, None)),
            Err(Error::Interrupted)
        );
        // the exact method has no check (2^16 subsets at most: quick)
        assert!(token.scope(|| kemeny(&p[..16 * 16], 16, None)).is_ok());
        // stopped while it runs (1500 items: seconds of passes), by a cancel or by the poll
        let big = random_matrix(1500, 9);
        let (out, late) = cancel_after(Duration::from_millis(50), || kemeny(&big, 1500, None));
        assert_eq!(out, Err(Error::Interrupted));
        assert!(late < Duration::from_secs(1), "{late:?}");
        let (out, late, _) =
            polled_stop_after(Duration::from_millis(80), || kemeny(&big, 1500, None));
        assert_eq!(out, Err(Error::Interrupted));
        assert!(late < Duration::from_secs(1), "{late:?}");
    }
}
