//! Dataset dedup: exact (128-bit hashes of normalized text) and near-duplicate (MinHash + LSH
//! + union-find), end to end from text to clusters.
//!
//! Pipeline: [`text`] normalizes a document and hashes its word or character shingles,
//! [`minhash`] turns the shingle set into a signature, [`lsh`] buckets signature bands and
//! joins documents that share a bucket (optionally only when the signature estimate, or the
//! exact Jaccard similarity of the shingle sets, reaches the threshold). A cluster's id is the
//! index of its first member, so results never depend on the thread count or on how a stream
//! was split into batches.
//!
//! Empty documents (no shingle: no word after normalization for word shingles, no character
//! for character shingles) are never
//! near-duplicates of anything (each is its own cluster) and are flagged in
//! [`Sketches::empty`]. Exact dedup treats them like any text: all empty documents are one
//! group.

pub mod lsh;
pub mod minhash;
pub mod shard;
pub mod text;

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use crate::cancel::{offload, Token};
use crate::{Error, Result};
use lsh::{band_key, UnionFind};
use minhash::Permutations;
pub use text::{Normalize, Unit};

/// Documents are numbered with u32 ids.
fn check_count(n: usize) -> Result<()> {
    if n > u32::MAX as usize {
        return Err(Error::invalid(format!(
            "at most {} documents per call or index, got {n}",
            u32::MAX
        )));
    }
    Ok(())
}

/// How a text becomes a shingle set, and which permutations sign it.
#[derive(Clone, Debug, PartialEq)]
pub struct Shingling {
    pub num_perm: usize,
    pub ngram: usize,
    pub unit: Unit,
    pub normalize: Normalize,
    pub seed: u64,
}

impl Shingling {
    pub fn check(&self) -> Result<()> {
        if self.num_perm < 2 || self.num_perm > lsh::MAX_NUM_PERM {
            return Err(Error::invalid(format!(
                "num_perm must be in [2, {}], got {}",
                lsh::MAX_NUM_PERM,
                self.num_perm
            )));
        }
        if self.ngram == 0 {
            return Err(Error::invalid("ngram must be >= 1"));
        }
        Ok(())
    }
}

/// When two documents that share an LSH bucket count as duplicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Always (plain MinHash LSH, as datasketch's `MinHashLSH` query).
    None,
    /// When the signature estimate of their Jaccard similarity reaches the threshold.
    MinHash,
    /// When the exact Jaccard similarity of their shingle sets reaches the threshold.
    Exact,
}

impl Verify {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "none" => Ok(Verify::None),
            "minhash" => Ok(Verify::MinHash),
            "exact" => Ok(Verify::Exact),
            other => Err(Error::invalid(format!(
                "verify must be False, True, 'minhash' or 'exact', got {other:?}"
            ))),
        }
    }
}

/// The LSH side: bands x rows (at most num_perm), the threshold, the verification.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Banding {
    pub bands: usize,
    pub rows: usize,
    pub threshold: f64,
    pub verify: Verify,
}

impl Banding {
    /// The bands and rows datasketch would choose for `threshold` (equal weights), or the
    /// given ones.
    pub fn new(
        threshold: f64,
        num_perm: usize,
        bands_rows: Option<(usize, usize)>,
        verify: Verify,
    ) -> Result<Self> {
        let (bands, rows) = match bands_rows {
            Some((b, r)) => {
                if b == 0 || r == 0 || !matches!(b.checked_mul(r), Some(p) if p <= num_perm) {
                    return Err(Error::invalid(format!(
                        "bands x rows must be positive and at most num_perm = {num_perm}, got \
                         {b} x {r}"
                    )));
                }
                if !(0.0..=1.0).contains(&threshold) {
                    return Err(Error::invalid(format!(
                        "threshold must be in [0, 1], got {threshold}"
                    )));
                }
                (b, r)
            }
            None => lsh::optimal_bands(threshold, num_perm, 0.5, 0.5)?,
        };
        Ok(Banding {
            bands,
            rows,
            threshold,
            verify,
        })
    }
}

