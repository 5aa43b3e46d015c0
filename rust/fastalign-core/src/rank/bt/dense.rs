//! Bradley-Terry on dense `n x n` tables, for comparisons that cover most pairs of items (at
//! least `n^2 / 2` comparisons among `n` items, the arena case). The tables are then no larger
//! than the comparisons; building them takes a counting pass and a grouping pass over the
//! comparisons and one pass of additions into blocks of rows that stay in cache (no sort, no
//! pair list); every pass of the fit reads whole rows in order, in vectorized loops, with no
//! scatter. Each row is summed on its own in a fixed order, so the result is the same for any
//! number of threads and with or without AVX2. Counts are kept in `f32` cells (exact below
//! 2^24), weights in `f64`; the curvature cache is `f32`, relative to the largest item total
//! (it only shapes the Newton steps).
//! On 1000 items / 1M comparisons the dense fit takes less than half the pair list's time
//! (see `benches/results/rank_cpu_2core.md`). The pair-list path ([`super::pairs`],
//! [`super::davidson`]) takes sparser data and the Davidson tie model.

use rayon::prelude::*;

use super::dense_rows;
use super::graph::{check_identifiable, check_row, convergence_scale, log_odds, Pairs};
use crate::mem::Zeroed;
use crate::rank::newton::{check_args, maximize, Fit, Model};
use crate::Result;

/// Whether `m` comparisons among `n` items go to the dense tables.
pub fn dense_enough(n: usize, m: usize) -> bool {
    n >= 2 && n.saturating_mul(n) <= m.saturating_mul(2)
}

/// Table cells per parallel task, at least (whole rows per task, a fixed number for a given
/// `n`: each row's sums never depend on the split).
const TASK_CELLS: usize = 1 << 14;

fn rows_per_task(n: usize) -> usize {
    (TASK_CELLS / n.max(1)).max(1)
}

/// The type of a pair-total cell: `f32` for counts (exact below 2^24), `f64` for weights and
/// larger counts.
pub trait Cell: bytemuck::Pod + Send + Sync + Into<f64> + std::ops::AddAssign {
    const ONE: Self;
}

impl Cell for f32 {
    const ONE: f32 = 1.0;
}

impl Cell for f64 {
    const ONE: f64 = 1.0;
}

/// A unit-weight comparison's entry for one cell of its pair: the cell's row within its block
/// of rows, its column, and whether it is the loser's cell (`(loser, winner)`).
pub trait Entry: bytemuck::Pod + Send + Sync {
    /// Whether rows below `block` and columns below `n` fit.
    fn fits(n: usize, block: usize) -> bool;
    fn pack(row: usize, col: usize, mirror: bool) -> Self;
    fn unpack(self) -> (usize, usize, bool);
}

impl Entry for u32 {
    fn fits(n: usize, block: usize) -> bool {
        n <= 1 << 15 && block <= 1 << 16
    }

    fn pack(row: usize, col: usize, mirror: bool) -> u32 {
        (row << 16 | col << 1 | usize::from(mirror)) as u32
    }

    fn unpack(self) -> (usize, usize, bool) {
        (
            (self >> 16) as usize,
            (self >> 1 & 0x7fff) as usize,
            self & 1 == 1,
        )
    }
}

impl Entry for u64 {
    fn fits(n: usize, block: usize) -> bool {
        n <= 1 << 31 && block <= 1 << 32
    }

    fn pack(row: usize, col: usize, mirror: bool) -> u64 {
        (row as u64) << 32 | (col as u64) << 1 | u64::from(mirror)
    }

    fn unpack(self) -> (usize, usize, bool) {
        (
            (self >> 32) as usize,
            (self as u32 >> 1) as usize,
            self & 1 == 1,
        )
    }
}

/// Counts up to this are exact in an `f32` cell.
pub const F32_EXACT: usize = 1 << 24;

