//! Random preference matrices for the tests of the matrix methods (Kemeny, lotteries).

/// A random `m x m` preference matrix with a zero diagonal and integer weights below `max`,
/// drawn from the linear congruential stream in `state` (advanced in place).
pub(crate) fn matrix(m: usize, max: u64, state: &mut u64) -> Vec<f64> {
    (0..m * m)
        .map(|k| {
            *state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if k / m == k % m {
                0.0
            } else {
                ((*state >> 40) % max) as f64
            }
        })
        .collect()
}