/// Signatures of a batch of documents: row `i` is `sigs[i * num_perm..(i + 1) * num_perm]`.
#[derive(Clone, Debug, Default)]
pub struct Sketches {
    pub num_perm: usize,
    pub sigs: Vec<u32>,
    /// No shingle (nothing left after normalization).
    pub empty: Vec<bool>,
    /// Sorted, deduplicated 64-bit shingle hashes per document (only when asked for).
    pub sets: Option<Vec<Vec<u64>>>,
}

impl Sketches {
    pub fn len(&self) -> usize {
        self.empty.len()
    }

    pub fn is_empty(&self) -> bool {
        self.empty.is_empty()
    }

    #[inline]
    pub fn row(&self, i: usize) -> &[u32] {
        &self.sigs[i * self.num_perm..(i + 1) * self.num_perm]
    }
}

#[derive(Default)]
struct Scratch {
    doc: text::Normalized,
    words: Vec<u64>,
    shingles: Vec<u64>,
    folded: Vec<u32>,
}

/// The 64-bit shingle hashes of one text into `s.shingles` (with repeats).
fn shingle_hashes(s: &mut Scratch, text: &str, sh: &Shingling) {
    if sh.unit == Unit::Word && text.is_ascii() {
        text::ascii_word_hashes(text.as_bytes(), sh.normalize, &mut s.words);
        text::word_shingles(&s.words, sh.ngram, &mut s.shingles);
    } else {
        text::normalize_into(text, sh.normalize, &mut s.doc);
        text::shingles_into(&s.doc, sh.unit, sh.ngram, &mut s.words, &mut s.shingles);
    }
}

/// Shingles and signs every text, in parallel; with `keep_sets` also keeps each shingle set.
/// Stops with [`Error::Interrupted`] once the call's [`Token`] is cancelled (checked every
/// chunk of documents).
pub fn sketch(texts: &[&str], sh: &Shingling, keep_sets: bool) -> Result<Sketches> {
    sh.check()?;
    check_count(texts.len())?;
    let stop = Token::current();
    let p = sh.num_perm;
    let perms = Permutations::new(p, sh.seed);
    let mut sigs = vec![0u32; texts.len() * p];
    let mut empty = vec![false; texts.len()];
    let mut sets: Vec<Vec<u64>> = if keep_sets {
        vec![Vec::new(); texts.len()]
    } else {
        Vec::new()
    };
    let work = |s: &mut Scratch, text: &str, sig: &mut [u32], set: Option<&mut Vec<u64>>| {
        shingle_hashes(s, text, sh);
        s.folded.clear();
        s.folded
            .extend(s.shingles.iter().map(|&h| minhash::fold32(h)));
        minhash::signature(&s.folded, &perms, sig);
        if let Some(set) = set {
            set.extend_from_slice(&s.shingles);
            set.sort_unstable();
            set.dedup();
        }
        s.shingles.is_empty()
    };
    // Chunks of documents per task keep rayon's overhead off small documents.
    const CHUNK: usize = 64;
    offload(None, texts.len() > CHUNK, || {
        if keep_sets {
            sigs.par_chunks_mut(p * CHUNK)
                .zip(empty.par_chunks_mut(CHUNK))
                .zip(sets.par_chunks_mut(CHUNK))
                .zip(texts.par_chunks(CHUNK))
                .for_each_init(Scratch::default, |s, (((sig, e), set), t)| {
                    if stop.is_cancelled() {
                        return;
                    }
                    for (i, text) in t.iter().enumerate() {
                        e[i] = work(s, text, &mut sig[i * p..(i + 1) * p], Some(&mut set[i]));
                    }
                });
        } else {
            sigs.par_chunks_mut(p * CHUNK)
                .zip(empty.par_chunks_mut(CHUNK))
                .zip(texts.par_chunks(CHUNK))
                .for_each_init(Scratch::default, |s, ((sig, e), t)| {
                    if stop.is_cancelled() {
                        return;
                    }
                    for (i, text) in t.iter().enumerate() {
                        e[i] = work(s, text, &mut sig[i * p..(i + 1) * p], None);
                    }
                });
        }
    });
    stop.check()?;
    Ok(Sketches {
        num_perm: p,
        sigs,
        empty,
        sets: keep_sets.then_some(sets),
    })
}

