//! Random comparison rows for the tests of the Bradley-Terry fits.

/// Random comparisons: `m` rows among `n` items, winners favoured by their id, with
/// weights and ties when asked.
#[allow(clippy::type_complexity)]
pub(super) fn rows(
    n: usize,
    m: usize,
    seed: u64,
    weighted: bool,
    tie_rate: f64,
) -> (Vec<i64>, Vec<i64>, Option<Vec<f64>>, Option<Vec<bool>>) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut w, mut l, mut wt, mut ti) = (vec![], vec![], vec![], vec![]);
    while w.len() < m {
        let a = (next() * n as f64) as i64;
        let b = (next() * n as f64) as i64;
        if a == b {
            continue;
        }
        let p = 1.0 / (1.0 + ((b - a) as f64 * 3.0 / n as f64).exp());
        let (win, lose) = if next() < p { (a, b) } else { (b, a) };
        w.push(win);
        l.push(lose);
        // some zero weights: a comparison that counts for nothing
        wt.push(if next() < 0.05 { 0.0 } else { next() * 2.0 });
        ti.push(next() < tie_rate);
    }
    (w, l, weighted.then_some(wt), (tie_rate > 0.0).then_some(ti))
}
