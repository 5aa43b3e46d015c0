//! Dedup entry points: Python strings are borrowed (no copy of the text), signed and clustered
//! with the GIL released; results come back as NumPy arrays.

use fastalign_core::dedup::{
    self, shard, Banding, Clusters, Index, Normalize, Shingling, Sketches, Unit, Verify,
};
use fastalign_core::sys::with_threads;
use numpy::ndarray::Array2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::errors::{contiguous, run, to_pyerr};

/// The normalization steps, read by name from a `fastalign.dedup.Normalization`.
#[derive(FromPyObject)]
pub struct NormArgs {
    nfkc: bool,
    lowercase: bool,
    punctuation: bool,
    whitespace: bool,
}

fn normalize(n: &NormArgs) -> Normalize {
    Normalize {
        nfkc: n.nfkc,
        lowercase: n.lowercase,
        punctuation: n.punctuation,
        whitespace: n.whitespace,
    }
}

/// The shingling settings, read by name from a `fastalign.dedup.settings.Shingling`.
#[derive(FromPyObject)]
pub struct ShinglingArgs {
    num_perm: usize,
    ngram: usize,
    unit: String,
    normalize: NormArgs,
    seed: u64,
}

fn shingling(a: &ShinglingArgs) -> PyResult<Shingling> {
    Ok(Shingling {
        num_perm: a.num_perm,
        ngram: a.ngram,
        unit: Unit::parse(&a.unit).map_err(to_pyerr)?,
        normalize: normalize(&a.normalize),
        seed: a.seed,
    })
}

/// The banding settings, read by name from a `fastalign.dedup.settings.Banding`.
#[derive(FromPyObject)]
pub struct BandingArgs {
    threshold: f64,
    bands: Option<(usize, usize)>,
    verify: String,
}

fn banding(a: &BandingArgs, num_perm: usize) -> PyResult<Banding> {
    let verify = Verify::parse(&a.verify).map_err(to_pyerr)?;
    Banding::new(a.threshold, num_perm, a.bands, verify).map_err(to_pyerr)
}

/// The items of a list or tuple of `str` (the argument `name`), kept alive while their UTF-8
/// is borrowed. A non-string item is a `TypeError` naming its position.
fn texts<'py>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Vec<Bound<'py, PyString>>> {
    let items: Vec<Bound<'py, PyAny>> = if let Ok(l) = obj.cast::<PyList>() {
        l.iter().collect()
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        t.iter().collect()
    } else {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a list or tuple of str"
        )));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            item.cast_into::<PyString>().map_err(|e| {
                let got = e.into_inner();
                let what = if got.is_none() {
                    "None (drop or fill missing rows first)".to_owned()
                } else {
                    format!(
                        "{}, not str",
                        got.get_type()
                            .name()
                            .map(|n| n.to_string())
                            .unwrap_or_else(|_| "?".into())
                    )
                };
                PyTypeError::new_err(format!("{name}[{i}] is {what}"))
            })
        })
        .collect()
}

fn borrow<'a>(items: &'a [Bound<'_, PyString>], name: &str) -> PyResult<Vec<&'a str>> {
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.to_str().map_err(|e| {
                pyo3::exceptions::PyUnicodeError::new_err(format!(
                    "{name}[{i}] is not valid Unicode (a lone surrogate?): {e}"
                ))
            })
        })
        .collect()
}

/// A row-major `[rows, cols]` array from its values.
fn matrix<T>(shape: (usize, usize), values: Vec<T>) -> PyResult<Array2<T>> {
    Array2::from_shape_vec(shape, values)
        .map_err(|e| to_pyerr(fastalign_core::Error::shape(e.to_string())))
}

type ClusterOut<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray2<i64>>,
    Bound<'py, PyArray1<f64>>,
    Option<Bound<'py, PyArray1<f64>>>,
);

type SigsOut<'py> = (Bound<'py, PyArray2<u32>>, Bound<'py, PyArray1<bool>>);
type MatchesOut<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f64>>,
);

fn cluster_out(py: Python<'_>, c: Clusters) -> PyResult<ClusterOut<'_>> {
    let cluster: Vec<i64> = c.cluster.iter().map(|&x| x as i64).collect();
    let m = c.pairs.len();
    let flat: Vec<i64> = c
        .pairs
        .iter()
        .flat_map(|p| [p[0] as i64, p[1] as i64])
        .collect();
    let pairs = matrix((m, 2), flat)?;
    Ok((
        cluster.into_pyarray(py),
        pairs.into_pyarray(py),
        c.similarity.into_pyarray(py),
        c.jaccard.map(|j| j.into_pyarray(py)),
    ))
}

fn sigs_out<'py>(py: Python<'py>, sk: Sketches) -> PyResult<SigsOut<'py>> {
    let n = sk.len();
    let sigs = matrix((n, sk.num_perm), sk.sigs)?;
    Ok((sigs.into_pyarray(py), sk.empty.into_pyarray(py)))
}