/// The exact Jaccard similarity of the shingle sets of `a[i]` and `b[j]` for each pair
/// `(i, j)` (1 when both are empty), in parallel.
pub fn jaccard_pairs(
    a: &[&str],
    b: &[&str],
    pairs: &[[u32; 2]],
    sh: &Shingling,
) -> Result<Vec<f64>> {
    sh.check()?;
    if let Some(p) = pairs
        .iter()
        .find(|p| p[0] as usize >= a.len() || p[1] as usize >= b.len())
    {
        return Err(Error::invalid(format!(
            "pair {p:?} is out of range for {} x {} texts",
            a.len(),
            b.len()
        )));
    }
    let set = |s: &mut Scratch, text: &str| {
        shingle_hashes(s, text, sh);
        let mut v = s.shingles.clone();
        v.sort_unstable();
        v.dedup();
        v
    };
    Ok(pairs
        .par_iter()
        .map_init(Scratch::default, |s, p| {
            let x = set(s, a[p[0] as usize]);
            let y = set(s, b[p[1] as usize]);
            minhash::jaccard_sorted(&x, &y)
        })
        .collect())
}

/// Signatures from elsewhere (another process's [`sketch`]): rows of all `u32::MAX` are
/// empty documents.
pub fn sketches_from_signatures(sigs: Vec<u32>, num_perm: usize) -> Result<Sketches> {
    if num_perm == 0 || sigs.len() % num_perm != 0 {
        return Err(Error::shape(format!(
            "signatures must be [n, num_perm]; {} values do not split into rows of {num_perm}",
            sigs.len()
        )));
    }
    let empty = sigs
        .chunks(num_perm)
        .map(|r| r.iter().all(|&v| v == u32::MAX))
        .collect();
    Ok(Sketches {
        num_perm,
        sigs,
        empty,
        sets: None,
    })
}

/// Clusters and the duplicate pairs that joined them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Clusters {
    /// Per document, the index of its cluster's first member.
    pub cluster: Vec<u32>,
    /// Pairs `(i, j)`, `i < j`, sorted.
    pub pairs: Vec<[u32; 2]>,
    /// The signature estimate of each pair's Jaccard similarity (1 for exact dedup).
    pub similarity: Vec<f64>,
    /// The exact Jaccard similarity of each pair (with exact verification only).
    pub jaccard: Option<Vec<f64>>,
}

/// The documents sharing one band's bucket, in runs: `members[offsets[k]..offsets[k + 1]]`,
/// each run sorted by document.
struct Runs {
    members: Vec<u32>,
    offsets: Vec<usize>,
}

/// Per document, an earlier document with the same signature (and, with `same_sets`, the same
/// shingle set), if any: such copies join their original directly, so that verification never
/// goes pairwise through buckets full of copies.
fn copies(sk: &Sketches, same_sets: bool) -> Vec<Option<u32>> {
    let hashes: Vec<u64> = (0..sk.len())
        .into_par_iter()
        .map(|i| band_key(sk.row(i)))
        .collect();
    let mut first: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
    let mut out = vec![None; sk.len()];
    for (i, &h) in hashes.iter().enumerate() {
        if sk.empty[i] {
            continue;
        }
        let reps = first.entry(h).or_default();
        let same = |r: u32| {
            sk.row(r as usize) == sk.row(i)
                && (!same_sets || sk.sets.as_ref().is_some_and(|s| s[r as usize] == s[i]))
        };
        match reps.iter().copied().find(|&r| same(r)) {
            Some(r) => out[i] = Some(r),
            None => reps.push(i as u32),
        }
    }
    out
}

