//! Building blocks for dedup spread over many workers (the Ray Data pipeline of
//! `fastalign.dedup.ray`): signing texts straight from Arrow string buffers, the band keys of
//! a batch, and the duplicate forest of the buckets one worker holds after a shuffle by band
//! key.
//!
//! The pieces give the clusters of [`super::cluster`] exactly: a document's signature does not
//! depend on its batch, a bucket is whole on one worker after the shuffle, and the clusters of
//! the single-process path are the connected components of the candidate pairs that pass
//! verification (skipping a pair already joined, or a copy joined to its original, never
//! changes the components). So the union of every worker's forest has the same components.

use rustc_hash::{FxHashMap, FxHashSet};

use super::lsh::{band_key, UnionFind};
use super::{minhash, Verify};
use crate::{Error, Result};

/// The texts of an Arrow string array given as its value buffer and its `n + 1` offsets
/// (`data[offsets[i]..offsets[i + 1]]` is text `i`), borrowed without copying.
pub fn utf8_texts<'a>(data: &'a [u8], offsets: &[i64]) -> Result<Vec<&'a str>> {
    if offsets.is_empty() {
        return Err(Error::shape("offsets must hold n + 1 values (got none)"));
    }
    offsets
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let (a, b) = (w[0], w[1]);
            if a < 0 || b < a || b as u64 > data.len() as u64 {
                return Err(Error::shape(format!(
                    "offsets [{a}, {b}) of text {i} are outside the {} bytes of data",
                    data.len()
                )));
            }
            std::str::from_utf8(&data[a as usize..b as usize])
                .map_err(|e| Error::invalid(format!("text {i} is not valid UTF-8: {e}")))
        })
        .collect()
}

/// The key of band `b` of every signature (`sigs` is `[n, num_perm]` row-major), `[n, bands]`
/// row-major (empty documents included; callers drop them, as the single-process path does).
pub fn band_keys(sigs: &[u32], num_perm: usize, bands: usize, rows: usize) -> Result<Vec<u64>> {
    if num_perm == 0 || sigs.len() % num_perm != 0 {
        return Err(Error::shape(format!(
            "signatures must be [n, num_perm]; {} values do not split into rows of {num_perm}",
            sigs.len()
        )));
    }
    if bands == 0 || rows == 0 || !matches!(bands.checked_mul(rows), Some(p) if p <= num_perm) {
        return Err(Error::invalid(format!(
            "bands x rows = {bands} x {rows} must be positive and at most num_perm = {num_perm}"
        )));
    }
    let mut out = Vec::with_capacity(sigs.len() / num_perm * bands);
    for r in sigs.chunks_exact(num_perm) {
        out.extend((0..bands).map(|b| band_key(&r[b * rows..(b + 1) * rows])));
    }
    Ok(out)
}

/// The bucket rows one worker holds: row `k` says document `id[k]` has key `key[k]` in band
/// `band[k]`; with MinHash verification `sigs` holds each row's full signature.
pub struct BucketRows<'a> {
    pub band: &'a [u32],
    pub key: &'a [u64],
    pub id: &'a [i64],
    /// `[m, num_perm]` row-major, and `num_perm`.
    pub sigs: Option<(&'a [u32], usize)>,
}