fn sketches_in(sigs: &PyReadonlyArray2<'_, u32>) -> PyResult<Sketches> {
    let p = sigs.shape()[1];
    let data = contiguous(sigs, "signatures")?.to_vec();
    dedup::sketches_from_signatures(data, p).map_err(to_pyerr)
}

/// MinHash signatures ``uint32 [n, num_perm]`` and the empty-document mask.
#[pyfunction]
#[pyo3(signature = (texts, shingling, threads=None, name="texts"))]
pub fn dedup_signatures<'py>(
    py: Python<'py>,
    texts: &Bound<'py, PyAny>,
    shingling: ShinglingArgs,
    threads: Option<usize>,
    name: &str,
) -> PyResult<SigsOut<'py>> {
    let sh = self::shingling(&shingling)?;
    let items = self::texts(texts, name)?;
    let strs = borrow(&items, name)?;
    let sk = run(py, || {
        with_threads(threads, || dedup::sketch(&strs, &sh, false))
    })?;
    sigs_out(py, sk)
}

/// Near-duplicate clusters of texts: (cluster, pairs, similarity, jaccard or None, empty).
#[pyfunction]
#[pyo3(signature = (texts, shingling, banding, threads=None, name="texts"))]
pub fn dedup_cluster<'py>(
    py: Python<'py>,
    texts: &Bound<'py, PyAny>,
    shingling: ShinglingArgs,
    banding: BandingArgs,
    threads: Option<usize>,
    name: &str,
) -> PyResult<(ClusterOut<'py>, Bound<'py, PyArray1<bool>>)> {
    let sh = self::shingling(&shingling)?;
    let bd = self::banding(&banding, sh.num_perm)?;
    let items = self::texts(texts, name)?;
    let strs = borrow(&items, name)?;
    let (c, empty) = run(py, || {
        with_threads(threads, || {
            let sk = dedup::sketch(&strs, &sh, bd.verify == Verify::Exact)?;
            Ok((dedup::cluster(&sk, bd)?, sk.empty))
        })
    })?;
    Ok((cluster_out(py, c)?, empty.into_pyarray(py)))
}

/// Near-duplicate clusters from signatures (verification 'none' or 'minhash').
#[pyfunction]
#[pyo3(signature = (signatures, banding, threads=None))]
pub fn dedup_cluster_signatures<'py>(
    py: Python<'py>,
    signatures: PyReadonlyArray2<'py, u32>,
    banding: BandingArgs,
    threads: Option<usize>,
) -> PyResult<(ClusterOut<'py>, Bound<'py, PyArray1<bool>>)> {
    let sk = sketches_in(&signatures)?;
    let bd = self::banding(&banding, sk.num_perm)?;
    let (c, sk) = run(py, || {
        with_threads(threads, || Ok((dedup::cluster(&sk, bd)?, sk)))
    })?;
    Ok((cluster_out(py, c)?, sk.empty.into_pyarray(py)))
}

/// Exact-duplicate groups of normalized texts: ((cluster, pairs, similarity, None), empty).
#[pyfunction]
#[pyo3(signature = (texts, normalize, threads=None, name="texts"))]
pub fn dedup_exact<'py>(
    py: Python<'py>,
    texts: &Bound<'py, PyAny>,
    normalize: NormArgs,
    threads: Option<usize>,
    name: &str,
) -> PyResult<(ClusterOut<'py>, Bound<'py, PyArray1<bool>>)> {
    let items = self::texts(texts, name)?;
    let strs = borrow(&items, name)?;
    let norm = self::normalize(&normalize);
    let (c, empty) = run(py, || with_threads(threads, || dedup::exact(&strs, norm)))?;
    Ok((cluster_out(py, c)?, empty.into_pyarray(py)))
}