fn band_runs(sk: &Sketches, band: usize, rows: usize, skip: &[Option<u32>]) -> Runs {
    let mut keys: Vec<(u64, u32)> = (0..sk.len())
        .filter(|&i| !sk.empty[i] && !matches!(skip.get(i), Some(Some(_))))
        .map(|i| {
            let r = sk.row(i);
            (band_key(&r[band * rows..(band + 1) * rows]), i as u32)
        })
        .collect();
    keys.sort_unstable();
    let mut runs = Runs {
        members: Vec::new(),
        offsets: vec![0],
    };
    let mut i = 0;
    while i < keys.len() {
        let mut j = i + 1;
        while j < keys.len() && keys[j].0 == keys[i].0 {
            j += 1;
        }
        if j - i > 1 {
            runs.members.extend(keys[i..j].iter().map(|k| k.1));
            runs.offsets.push(runs.members.len());
        }
        i = j;
    }
    runs
}

/// Checks candidate pairs one by one (skipping pairs already in one cluster) and records the
/// ones that pass: the clusters are the connected components of the passing pairs.
struct Verifier<'a> {
    sk: &'a Sketches,
    banding: Banding,
    uf: UnionFind,
    checked: FxHashSet<u64>,
    pairs: Vec<([u32; 2], f64, f64)>,
}

impl Verifier<'_> {
    /// Whether the pair joined (or already shared) a cluster through a passing check.
    fn try_join(&mut self, a: u32, b: u32) -> bool {
        if self.uf.find(a) == self.uf.find(b) {
            return false;
        }
        let (i, j) = if a < b { (a, b) } else { (b, a) };
        if !self.checked.insert((i as u64) << 32 | j as u64) {
            return false;
        }
        let est = minhash::estimate(self.sk.row(i as usize), self.sk.row(j as usize));
        let (pass, exact) = match (self.banding.verify, &self.sk.sets) {
            (Verify::None, _) => (true, f64::NAN),
            (Verify::MinHash, _) => (est >= self.banding.threshold, f64::NAN),
            (Verify::Exact, Some(sets)) => {
                let jac = minhash::jaccard_sorted(&sets[i as usize], &sets[j as usize]);
                (jac >= self.banding.threshold, jac)
            }
            (Verify::Exact, None) => (false, f64::NAN),
        };
        if pass {
            self.uf.union(i, j);
            self.pairs.push(([i, j], est, exact));
        }
        pass
    }
}

fn finish(mut uf: UnionFind, mut pairs: Vec<([u32; 2], f64, f64)>, exact: bool) -> Clusters {
    pairs.sort_unstable_by_key(|p| p.0);
    Clusters {
        cluster: uf.roots(),
        similarity: pairs.iter().map(|p| p.1).collect(),
        jaccard: exact.then(|| pairs.iter().map(|p| p.2).collect()),
        pairs: pairs.into_iter().map(|p| p.0).collect(),
    }
}

/// Near-duplicate clusters of a batch of signed documents. Stops with [`Error::Interrupted`]
/// once the call's [`Token`] is cancelled (checked every band and every bucket member).
pub fn cluster(sk: &Sketches, banding: Banding) -> Result<Clusters> {
    let (b, r) = (banding.bands, banding.rows);
    if !matches!(b.checked_mul(r), Some(p) if p <= sk.num_perm) {
        return Err(Error::invalid(format!(
            "bands x rows = {b} x {r} exceeds num_perm = {}",
            sk.num_perm
        )));
    }
    if banding.verify == Verify::Exact && sk.sets.is_none() {
        return Err(Error::invalid(
            "exact verification needs the shingle sets (signatures alone cannot verify)",
        ));
    }
    // the bands go to the pool anyway when there are several
    offload(None, b > 1, || cluster_checked(sk, banding))
}

