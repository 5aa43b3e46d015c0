//! Random points on a few levels (many ties and duplicates) for the tests of the Pareto
//! operations.

pub(super) fn grid(seed: u64, len: usize, levels: u64) -> Vec<f64> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % levels) as f64
        })
        .collect()
}