/// Exact Jaccard similarity of ``a[i]`` and ``b[j]`` for each row ``(i, j)`` of ``pairs``.
#[pyfunction]
#[pyo3(signature = (a, b, pairs, shingling, threads=None, names=("a", "b")))]
#[allow(clippy::too_many_arguments)]
pub fn dedup_jaccard<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    pairs: PyReadonlyArray2<'py, i64>,
    shingling: ShinglingArgs,
    threads: Option<usize>,
    names: (&str, &str),
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let sh = self::shingling(&shingling)?;
    let (ia, ib) = (self::texts(a, names.0)?, self::texts(b, names.1)?);
    let (sa, sb) = (borrow(&ia, names.0)?, borrow(&ib, names.1)?);
    if pairs.shape()[1] != 2 {
        return Err(to_pyerr(fastalign_core::Error::shape(
            "pairs must be [m, 2]",
        )));
    }
    let flat = contiguous(&pairs, "pairs")?;
    let mut p = Vec::with_capacity(flat.len() / 2);
    for c in flat.chunks_exact(2) {
        if c[0] < 0 || c[1] < 0 || c[0] > u32::MAX as i64 || c[1] > u32::MAX as i64 {
            return Err(to_pyerr(fastalign_core::Error::invalid(format!(
                "pair {c:?} is out of range"
            ))));
        }
        p.push([c[0] as u32, c[1] as u32]);
    }
    let out = run(py, || {
        with_threads(threads, || dedup::jaccard_pairs(&sa, &sb, &p, &sh))
    })?;
    Ok(out.into_pyarray(py))
}

/// Each text as the normalization leaves it.
#[pyfunction]
#[pyo3(signature = (texts, normalize, name="texts"))]
pub fn dedup_normalize(
    py: Python<'_>,
    texts: &Bound<'_, PyAny>,
    normalize: NormArgs,
    name: &str,
) -> PyResult<Vec<String>> {
    let items = self::texts(texts, name)?;
    let strs = borrow(&items, name)?;
    let norm = self::normalize(&normalize);
    run(py, || Ok(dedup::normalize_batch(&strs, norm)))
}

/// The (bands, rows) datasketch's optimisation picks for a threshold.
#[pyfunction]
#[pyo3(signature = (threshold, num_perm, false_positive_weight=0.5, false_negative_weight=0.5))]
pub fn dedup_lsh_params(
    threshold: f64,
    num_perm: usize,
    false_positive_weight: f64,
    false_negative_weight: f64,
) -> PyResult<(usize, usize)> {
    dedup::lsh::optimal_bands(
        threshold,
        num_perm,
        false_positive_weight,
        false_negative_weight,
    )
    .map_err(to_pyerr)
}

/// The streaming MinHash LSH index (see ``fastalign.dedup.MinHashIndex``).
#[pyclass(module = "fastalign._core")]
pub struct MinHashIndexCore {
    index: Index,
    threads: Option<usize>,
}

#[pymethods]
impl MinHashIndexCore {
    #[new]
    #[pyo3(signature = (shingling, banding, threads=None))]
    fn new(
        shingling: ShinglingArgs,
        banding: BandingArgs,
        threads: Option<usize>,
    ) -> PyResult<Self> {
        let sh = self::shingling(&shingling)?;
        let bd = self::banding(&banding, sh.num_perm)?;
        Ok(MinHashIndexCore {
            index: Index::new(sh, bd).map_err(to_pyerr)?,
            threads,
        })
    }

    fn __len__(&self) -> usize {
        self.index.len()
    }

    /// (num_perm, ngram, unit, (nfkc, lowercase, punctuation, whitespace), seed)
    #[getter]
    fn shingling(&self) -> (usize, usize, &'static str, (bool, bool, bool, bool), u64) {
        let s = &self.index.shingling;
        let n = s.normalize;
        (
            s.num_perm,
            s.ngram,
            if s.unit == Unit::Char { "char" } else { "word" },
            (n.nfkc, n.lowercase, n.punctuation, n.whitespace),
            s.seed,
        )
    }

    /// (threshold, bands, rows, verify)
    #[getter]
    fn banding(&self) -> (f64, usize, usize, &'static str) {
        let b = &self.index.banding;
        let v = if b.verify == Verify::MinHash {
            "minhash"
        } else {
            "none"
        };
        (b.threshold, b.bands, b.rows, v)
    }