/// [`cluster`] after its checks.
fn cluster_checked(sk: &Sketches, banding: Banding) -> Result<Clusters> {
    let (b, r) = (banding.bands, banding.rows);
    let n = sk.len();
    let stop = Token::current();
    // plain LSH is linear in bucket size already; verification collapses copies first
    let copy_of = if banding.verify == Verify::None {
        Vec::new()
    } else {
        copies(sk, banding.verify == Verify::Exact)
    };
    let runs: Vec<Runs> = (0..b)
        .into_par_iter()
        .map(|band| {
            stop.check()?;
            Ok(band_runs(sk, band, r, &copy_of))
        })
        .collect::<Result<_>>()?;
    if banding.verify == Verify::None {
        // Plain LSH: every bucket is one cluster; a star per bucket connects it.
        let mut edges: Vec<[u32; 2]> = runs
            .iter()
            .flat_map(|run| {
                run.offsets.windows(2).flat_map(move |w| {
                    let m = &run.members[w[0]..w[1]];
                    m[1..].iter().map(move |&x| [m[0], x])
                })
            })
            .collect();
        edges.par_sort_unstable();
        edges.dedup();
        let mut uf = UnionFind::new(n);
        for e in &edges {
            uf.union(e[0], e[1]);
        }
        let similarity = edges
            .par_iter()
            .map(|e| minhash::estimate(sk.row(e[0] as usize), sk.row(e[1] as usize)))
            .collect();
        return Ok(Clusters {
            cluster: uf.roots(),
            pairs: edges,
            similarity,
            jaccard: None,
        });
    }
    let mut v = Verifier {
        sk,
        banding,
        uf: UnionFind::new(n),
        checked: FxHashSet::default(),
        pairs: Vec::new(),
    };
    let exact_sim = if banding.verify == Verify::Exact {
        1.0
    } else {
        f64::NAN
    };
    for (i, c) in copy_of.iter().enumerate() {
        if let Some(r) = *c {
            v.uf.union(r, i as u32);
            v.pairs.push(([r, i as u32], 1.0, exact_sim));
        }
    }
    for run in &runs {
        for w in run.offsets.windows(2) {
            let m = &run.members[w[0]..w[1]];
            for (k, &x) in m.iter().enumerate().skip(1) {
                stop.check()?;
                for &y in &m[..k] {
                    v.try_join(y, x);
                }
            }
        }
    }
    Ok(finish(v.uf, v.pairs, banding.verify == Verify::Exact))
}

/// Each text as the normalization leaves it (what shingles and exact hashes are made of).
pub fn normalize_batch(texts: &[&str], normalize: Normalize) -> Vec<String> {
    texts
        .par_iter()
        .map_init(text::Normalized::default, |doc, t| {
            text::normalize_into(t, normalize, doc);
            doc.as_str().to_owned()
        })
        .collect()
}

/// Exact-duplicate groups: documents with equal normalized text (equal 128-bit hashes), and
/// which documents are empty after normalization.
pub fn exact(texts: &[&str], normalize: Normalize) -> Result<(Clusters, Vec<bool>)> {
    check_count(texts.len())?;
    let keyed: Vec<(u128, bool)> = if normalize == Normalize::NONE {
        texts
            .par_iter()
            .map(|t| (xxh3_128(t.as_bytes()), t.is_empty()))
            .collect()
    } else {
        texts
            .par_iter()
            .map_init(text::Normalized::default, |doc, t| {
                text::normalize_into(t, normalize, doc);
                (xxh3_128(&doc.bytes), doc.bytes.is_empty())
            })
            .collect()
    };
    let mut first: FxHashMap<u128, u32> = FxHashMap::default();
    first.reserve(keyed.len());
    let mut cluster = Vec::with_capacity(keyed.len());
    let mut pairs = Vec::new();
    for (i, &(k, _)) in keyed.iter().enumerate() {
        let f = *first.entry(k).or_insert(i as u32);
        cluster.push(f);
        if f != i as u32 {
            pairs.push([f, i as u32]);
        }
    }
    let clusters = Clusters {
        cluster,
        similarity: vec![1.0; pairs.len()],
        pairs,
        jaccard: None,
    };
    Ok((clusters, keyed.into_iter().map(|k| k.1).collect()))
}

