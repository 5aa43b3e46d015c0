//! Pareto and multi-objective operations, one file per family, re-exported here: PAMA's
//! combined advantages (`pama.rs`), MGDA's min-norm weights (`mgda.rs`), non-dominated
//! sorting, crowding distance and Pareto preference pairs (`fronts.rs`), and the exact
//! hypervolume (`hypervolume.rs`); their input checks are in `checks.rs`.
//!
//! Matrices are row-major `&[f64]` slices with explicit `(rows, cols)`.

mod checks;
mod fronts;
mod hypervolume;
mod mgda;
mod pama;
#[cfg(test)]
mod testdata;

pub use fronts::{
    crowding_distance, crowding_distance_batched, non_dominated_sort, non_dominated_sort_batched,
    pareto_pairs,
};
pub use hypervolume::{hypervolume, hypervolume_batched};
pub use mgda::mgda_weights;
pub use pama::pama;

#[cfg(test)]
mod tests {
    use super::testdata::grid;
    use super::*;

    #[test]
    fn batched_variants_equal_per_group() {
        let f = grid(7, 40 * 3, 6);
        let offsets = [0i64, 10, 10, 25, 40];
        let hv = hypervolume_batched(&f, 40, 3, &offsets, &[6.0, 6.0, 6.0]).expect("valid");
        let cd = crowding_distance_batched(&f, 40, 3, &offsets).expect("valid");
        for (g, w) in offsets.windows(2).enumerate() {
            let (s, e) = (w[0] as usize, w[1] as usize);
            let sub = &f[s * 3..e * 3];
            let want = hypervolume(sub, e - s, 3, &[6.0, 6.0, 6.0]).expect("valid");
            assert_eq!(hv[g], want);
            let fr = non_dominated_sort(sub, e - s, 3).expect("valid");
            let want = crowding_distance(sub, e - s, 3, &fr).expect("valid");
            assert_eq!(&cd[s..e], &want[..]);
        }
        let pairs = pareto_pairs(&f, 40, 3, &offsets, true).expect("valid");
        for row in pairs.chunks_exact(3) {
            let [g, c, r] = [row[0], row[1], row[2]];
            let (s, e) = (
                offsets[g as usize] as usize,
                offsets[g as usize + 1] as usize,
            );
            let fr = non_dominated_sort(&f[s * 3..e * 3], e - s, 3).expect("valid");
            assert_eq!(fr[c as usize - s], 0);
            assert_eq!(fr[r as usize - s], *fr.iter().max().expect("non-empty"));
        }
    }
}