    #[pyo3(signature = (texts, name="texts"))]
    fn add<'py>(
        &mut self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        name: &str,
    ) -> PyResult<Bound<'py, PyArray1<bool>>> {
        let items = self::texts(texts, name)?;
        let strs = borrow(&items, name)?;
        let (index, threads) = (&mut self.index, self.threads);
        let keep = run(py, || with_threads(threads, || index.add(&strs)))?;
        Ok(keep.into_pyarray(py))
    }

    fn add_signatures<'py>(
        &mut self,
        py: Python<'py>,
        signatures: PyReadonlyArray2<'py, u32>,
    ) -> PyResult<Bound<'py, PyArray1<bool>>> {
        let sk = sketches_in(&signatures)?;
        let (index, threads) = (&mut self.index, self.threads);
        let keep = run(py, || with_threads(threads, || index.add_sketches(sk)))?;
        Ok(keep.into_pyarray(py))
    }

    #[pyo3(signature = (texts, name="texts"))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        name: &str,
    ) -> PyResult<MatchesOut<'py>> {
        let items = self::texts(texts, name)?;
        let strs = borrow(&items, name)?;
        let (index, threads) = (&self.index, self.threads);
        let m = run(py, || with_threads(threads, || index.query(&strs)))?;
        Ok(matches_out(py, m))
    }

    fn query_signatures<'py>(
        &self,
        py: Python<'py>,
        signatures: PyReadonlyArray2<'py, u32>,
    ) -> PyResult<MatchesOut<'py>> {
        let sk = sketches_in(&signatures)?;
        let (index, threads) = (&self.index, self.threads);
        let m = run(py, || with_threads(threads, || index.query_sketches(&sk)))?;
        Ok(matches_out(py, m))
    }

    fn clusters<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        let c: Vec<i64> = self.index.clusters().into_iter().map(i64::from).collect();
        c.into_pyarray(py)
    }

    fn signatures<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u32>>> {
        let p = self.index.shingling.num_perm;
        let s = self.index.signatures().to_vec();
        Ok(matrix((s.len() / p, p), s)?.into_pyarray(py))
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.index.to_bytes())
    }

    #[staticmethod]
    #[pyo3(signature = (data, threads=None))]
    fn from_bytes(py: Python<'_>, data: &[u8], threads: Option<usize>) -> PyResult<Self> {
        let index = run(py, || with_threads(threads, || Index::from_bytes(data)))?;
        Ok(MinHashIndexCore { index, threads })
    }
}

fn matches_out(py: Python<'_>, m: dedup::Matches) -> MatchesOut<'_> {
    let offsets: Vec<i64> = m.offsets.iter().map(|&x| x as i64).collect();
    let ids: Vec<i64> = m.ids.iter().map(|&x| i64::from(x)).collect();
    (
        offsets.into_pyarray(py),
        ids.into_pyarray(py),
        m.similarity.into_pyarray(py),
    )
}

/// Signatures of the texts of an Arrow string array, given as its UTF-8 value buffer and its
/// `n + 1` offsets (both borrowed from the Arrow buffers, no copy): `(sigs, empty)`.
#[pyfunction]
#[pyo3(signature = (data, offsets, shingling, threads=None))]
pub fn dedup_signatures_utf8<'py>(
    py: Python<'py>,
    data: PyReadonlyArray1<'py, u8>,
    offsets: PyReadonlyArray1<'py, i64>,
    shingling: ShinglingArgs,
    threads: Option<usize>,
) -> PyResult<SigsOut<'py>> {
    let sh = self::shingling(&shingling)?;
    let (data, offsets) = (contiguous(&data, "data")?, contiguous(&offsets, "offsets")?);
    let sk = run(py, || {
        let strs = shard::utf8_texts(data, offsets)?;
        with_threads(threads, || dedup::sketch(&strs, &sh, false))
    })?;
    sigs_out(py, sk)
}

/// The key of every band of every signature, `uint64 [n, bands]`.
#[pyfunction]
pub fn dedup_band_keys<'py>(
    py: Python<'py>,
    signatures: PyReadonlyArray2<'py, u32>,
    bands: usize,
    rows: usize,
) -> PyResult<Bound<'py, PyArray2<u64>>> {
    let n = signatures.shape()[0];
    let p = signatures.shape()[1];
    let sigs = contiguous(&signatures, "signatures")?;
    let keys = run(py, || shard::band_keys(sigs, p, bands, rows))?;
    let keys = matrix((n, bands), keys)?;
    Ok(keys.into_pyarray(py))
}

/// The duplicate forest of the bucket rows one worker holds: `int64 [k, 2]` edges
/// `(child, parent)`.
#[pyfunction]
#[pyo3(signature = (band, key, id, signatures, verify, threshold))]
pub fn dedup_bucket_forest<'py>(
    py: Python<'py>,
    band: PyReadonlyArray1<'py, u32>,
    key: PyReadonlyArray1<'py, u64>,
    id: PyReadonlyArray1<'py, i64>,
    signatures: Option<PyReadonlyArray2<'py, u32>>,
    verify: &str,
    threshold: f64,
) -> PyResult<Bound<'py, PyArray2<i64>>> {
    let verify = Verify::parse(verify).map_err(to_pyerr)?;
    let sigs = match &signatures {
        Some(s) => Some((contiguous(s, "signatures")?, s.shape()[1])),
        None => None,
    };
    let rows = shard::BucketRows {
        band: contiguous(&band, "band")?,
        key: contiguous(&key, "key")?,
        id: contiguous(&id, "id")?,
        sigs,
    };
    let edges = run(py, || shard::bucket_forest(&rows, verify, threshold))?;
    let k = edges.len();
    let flat: Vec<i64> = edges.into_iter().flatten().collect();
    let out = matrix((k, 2), flat)?;
    Ok(out.into_pyarray(py))
}