/// A streaming MinHash LSH index: documents arrive in batches; it keeps only signatures, band
/// buckets and the union-find (never the texts). Its clusters equal [`cluster`]'s on all the
/// documents at once (verification `None` or `MinHash`), however the stream was split.
#[derive(Clone, Debug)]
pub struct Index {
    pub shingling: Shingling,
    pub banding: Banding,
    sk: Sketches,
    tables: Vec<FxHashMap<u64, Vec<u32>>>,
    uf: UnionFind,
    /// full-signature hash -> the first documents with that signature (copies skip buckets)
    originals: FxHashMap<u64, Vec<u32>>,
    /// original -> its later copies (same signature), for queries
    copies: FxHashMap<u32, Vec<u32>>,
}

/// Candidates of a query batch: for query `q`, `ids[offsets[q]..offsets[q + 1]]` with their
/// signature estimates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Matches {
    pub offsets: Vec<u64>,
    pub ids: Vec<u32>,
    pub similarity: Vec<f64>,
}

/// The index file's first bytes: version 2 ends with an xxh3-64 checksum of everything before
/// it; version 1 (no checksum) still loads.
const MAGIC: &[u8; 8] = b"FALSHIX2";
const MAGIC_V1: &[u8; 8] = b"FALSHIX1";

impl Index {
    pub fn new(shingling: Shingling, banding: Banding) -> Result<Self> {
        shingling.check()?;
        if banding.verify == Verify::Exact {
            return Err(Error::invalid(
                "a streaming index keeps signatures only: verify must be 'none' or 'minhash'",
            ));
        }
        if !matches!(banding.bands.checked_mul(banding.rows), Some(p) if p <= shingling.num_perm) {
            return Err(Error::invalid("bands x rows exceeds num_perm"));
        }
        Ok(Index {
            sk: Sketches {
                num_perm: shingling.num_perm,
                ..Sketches::default()
            },
            tables: vec![FxHashMap::default(); banding.bands],
            uf: UnionFind::default(),
            originals: FxHashMap::default(),
            copies: FxHashMap::default(),
            shingling,
            banding,
        })
    }

    pub fn len(&self) -> usize {
        self.sk.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sk.is_empty()
    }

    /// Signs and inserts texts; per text, whether no earlier document (in the index or earlier
    /// in this batch) is its near-duplicate.
    pub fn add(&mut self, texts: &[&str]) -> Result<Vec<bool>> {
        let batch = sketch(texts, &self.shingling, false)?;
        self.add_sketches(batch)
    }