/// The duplicate forest of the buckets in `rows`: one `(child, parent)` edge for every
/// document that joins another, the parent being the smallest id of the child's component
/// among these buckets. Two documents join when they share a bucket (band and key) and, with
/// `Verify::MinHash`, their signature estimate reaches `threshold` (identical signatures
/// always join). Edges come sorted by child.
pub fn bucket_forest(
    rows: &BucketRows<'_>,
    verify: Verify,
    threshold: f64,
) -> Result<Vec<[i64; 2]>> {
    let m = rows.id.len();
    if rows.band.len() != m || rows.key.len() != m {
        return Err(Error::shape(format!(
            "band, key and id must have one value per row, got {}, {} and {m}",
            rows.band.len(),
            rows.key.len()
        )));
    }
    if m > u32::MAX as usize {
        return Err(Error::invalid(format!(
            "at most {} bucket rows per worker, got {m} (use more partitions)",
            u32::MAX
        )));
    }
    let sigs = match (verify, rows.sigs) {
        (Verify::Exact, _) => {
            return Err(Error::invalid(
                "exact verification needs the texts, which the bucket stage does not hold",
            ))
        }
        (Verify::MinHash, None) => {
            return Err(Error::invalid("MinHash verification needs the signatures"))
        }
        (Verify::MinHash, Some((s, p))) => {
            if p == 0 || s.len() != m * p {
                return Err(Error::shape(format!(
                    "signatures must be [{m}, num_perm], got {} values for num_perm = {p}",
                    s.len()
                )));
            }
            Some((s, p))
        }
        (Verify::None, _) => None,
    };
    let row_sig = |k: usize| sigs.map(|(s, p)| &s[k * p..(k + 1) * p]);

    // compact node numbers in id order, so that a union-find root is the smallest id
    let mut nodes: Vec<i64> = rows.id.to_vec();
    nodes.sort_unstable();
    nodes.dedup();
    let node = |id: i64| nodes.binary_search(&id).map_or(0, |k| k) as u32;
    let mut order: Vec<u32> = (0..m as u32).collect();
    order.sort_unstable_by_key(|&k| {
        let k = k as usize;
        (rows.band[k], rows.key[k], rows.id[k])
    });

    let mut uf = UnionFind::new(nodes.len());
    let mut checked: FxHashSet<(u32, u32)> = FxHashSet::default();
    let mut start = 0;
    while start < m {
        let first = order[start] as usize;
        let mut end = start + 1;
        while end < m && {
            let k = order[end] as usize;
            rows.band[k] == rows.band[first] && rows.key[k] == rows.key[first]
        } {
            end += 1;
        }
        let run = &order[start..end];
        for w in run.windows(2) {
            if rows.id[w[0] as usize] == rows.id[w[1] as usize] {
                return Err(Error::invalid(format!(
                    "document id {} appears twice in band {} (ids must be unique)",
                    rows.id[w[0] as usize], rows.band[w[0] as usize]
                )));
            }
        }
        if run.len() > 1 {
            match sigs {
                None => {
                    let root = node(rows.id[run[0] as usize]);
                    for &k in &run[1..] {
                        uf.union(root, node(rows.id[k as usize]));
                    }
                }
                Some(_) => {
                    // copies (identical signatures) join their first occurrence directly;
                    // the other members are checked against the earlier distinct ones
                    let mut reps: Vec<u32> = Vec::new();
                    let mut by_sig: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
                    for &k in run {
                        let (x, sx) = (node(rows.id[k as usize]), row_sig(k as usize));
                        let h = band_key(sx.unwrap_or(&[]));
                        let bucket = by_sig.entry(h).or_default();
                        if let Some(&r) = bucket.iter().find(|&&r| row_sig(r as usize) == sx) {
                            uf.union(node(rows.id[r as usize]), x);
                            continue;
                        }
                        bucket.push(k);
                        for &r in &reps {
                            let y = node(rows.id[r as usize]);
                            if uf.find(y) == uf.find(x) || !checked.insert((y, x)) {
                                continue;
                            }
                            let est = minhash::estimate(
                                row_sig(r as usize).unwrap_or(&[]),
                                sx.unwrap_or(&[]),
                            );
                            if est >= threshold {
                                uf.union(y, x);
                            }
                        }
                        reps.push(k);
                    }
                }
            }
        }
        start = end;
    }
    let roots = uf.roots();
    Ok(roots
        .iter()
        .enumerate()
        .filter(|&(k, &r)| r as usize != k)
        .map(|(k, &r)| [nodes[k], nodes[r as usize]])
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::{cluster, sketch, Banding, Normalize, Shingling, Sketches, Unit};
    use super::*;

    fn shingling() -> Shingling {
        Shingling {
            num_perm: 32,
            ngram: 2,
            unit: Unit::Word,
            normalize: Normalize::ALL,
            seed: 3,
        }
    }

    /// Splits the band rows of `sk` over `parts` workers by a hash of (band, key), runs
    /// `bucket_forest` on each, and joins the forests with a union-find.
    fn sharded(sk: &Sketches, bd: Banding, parts: u64) -> Vec<u32> {
        let keys = band_keys(&sk.sigs, sk.num_perm, bd.bands, bd.rows).expect("valid");
        // per worker: band, key, id, signatures
        type Shard = (Vec<u32>, Vec<u64>, Vec<i64>, Vec<u32>);
        let mut shards: Vec<Shard> = (0..parts).map(|_| Default::default()).collect();
        for i in 0..sk.len() {
            if sk.empty[i] {
                continue;
            }
            for b in 0..bd.bands {
                let key = keys[i * bd.bands + b];
                let s = &mut shards[((key ^ b as u64).wrapping_mul(0x9E37) % parts) as usize];
                s.0.push(b as u32);
                s.1.push(key);
                s.2.push(i as i64);
                s.3.extend_from_slice(sk.row(i));
            }
        }
        let mut uf = UnionFind::new(sk.len());
        for (band, key, id, sigs) in &shards {
            let rows = BucketRows {
                band,
                key,
                id,
                sigs: Some((sigs, sk.num_perm)),
            };
            for [c, p] in bucket_forest(&rows, bd.verify, bd.threshold).expect("valid") {
                assert!(p < c);
                uf.union(c as u32, p as u32);
            }
        }
        uf.roots()
    }

    #[test]
    fn shards_give_the_single_process_clusters() {
        let mut texts: Vec<String> = Vec::new();
        for i in 0..60 {
            let base = format!(
                "w{} x{} y{} z{} q{} r{}",
                i % 7,
                i % 5,
                i % 3,
                i % 11,
                i,
                i % 2
            );
            texts.push(base.clone());
            texts.push(format!("{base} extra"));
            if i % 4 == 0 {
                texts.push(base);
            }
        }
        texts.push(String::new());
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        let sk = sketch(&refs, &shingling(), false).expect("valid");
        for verify in [Verify::None, Verify::MinHash] {
            for t in [0.3, 0.6, 0.9] {
                let bd = Banding::new(t, 32, None, verify).expect("valid");
                let want = cluster(&sk, bd).expect("valid").cluster;
                assert!(want.iter().enumerate().any(|(i, &c)| c as usize != i));
                for parts in [1, 2, 5] {
                    assert_eq!(
                        sharded(&sk, bd, parts),
                        want,
                        "{verify:?} t={t} parts={parts}"
                    );
                }
            }
        }
    }

    #[test]
    fn bad_rows() {
        let rows = BucketRows {
            band: &[0, 0],
            key: &[5, 5],
            id: &[3, 3],
            sigs: None,
        };
        let err = bucket_forest(&rows, Verify::None, 0.5).expect_err("repeated id");
        assert!(err.to_string().contains("appears twice"), "{err}");
        let short = BucketRows {
            band: &[0],
            key: &[5, 5],
            id: &[3, 4],
            sigs: None,
        };
        assert!(bucket_forest(&short, Verify::None, 0.5).is_err());
        assert!(bucket_forest(&short, Verify::MinHash, 0.5).is_err());
        assert!(bucket_forest(&short, Verify::Exact, 0.5).is_err());
        assert!(utf8_texts(b"ab", &[0, 3]).is_err());
        assert!(utf8_texts(b"\xffa", &[0, 2]).is_err());
        assert_eq!(utf8_texts(b"abc", &[0, 1, 3]).expect("valid"), ["a", "bc"]);
    }
}
