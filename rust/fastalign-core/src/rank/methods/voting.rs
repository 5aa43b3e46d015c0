//! Voting rules: Borda points over rankings; Copeland and Schulze over a pairwise preference
//! matrix.

use crate::rank::check_matrix;
use crate::rank::pl::Rankings;
use crate::Result;

/// Borda points: in a ranking of `L` items, position `p` (0 = best) earns `L - 1 - p`.
pub fn borda(rk: &Rankings) -> Vec<f64> {
    let mut pts = vec![0.0; rk.n];
    for w in rk.offsets.windows(2) {
        let r = &rk.items[w[0]..w[1]];
        for (p, &i) in r.iter().enumerate() {
            pts[i as usize] += (r.len() - 1 - p) as f64;
        }
    }
    pts
}

/// Copeland scores: pairwise-majority wins minus losses (a tied pair counts for neither).
pub fn copeland(p: &[f64], m: usize) -> Result<Vec<f64>> {
    check_matrix(p, m, false)?;
    Ok((0..m)
        .map(|i| {
            (0..m)
                .filter(|&j| j != i)
                .map(|j| {
                    let (a, b) = (p[i * m + j], p[j * m + i]);
                    f64::from(u8::from(a > b)) - f64::from(u8::from(a < b))
                })
                .sum()
        })
        .collect())
}

/// Schulze: strongest-path strengths (widest paths over the pairwise wins `P[i][j]` where
/// `P[i][j] > P[j][i]`), and per item the number of others it beats by path strength (the
/// Schulze ranking orders by it; the winners beat everyone else they are not tied with).
pub fn schulze(p: &[f64], m: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    check_matrix(p, m, false)?;
    let mut s = vec![0.0f64; m * m];
    for i in 0..m {
        for j in 0..m {
            if i != j && p[i * m + j] > p[j * m + i] {
                s[i * m + j] = p[i * m + j];
            }
        }
    }
    for k in 0..m {
        for i in 0..m {
            if i == k {
                continue;
            }
            let sik = s[i * m + k];
            if sik == 0.0 {
                continue;
            }
            for j in 0..m {
                if j != i && j != k {
                    let via = sik.min(s[k * m + j]);
                    if via > s[i * m + j] {
                        s[i * m + j] = via;
                    }
                }
            }
        }
    }
    let wins = (0..m)
        .map(|i| {
            (0..m)
                .filter(|&j| j != i && s[i * m + j] > s[j * m + i])
                .count() as f64
        })
        .collect();
    Ok((wins, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schulze_and_copeland_on_a_classic() {
        // Wikipedia's Schulze example (45 voters, 5 candidates A..E): winner E
        let d = [
            0., 20., 26., 30., 22., 25., 0., 16., 33., 18., 19., 29., 0., 17., 24., 15., 12., 28.,
            0., 14., 23., 27., 21., 31., 0.,
        ];
        let (wins, _) = schulze(&d, 5).expect("schulze");
        assert_eq!(wins, [3.0, 1.0, 2.0, 0.0, 4.0]); // E > A > C > B > D
        let c = copeland(&d, 5).expect("copeland");
        assert_eq!(c.iter().sum::<f64>(), 0.0);
    }
}