    /// Inserts signatures made elsewhere with the same shingling.
    pub fn add_sketches(&mut self, batch: Sketches) -> Result<Vec<bool>> {
        if batch.num_perm != self.sk.num_perm {
            return Err(Error::shape(format!(
                "signatures have {} values, the index {}",
                batch.num_perm, self.sk.num_perm
            )));
        }
        check_count(self.sk.len() + batch.len())?;
        let (b, r) = (self.banding.bands, self.banding.rows);
        let start = self.sk.len();
        let keys: Vec<Vec<u64>> = (0..batch.len())
            .into_par_iter()
            .map(|i| {
                let row = batch.row(i);
                // the band keys, then the hash of the whole signature
                (0..b)
                    .map(|k| band_key(&row[k * r..(k + 1) * r]))
                    .chain([band_key(row)])
                    .collect()
            })
            .collect();
        self.sk.sigs.extend_from_slice(&batch.sigs);
        self.sk.empty.extend_from_slice(&batch.empty);
        self.uf.grow(batch.len());
        let mut keep = Vec::with_capacity(batch.len());
        let mut v = Verifier {
            sk: &self.sk,
            banding: self.banding,
            uf: std::mem::take(&mut self.uf),
            checked: FxHashSet::default(),
            pairs: Vec::new(),
        };
        for (i, doc_keys) in keys.iter().enumerate() {
            let d = (start + i) as u32;
            if batch.empty[i] {
                keep.push(true);
                continue;
            }
            // a copy of an indexed signature joins its original and stays out of the buckets
            let (band_keys, whole) = doc_keys.split_at(b);
            let originals = self.originals.entry(whole[0]).or_default();
            let sk = v.sk;
            if let Some(&o) = originals
                .iter()
                .find(|&&o| sk.row(o as usize) == sk.row(d as usize))
            {
                v.uf.union(o, d);
                self.copies.entry(o).or_default().push(d);
                keep.push(false);
                continue;
            }
            originals.push(d);
            let mut dup = false;
            for (table, &key) in self.tables.iter_mut().zip(band_keys) {
                let bucket = table.entry(key).or_default();
                match self.banding.verify {
                    Verify::None => {
                        if let Some(&first) = bucket.first() {
                            v.uf.union(first, d);
                            dup = true;
                        }
                    }
                    _ => {
                        for &m in bucket.iter() {
                            dup |= v.try_join(m, d);
                        }
                    }
                }
                bucket.push(d);
            }
            keep.push(!dup);
        }
        self.uf = v.uf;
        Ok(keep)
    }

    /// The indexed documents sharing a bucket with each text (for `MinHash` verification, only
    /// those whose estimate reaches the threshold), by id, with their estimates.
    pub fn query(&self, texts: &[&str]) -> Result<Matches> {
        let q = sketch(texts, &self.shingling, false)?;
        self.query_sketches(&q)
    }

    pub fn query_sketches(&self, q: &Sketches) -> Result<Matches> {
        if q.num_perm != self.sk.num_perm {
            return Err(Error::shape("query signatures have the wrong num_perm"));
        }
        let (b, r) = (self.banding.bands, self.banding.rows);
        let per: Vec<Vec<(u32, f64)>> = (0..q.len())
            .into_par_iter()
            .map(|i| {
                if q.empty[i] {
                    return Vec::new();
                }
                let row = q.row(i);
                let mut ids: Vec<u32> = (0..b)
                    .filter_map(|k| self.tables[k].get(&band_key(&row[k * r..(k + 1) * r])))
                    .flatten()
                    .copied()
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                let copies: Vec<u32> = ids
                    .iter()
                    .filter_map(|id| self.copies.get(id))
                    .flatten()
                    .copied()
                    .collect();
                ids.extend(copies);
                ids.sort_unstable();
                ids.into_iter()
                    .map(|id| (id, minhash::estimate(row, self.sk.row(id as usize))))
                    .filter(|&(_, s)| {
                        self.banding.verify == Verify::None || s >= self.banding.threshold
                    })
                    .collect()
            })
            .collect();
        let mut m = Matches {
            offsets: vec![0],
            ..Matches::default()
        };
        for p in per {
            for (id, s) in p {
                m.ids.push(id);
                m.similarity.push(s);
            }
            m.offsets.push(m.ids.len() as u64);
        }
        Ok(m)
    }

    /// Per indexed document, the index of its cluster's first member.
    pub fn clusters(&mut self) -> Vec<u32> {
        self.uf.roots()
    }

    /// The signatures held (row-major, `len() x num_perm`).
    pub fn signatures(&self) -> &[u32] {
        &self.sk.sigs
    }