/// Row-major `n x n` tables of a set of comparisons.
#[derive(Debug)]
pub struct Table<T> {
    pub n: usize,
    /// `t[a * n + b]`: the weight of the comparisons of `a` and `b` (whoever won), symmetric
    /// bit for bit, 0 on the diagonal.
    t: Zeroed<T>,
    /// Per item, the weight of its wins (a tie: half a win for each side).
    wins: Vec<f64>,
    /// Per item, the weight of all its comparisons (the row sums of `t`), and the largest:
    /// the curvature cache holds curvatures divided by it, so that `f32` covers any scale of
    /// weights.
    totals: Vec<f64>,
    unit: f64,
    /// Bit matrices (`words` 64-bit words a row): bit `(a, b)` of `beat` is set when `a` beat
    /// `b` with a positive weight, of `lost` when `b` beat `a`.
    beat: Vec<u64>,
    lost: Vec<u64>,
    words: usize,
}

/// Comparisons per task of the first pass: at least 2^16, at most 64 tasks (each has a counter
/// per block of rows). A function of `m` alone, so the entries are the same for any number of
/// threads.
fn chunk_rows(m: usize) -> usize {
    m.div_ceil(64).max(1 << 16)
}

/// Rows of the tables per block of the second pass, a power of two: a block's cells (at most
/// 8 bytes each) stay in a core's L2 cache while its entries are added, instead of every
/// comparison missing the caches twice in a table of megabytes.
fn block_rows(n: usize) -> usize {
    let rows = ((1usize << 15) / n.max(1)).max(1);
    1 << (usize::BITS - 1 - rows.leading_zeros())
}

/// Builds the tables. First, in parallel chunks of comparisons: `entries(k)` checks comparison
/// `k` and gives its two entries, one per cell of the pair (`(a, b)` and `(b, a)`), each with
/// the cell's row; the entries are counted, then grouped by block of rows, in input order
/// within a block (a stable counting sort). Then, in parallel blocks: `add(entry, t, wins,
/// beat, lost)` adds one entry into the block's rows of each table (the entry holds the
/// cell's row within the block). The first bad comparison in input order is the error.
fn build<T: Cell, E: bytemuck::Pod + Send + Sync>(
    m: usize,
    n: usize,
    entries: impl Fn(usize) -> Result<[(usize, E); 2]> + Sync,
    add: impl Fn(E, &mut [T], &mut [f64], &mut [u64], &mut [u64]) + Sync,
) -> Result<Table<T>> {
    let (block, words) = (block_rows(n), n.div_ceil(64));
    let (blocks, shift) = (n.div_ceil(block), block.trailing_zeros());
    let per_chunk = chunk_rows(m);
    let chunks = m.div_ceil(per_chunk);
    let rows = |c: usize| c * per_chunk..((c + 1) * per_chunk).min(m);
    let counted: Vec<Result<Vec<usize>>> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let mut count = vec![0usize; blocks];
            for k in rows(c) {
                for (row, _) in entries(k)? {
                    count[row >> shift] += 1;
                }
            }
            Ok(count)
        })
        .collect();
    let counts = counted.into_iter().collect::<Result<Vec<_>>>()?;
    // the entries grouped by block, each block's in chunk order: every (chunk, block) gets
    // its own slice, cut in that order
    let mut grouped = Zeroed::<E>::new(2 * m);
    let mut slices: Vec<Vec<&mut [E]>> = (0..chunks).map(|_| Vec::new()).collect();
    let mut block_entries: Vec<usize> = vec![0; blocks];
    {
        let mut rest: &mut [E] = &mut grouped;
        for b in 0..blocks {
            for (c, count) in counts.iter().enumerate() {
                let (head, tail) = rest.split_at_mut(count[b]);
                slices[c].push(head);
                block_entries[b] += count[b];
                rest = tail;
            }
        }
        slices.into_par_iter().enumerate().for_each(|(c, mut out)| {
            let mut at = vec![0usize; blocks];
            for k in rows(c) {
                // checked in the first pass
                if let Ok(pair) = entries(k) {
                    for (row, e) in pair {
                        let b = row >> shift;
                        out[b][at[b]] = e;
                        at[b] += 1;
                    }
                }
            }
        });
    }
    let mut t = Zeroed::<T>::new(n * n);
    let mut wins = vec![0.0f64; n];
    let (mut beat, mut lost) = (vec![0u64; n * words], vec![0u64; n * words]);
    let mut groups: Vec<&[E]> = Vec::with_capacity(blocks);
    let mut rest: &[E] = &grouped;
    for &count in &block_entries {
        let (head, tail) = rest.split_at(count);
        groups.push(head);
        rest = tail;
    }
    t.par_chunks_mut(block * n)
        .zip(wins.par_chunks_mut(block))
        .zip(beat.par_chunks_mut(block * words))
        .zip(lost.par_chunks_mut(block * words))
        .zip(groups)
        .for_each(|((((t, wins), beat), lost), group)| {
            for &e in group {
                add(e, t, wins, beat, lost);
            }
        });
    Ok(Table::new(n, t, wins, beat, lost, words))
}

