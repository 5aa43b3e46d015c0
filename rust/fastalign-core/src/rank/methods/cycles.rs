//! Cycle statistics of the majority graph of a pairwise preference matrix.

use crate::rank::bt::graph::{aggregate, beat_components};
use crate::rank::check_matrix;
use crate::Result;

/// Cycle statistics of the majority graph (edge i -> j when `P[i][j] > P[j][i]`): the
/// strongly connected component of each item (components numbered in topological order, the
/// top one first), their count, and the number of directed 3-cycles.
pub fn cycles(p: &[f64], m: usize) -> Result<(Vec<u32>, usize, u64)> {
    check_matrix(p, m, false)?;
    let words = m.div_ceil(64);
    let (mut out_bits, mut in_bits) = (vec![0u64; m * words], vec![0u64; m * words]);
    let (mut w, mut l) = (Vec::new(), Vec::new());
    for i in 0..m {
        for j in 0..m {
            if i != j && p[i * m + j] > p[j * m + i] {
                out_bits[i * words + j / 64] |= 1 << (j % 64);
                in_bits[j * words + i / 64] |= 1 << (i % 64);
                w.push(i as i64);
                l.push(j as i64);
            }
        }
    }
    // each 3-cycle i -> j -> k -> i is found once per edge: count k for every edge, divide by 3
    let mut three = 0u64;
    for (&i, &j) in w.iter().zip(&l) {
        let (i, j) = (i as usize, j as usize);
        three += (0..words)
            .map(|x| (out_bits[j * words + x] & in_bits[i * words + x]).count_ones() as u64)
            .sum::<u64>();
    }
    let pairs = aggregate(&w, &l, None, None, Some(m))?;
    let (comp, count) = beat_components(&pairs);
    Ok((comp, count, three / 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_cycles_and_components() {
        // rock-paper-scissors plus a dominated fourth item
        let p = [
            0., 1., 0., 1., 0., 0., 1., 1., 1., 0., 0., 1., 0., 0., 0., 0.,
        ];
        let (comp, count, three) = cycles(&p, 4).expect("cycles");
        assert_eq!((count, three), (2, 1));
        assert_eq!(comp[0], comp[1]);
        assert_ne!(comp[0], comp[3]);
    }
}