    /// A self-describing byte image (parameters and signatures; buckets and clusters are
    /// rebuilt on load).
    pub fn to_bytes(&self) -> Vec<u8> {
        let (sh, bd) = (&self.shingling, &self.banding);
        let mut out = Vec::with_capacity(64 + self.sk.sigs.len() * 4);
        out.extend_from_slice(MAGIC);
        for v in [
            sh.num_perm as u64,
            sh.ngram as u64,
            sh.seed,
            bd.bands as u64,
            bd.rows as u64,
            self.len() as u64,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&bd.threshold.to_le_bytes());
        let n = sh.normalize;
        out.extend_from_slice(&[
            (sh.unit == Unit::Char) as u8,
            n.nfkc as u8,
            n.lowercase as u8,
            n.punctuation as u8,
            n.whitespace as u8,
            (bd.verify == Verify::MinHash) as u8,
        ]);
        for v in &self.sk.sigs {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let sum = xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// The index [`Index::to_bytes`] wrote. The header is checked with the API's own rules
    /// (num_perm, ngram, a threshold in (0, 1), bands x rows at most num_perm) before the
    /// checksum of the whole file, and both before any allocation the header sizes.
    pub fn from_bytes(data: &[u8]) -> Result<Self> {
        let bad = |why: &str| Error::invalid(format!("not a fastalign MinHash index: {why}"));
        let magic = data.get(..8);
        let v2 = magic == Some(MAGIC.as_slice());
        if !v2 && magic != Some(MAGIC_V1.as_slice()) {
            return Err(bad("wrong magic bytes"));
        }
        let header = 8 + 7 * 8 + 6;
        let trailer = if v2 { 8 } else { 0 };
        if data.len() < header + trailer {
            return Err(bad("truncated header"));
        }
        let u = |k: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&data[8 + 8 * k..16 + 8 * k]);
            u64::from_le_bytes(b)
        };
        let (num_perm, ngram, seed, bands, rows, n) = (u(0), u(1), u(2), u(3), u(4), u(5));
        let threshold = f64::from_bits(u(6));
        let flags = &data[8 + 56..header];
        if flags.iter().any(|&f| f > 1) || num_perm > lsh::MAX_NUM_PERM as u64 {
            return Err(bad("corrupt header"));
        }
        if !(threshold > 0.0 && threshold < 1.0) {
            return Err(bad(&format!(
                "corrupt header: threshold {threshold} is outside (0, 1)"
            )));
        }
        let body = &data[header..data.len() - trailer];
        if (body.len() as u64) != n.saturating_mul(num_perm).saturating_mul(4) {
            return Err(bad(
                "the signature block has the wrong length (truncated file?)",
            ));
        }
        let shingling = Shingling {
            num_perm: num_perm as usize,
            ngram: ngram as usize,
            unit: if flags[0] == 1 {
                Unit::Char
            } else {
                Unit::Word
            },
            normalize: Normalize {
                nfkc: flags[1] == 1,
                lowercase: flags[2] == 1,
                punctuation: flags[3] == 1,
                whitespace: flags[4] == 1,
            },
            seed,
        };
        let verify = if flags[5] == 1 {
            Verify::MinHash
        } else {
            Verify::None
        };
        let banding = Banding::new(
            threshold,
            num_perm as usize,
            Some((bands as usize, rows as usize)),
            verify,
        )?;
        shingling.check()?;
        if v2 {
            let mut stored = [0u8; 8];
            stored.copy_from_slice(&data[data.len() - 8..]);
            if xxh3_64(&data[..data.len() - 8]) != u64::from_le_bytes(stored) {
                return Err(bad(
                    "the checksum does not match (the file is corrupted or was altered)",
                ));
            }
        }
        let mut index = Index::new(shingling, banding)?;
        let sigs = body
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        index.add_sketches(sketches_from_signatures(sigs, num_perm as usize)?)?;
        Ok(index)
    }
}

#[cfg(test)]
mod tests;