/// Sets bit `col` of row `row` (relative to a block) of a bit matrix of `words` words a row.
#[inline]
fn set_bit(bits: &mut [u64], words: usize, row: usize, col: usize) {
    bits[row * words + col / 64] |= 1 << (col % 64);
}

/// Unit-weight comparisons (no weights, no ties) as the dense tables: `f32` cells with `u32`
/// entries for fewer than [`F32_EXACT`] comparisons (exact counts), `f64` and `u64` beyond.
pub(crate) fn counted<T: Cell, E: Entry>(
    winners: &[i64],
    losers: &[i64],
    n: usize,
) -> Result<Table<T>> {
    let (block, words) = (block_rows(n), n.div_ceil(64));
    if !E::fits(n, block) || winners.len() != losers.len() {
        return Err(crate::Error::invalid(format!(
            "{n} items do not fit this table's entries"
        )));
    }
    let mask = block - 1;
    let entries = |k: usize| -> Result<[(usize, E); 2]> {
        let (a, b) = check_row(k, winners, losers, None, n)?;
        Ok([
            (a, E::pack(a & mask, b, false)),
            (b, E::pack(b & mask, a, true)),
        ])
    };
    build(
        winners.len(),
        n,
        entries,
        |e: E, t: &mut [T], wins, beat, lost| {
            let (row, col, mirror) = e.unpack();
            t[row * n + col] += T::ONE;
            if mirror {
                set_bit(lost, words, row, col);
            } else {
                wins[row] += 1.0;
                set_bit(beat, words, row, col);
            }
        },
    )
}

/// Weighted comparisons (with ties as half a win each way) as the dense tables.
pub(crate) fn weighed(
    winners: &[i64],
    losers: &[i64],
    weights: Option<&[f64]>,
    ties: Option<&[bool]>,
    n: usize,
) -> Result<Table<f64>> {
    let (mask, words) = (block_rows(n) - 1, n.div_ceil(64));
    // an entry: [the cell's row in its block << 32 | its column << 2 | 2 for a tie | 1 for
    // the loser's cell, the weight's bits]; each cell of a pair gets the same weights in
    // input order, so the table is symmetric bit for bit
    let entries = |k: usize| -> Result<[(usize, [u64; 2]); 2]> {
        let (a, b) = check_row(k, winners, losers, weights, n)?;
        let w = weights.map_or(1.0, |x| x[k]).to_bits();
        let tie = if ties.is_some_and(|t| t[k]) { 2 } else { 0 };
        let cell = |row: usize, col: usize| ((row & mask) as u64) << 32 | (col as u64) << 2 | tie;
        Ok([(a, [cell(a, b), w]), (b, [cell(b, a) | 1, w])])
    };
    build(
        winners.len(),
        n,
        entries,
        |[e, w], t: &mut [f64], wins, beat, lost| {
            let (row, col, w) = (
                (e >> 32) as usize,
                (e as u32 >> 2) as usize,
                f64::from_bits(w),
            );
            t[row * n + col] += w;
            // the weight of this row's item beating the column's, and of losing to it: the
            // pair list's sums for the pair take the same terms (a bit is set when one of
            // them is positive)
            let (won, lost_to) = match (e & 2 != 0, e & 1 != 0) {
                (true, _) => (0.5 * w, 0.5 * w), // a tie: half a win each way
                (false, false) => (w, 0.0),      // the winner's cell
                (false, true) => (0.0, w),       // the loser's cell
            };
            wins[row] += won;
            if won > 0.0 {
                set_bit(beat, words, row, col);
            }
            if lost_to > 0.0 {
                set_bit(lost, words, row, col);
            }
        },
    )
}

impl<T: Cell> Table<T> {
    fn new(
        n: usize,
        t: Zeroed<T>,
        wins: Vec<f64>,
        beat: Vec<u64>,
        lost: Vec<u64>,
        words: usize,
    ) -> Table<T> {
        let totals: Vec<f64> = t
            .par_chunks(n.max(1))
            .map(|row| row.iter().map(|&x| x.into()).sum())
            .collect();
        let top = totals.iter().copied().fold(0.0, f64::max);
        Table {
            n,
            t,
            wins,
            totals,
            unit: if top > 0.0 { top } else { 1.0 },
            beat,
            lost,
            words,
        }
    }

    /// Per item, the total weight of its comparisons (the row sums of `t`).
    pub fn totals(&self) -> &[f64] {
        &self.totals
    }

    /// Whether the "beat" graph is strongly connected: every item is reached from item 0
    /// along beats, and reaches it (two searches over the bit rows).
    pub fn strongly_connected(&self) -> bool {
        let (n, words) = (self.n, self.words);
        if n == 0 {
            return true;
        }
        [&self.beat, &self.lost].iter().all(|rows| {
            let mut seen = vec![0u64; words];
            seen[0] = 1;
            let (mut stack, mut reached) = (vec![0usize], 1usize);
            while let Some(a) = stack.pop() {
                for (k, (s, &r)) in seen.iter_mut().zip(&rows[a * words..]).enumerate() {
                    let mut new = r & !*s;
                    *s |= new;
                    while new != 0 {
                        stack.push(k * 64 + new.trailing_zeros() as usize);
                        reached += 1;
                        new &= new - 1;
                    }
                }
            }
            reached == n
        })
    }

    /// The pair list of the same "beat" graph (unit weights: for the connectivity check's
    /// explanation).
    pub fn pairs(&self) -> Pairs {
        let (n, words) = (self.n, self.words);
        let bit = |rows: &[u64], i: usize, j: usize| rows[i * words + j / 64] >> (j % 64) & 1;
        let mut p = Pairs {
            n,
            ..Pairs::default()
        };
        for i in 0..n {
            for j in i + 1..n {
                let (x, y) = (bit(&self.beat, i, j), bit(&self.lost, i, j));
                if x + y > 0 {
                    p.i.push(i as u32);
                    p.j.push(j as u32);
                    p.wij.push(x as f64);
                    p.wji.push(y as f64);
                    p.tie.push(0.0);
                }
            }
        }
        p
    }
}

/// Fits Bradley-Terry strengths to the tables, as [`super::pairs::fit`] does to a pair list.
pub fn fit<T: Cell>(table: &Table<T>, prior: f64, tol: f64, max_iter: usize) -> Result<Fit> {
    check_args(prior, tol)?;
    if prior == 0.0 && !table.strongly_connected() {
        // the same graph as a pair list, for the error that names a group
        check_identifiable(&table.pairs(), prior)?;
    }
    let totals = table.totals();
    let (scale, start) = (convergence_scale(totals), log_odds(&table.wins, totals));
    Ok(maximize(
        table,
        table.n,
        prior,
        tol,
        max_iter,
        &scale,
        Some(&start),
        None,
    ))
}

/// The Bradley-Terry log-likelihood over the tables; its curvature is the graph Laplacian
/// with cell weights `t_ij q (1 - q)`, `q = sigmoid(s_i - s_j)`, cached in single precision
/// divided by the largest item total (it only shapes the Newton steps: the gradient, which
/// decides convergence, is exact).
impl<T: Cell> Model for Table<T> {
    type Cache = Zeroed<f32>;

    fn new_cache(&self) -> Zeroed<f32> {
        Zeroed::new(self.n * self.n)
    }

    fn evaluate(&self, s: &[f64], g: &mut [f64], diag: &mut [f64], c: &mut Zeroed<f32>) {
        let n = self.n;
        // sigmoid(s_i - s_j) = e_i / (e_i + e_j) with e = exp(s - mean), as in the pair list
        // (one exp per item while no score is more than 300 from the mean)
        let mean = s.iter().sum::<f64>() / n as f64;
        let spread = s.iter().map(|x| (x - mean).abs()).fold(0.0, f64::max);
        let ex: Vec<f64> = if spread <= 300.0 {
            s.iter().map(|x| (x - mean).exp()).collect()
        } else {
            Vec::new()
        };
        // the cache holds curvatures divided by the largest item total (see `unit`)
        let (r, scale) = (rows_per_task(n), 1.0 / self.unit);
        let table: &[T] = &self.t;
        c.par_chunks_mut(r * n)
            .zip(g.par_chunks_mut(r))
            .zip(diag.par_chunks_mut(r))
            .enumerate()
            .for_each(|(k, ((c, g), diag))| {
                for (d, (row, (gi, di))) in c
                    .chunks_mut(n)
                    .zip(g.iter_mut().zip(diag.iter_mut()))
                    .enumerate()
                {
                    let i = k * r + d;
                    let t = &table[i * n..(i + 1) * n];
                    let (expected, curvature) = if ex.is_empty() {
                        dense_rows::evaluate_wide(t, s, s[i], scale, row)
                    } else {
                        dense_rows::evaluate(t, &ex, ex[i], scale, row)
                    };
                    *gi = self.wins[i] - expected;
                    *di = curvature;
                }
            });
    }

    /// A curvature product reads a quarter of what an evaluation does, and the Jacobi-
    /// preconditioned Laplacian of a dense graph is well conditioned: solving each step to
    /// `rel` took 4 iterations (12 products) on 1000 items / 1M comparisons where `sqrt(rel)`
    /// took 5 (and 1.9x the time).
    fn forcing(&self, rel: f64) -> f64 {
        rel
    }

    fn apply(&self, c: &Zeroed<f32>, v: &[f64], out: &mut [f64]) {
        let n = self.n;
        let (r, unit) = (rows_per_task(n), self.unit);
        let c: &[f32] = c;
        out.par_chunks_mut(r).enumerate().for_each(|(k, out)| {
            for (d, o) in out.iter_mut().enumerate() {
                let i = k * r + d;
                *o += unit * dense_rows::laplacian(&c[i * n..(i + 1) * n], v, v[i]);
            }
        });
    }

    fn loglik(&self, s: &[f64]) -> f64 {
        // sum_ab w_ab log sigmoid(s_a - s_b) = sum_a wins_a s_a - sum_ab w_ab log(e^s_a + e^s_b)
        // and the last sum is symmetric: half of sum_ab t_ab log(e^s_a + e^s_b), each log
        // taken stably as max(s_a, s_b) + log1p(exp(-|s_a - s_b|))
        let n = self.n;
        let won: f64 = self.wins.iter().zip(s).map(|(w, x)| w * x).sum();
        let per_row: Vec<f64> = self
            .t
            .par_chunks(n)
            .enumerate()
            .map(|(i, t)| {
                let mut total = 0.0;
                for (&t, &sj) in t.iter().zip(s) {
                    let t: f64 = t.into();
                    if t > 0.0 {
                        let d = s[i] - sj;
                        total += t * (s[i].max(sj) + (-d.abs()).exp().ln_1p());
                    }
                }
                total
            })
            .collect();
        won - 0.5 * per_row.iter().sum::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::super::graph::{aggregate, beat_components, wins_totals};
    use super::super::testdata::rows;
    use super::*;

    #[test]
    fn tables_hold_what_the_pair_list_holds() {
        // one block of rows, one word of bits, one chunk of comparisons; then several of each
        for (n, m) in [(37, 3000), (150, 70_000), (300, 140_000)] {
            for (seed, weighted, tie_rate) in [(1, false, 0.0), (2, true, 0.0), (3, true, 0.3)] {
                check_tables(n, m, seed, weighted, tie_rate);
            }
        }
    }

    fn check_tables(n: usize, m: usize, seed: u64, weighted: bool, tie_rate: f64) {
        assert!(n < 64 || (block_rows(n) < n && chunk_rows(m) < m));
        let (w, l, wt, ti) = rows(n, m, seed, weighted, tie_rate);
        let table = weighed(&w, &l, wt.as_deref(), ti.as_deref(), n).expect("table");
        let p = aggregate(&w, &l, wt.as_deref(), ti.as_deref(), Some(n)).expect("pairs");
        let t: &[f64] = &table.t;
        let mut seen = vec![false; n * n];
        for e in 0..p.i.len() {
            let (a, b) = (p.i[e] as usize, p.j[e] as usize);
            let total = p.wij[e] + p.wji[e];
            assert!((t[a * n + b] - total).abs() <= 1e-12 * total, "{a} {b}");
            let bit = |rows: &[u64], i: usize, j: usize| {
                rows[i * table.words + j / 64] >> (j % 64) & 1 == 1
            };
            assert_eq!(bit(&table.beat, a, b), p.wij[e] > 0.0);
            assert_eq!(bit(&table.lost, a, b), p.wji[e] > 0.0);
            assert_eq!(bit(&table.beat, b, a), p.wji[e] > 0.0);
            assert_eq!(bit(&table.lost, b, a), p.wij[e] > 0.0);
            seen[a * n + b] = true;
            seen[b * n + a] = true;
        }
        for a in 0..n {
            for b in 0..n {
                // symmetric bit for bit; nothing where the pair list has nothing
                assert_eq!(t[a * n + b].to_bits(), t[b * n + a].to_bits());
                if !seen[a * n + b] {
                    assert_eq!(t[a * n + b], 0.0);
                }
            }
        }
        let (wins, totals) = wins_totals(&p);
        for i in 0..n {
            assert!((table.wins[i] - wins[i]).abs() <= 1e-12 * totals[i]);
            assert!((table.totals()[i] - totals[i]).abs() <= 1e-12 * totals[i]);
        }
        if !weighted && tie_rate == 0.0 {
            // counts: the f32 and the f64 tables hold the same numbers
            let c = counted::<f32, u32>(&w, &l, n).expect("counted");
            let ct: Vec<f64> = c.t.iter().map(|&x| f64::from(x)).collect();
            assert_eq!(ct, t.to_vec());
            assert_eq!(
                (&c.wins, &c.beat, &c.lost),
                (&table.wins, &table.beat, &table.lost)
            );
            let c = counted::<f64, u64>(&w, &l, n).expect("counted");
            assert_eq!(&c.t[..], t);
            assert_eq!(
                (&c.wins, &c.beat, &c.lost),
                (&table.wins, &table.beat, &table.lost)
            );
        }
    }

    #[test]
    fn strongly_connected_equals_the_components() {
        let mut seen = [0usize; 2];
        for seed in 0..400u64 {
            let n = 2 + (seed % 11) as usize;
            let m = (seed * 7 % 40) as usize;
            let (w, l, _, _) = rows(n, m, seed + 10, false, 0.0);
            let table = counted::<f32, u32>(&w, &l, n).expect("table");
            let p = aggregate(&w, &l, None, None, Some(n)).expect("pairs");
            let one = beat_components(&p).1 == 1;
            assert_eq!(table.strongly_connected(), one, "{w:?} {l:?}");
            seen[usize::from(one)] += 1;
            // and the pair list rebuilt from the bits is the same graph
            assert_eq!(beat_components(&table.pairs()), beat_components(&p));
        }
        assert!(seen[0] > 50 && seen[1] > 50, "{seen:?}");
    }

    #[test]
    fn the_same_model_as_the_pair_list() {
        // gradient, curvature diagonal, curvature products and log-likelihood, also with
        // scores more than 300 apart (one exp per cell instead of per item)
        let n = 29;
        let (w, l, wt, ti) = rows(n, 2000, 5, true, 0.2);
        let table = weighed(&w, &l, wt.as_deref(), ti.as_deref(), n).expect("table");
        let p = aggregate(&w, &l, wt.as_deref(), ti.as_deref(), Some(n)).expect("pairs");
        for spread in [2.0, 700.0] {
            let s: Vec<f64> = (0..n)
                .map(|i| ((i * 17 % n) as f64 / n as f64 - 0.5) * spread)
                .collect();
            let v: Vec<f64> = (0..n).map(|i| ((i * 5 % 7) as f64) - 3.0).collect();
            let (mut g1, mut d1, mut c1) = (vec![0.0; n], vec![0.0; n], table.new_cache());
            let (mut g2, mut d2, mut c2) = (vec![0.0; n], vec![0.0; n], p.new_cache());
            table.evaluate(&s, &mut g1, &mut d1, &mut c1);
            p.evaluate(&s, &mut g2, &mut d2, &mut c2);
            let (mut o1, mut o2) = (vec![0.5; n], vec![0.5; n]);
            table.apply(&c1, &v, &mut o1);
            p.apply(&c2, &v, &mut o2);
            let (_, totals) = wins_totals(&p);
            for i in 0..n {
                assert!((g1[i] - g2[i]).abs() <= 1e-12 * totals[i], "{spread} {i}");
                assert!((d1[i] - d2[i]).abs() <= 1e-12 * totals[i], "{spread} {i}");
                // the dense products use curvatures rounded to f32
                assert!(
                    (o1[i] - o2[i]).abs() <= 1e-6 * totals[i] * 4.0,
                    "{spread} {i}"
                );
            }
            let (a, b) = (table.loglik(&s), p.loglik(&s));
            assert!((a - b).abs() <= 1e-12 * b.abs(), "{spread}: {a} {b}");
        }
    }

    #[test]
    fn the_first_bad_comparison_is_the_pair_lists_error() {
        let n = 300;
        let (w, l, wt, _) = rows(n, 200_000, 9, true, 0.0);
        let mut cases = vec![];
        let (mut w1, mut l1) = (w.clone(), l.clone());
        w1[170_000] = n as i64; // out of range, in the third chunk (of 2^16 rows)
        l1[100_000] = w1[100_000]; // with itself, earlier, in the second
        cases.push((w1, l1, None));
        let mut bad = wt.clone().expect("weights");
        bad[99_999] = f64::NAN;
        bad[131_072] = -1.0;
        cases.push((w.clone(), l.clone(), Some(bad)));
        let (mut w3, l3) = (w.clone(), l.clone());
        w3[5] = -1;
        cases.push((w3, l3, None));
        for (w, l, wt) in cases {
            let want = aggregate(&w, &l, wt.as_deref(), None, Some(n)).expect_err("bad");
            let table = if wt.is_none() {
                counted::<f32, u32>(&w, &l, n).map(|_| ()).expect_err("bad")
            } else {
                weighed(&w, &l, wt.as_deref(), None, n)
                    .map(|_| ())
                    .expect_err("bad")
            };
            assert_eq!(table.to_string(), want.to_string());
        }
    }
}

#[cfg(test)]
mod profile {
    use super::super::testdata::rows;
    use super::*;

    /// `cargo test --release -p fastalign-core profile_dense -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn profile_dense() {
        let (n, m) = (1000usize, 1_000_000usize);
        let (w, l, _, _) = rows(n, m, 1, false, 0.0);
        let median = |mut v: Vec<std::time::Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let (mut tc, mut tf, mut tw) = (vec![], vec![], vec![]);
        for _ in 0..15 {
            let t0 = std::time::Instant::now();
            let table = counted::<f32, u32>(&w, &l, n).expect("table");
            let t1 = std::time::Instant::now();
            let f = fit(&table, 0.0, 1e-10, 100).expect("fit");
            let t2 = std::time::Instant::now();
            let table = weighed(&w, &l, None, None, n).expect("table");
            let _ = fit(&table, 0.0, 1e-10, 100).expect("fit");
            let t3 = std::time::Instant::now();
            tc.push(t1 - t0);
            tf.push(t2 - t1);
            tw.push(t3 - t2);
            assert!(f.converged);
        }
        println!(
            "counted {:?} fit {:?} weighed+fit {:?}",
            median(tc),
            median(tf),
            median(tw)
        );
    }
}
