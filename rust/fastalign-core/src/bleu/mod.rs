//! BLEU in two flavours, each exact to the implementation it names.
//!
//! * `Sacrebleu` (default): the numbers of sacrebleu 2.6 -- its tokenizers (see
//!   [`tokenize`]), `rstrip` before tokenizing, n-gram statistics
//!   `[hyp_len, ref_len, correct_1.., total_1..]` with reference counts merged by max over the
//!   references, the closest reference length (ties to the shorter), smoothing `exp`, `floor`,
//!   `add-k`, `none`, effective order, and `log(0) = -9999999999`.
//! * `Evaluate`: Hugging Face `evaluate`'s `bleu` (the TensorFlow NMT `compute_bleu`): no
//!   `rstrip`, the *shortest* reference length, add-one smoothing on every order when
//!   smoothing is on, a 0-1 scale.
//!
//! Lowercasing is left to the caller (Python's `str.lower()` is the definition).
//! Statistics of a corpus are the sums of its segments' statistics. Every batched routine
//! runs its pairs in parallel and returns the same numbers for any number of threads.

pub mod tokenize;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

pub use tokenize::Tokenizer;

use crate::cancel::{offload, Token};
use crate::unicode::py_rstrip;
use crate::{Error, Result};

/// Which implementation's numbers to reproduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// sacrebleu 2.6.
    Sacrebleu,
    /// Hugging Face `evaluate`'s `bleu`.
    Evaluate,
}

/// Smoothing of zero n-gram precisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Smooth {
    /// None: a zero precision makes the score 0.
    None,
    /// sacrebleu `floor`: a zero count becomes `smooth_value` (default 0.1).
    Floor,
    /// sacrebleu `add-k`: `k` added to counts and totals of orders >= 2 (default 1).
    AddK,
    /// sacrebleu `exp` (mteval-v13a): `1 / 2^k` for the k-th zero-match order.
    Exp,
    /// evaluate `smooth=True`: `(matches + 1) / (possible + 1)` on every order.
    AddOne,
}

/// Everything that decides a BLEU number.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub tokenizer: Tokenizer,
    pub flavor: Flavor,
    pub smooth: Smooth,
    /// The value of `floor` / `add-k` (their defaults when not given); unused otherwise.
    pub smooth_value: f64,
    pub effective_order: bool,
    pub max_order: usize,
    /// Sum log-precisions as CPython >= 3.12's `sum()` does (Neumaier-compensated); plain
    /// left-to-right as CPython <= 3.11 otherwise. The last bit of a score depends on it.
    pub compensated_sum: bool,
}

impl Options {
    /// Options from the names sacrebleu uses, validated.
    pub fn new(
        tokenize: &str,
        flavor: &str,
        smooth_method: &str,
        smooth_value: Option<f64>,
        effective_order: bool,
        max_order: usize,
    ) -> Result<Self> {
        let tokenizer = Tokenizer::parse(tokenize)?;
        let flavor = match flavor {
            "sacrebleu" => Flavor::Sacrebleu,
            "evaluate" => Flavor::Evaluate,
            other => {
                return Err(Error::invalid(format!(
                    "flavor must be 'sacrebleu' or 'evaluate', got {other:?}"
                )))
            }
        };
        let smooth = match (flavor, smooth_method) {
            (_, "none") => Smooth::None,
            (Flavor::Sacrebleu, "floor") => Smooth::Floor,
            (Flavor::Sacrebleu, "add-k") => Smooth::AddK,
            (Flavor::Sacrebleu, "exp") => Smooth::Exp,
            (Flavor::Evaluate, "add-one") => Smooth::AddOne,
            (Flavor::Sacrebleu, other) => {
                return Err(Error::invalid(format!(
                    "smooth_method must be one of 'exp', 'floor', 'add-k', 'none' for the \
                     sacrebleu flavor, got {other:?}"
                )))
            }
            (Flavor::Evaluate, other) => {
                return Err(Error::invalid(format!(
                    "smooth_method must be 'add-one' or 'none' for the evaluate flavor, \
                     got {other:?}"
                )))
            }
        };
        let default = match smooth {
            Smooth::Floor => 0.1,
            Smooth::AddK => 1.0,
            _ => 0.0,
        };
        let smooth_value = smooth_value.unwrap_or(default);
        if !smooth_value.is_finite() || smooth_value < 0.0 {
            return Err(Error::invalid(format!(
                "smooth_value must be a finite number >= 0, got {smooth_value}"
            )));
        }
        if max_order == 0 || max_order > 64 {
            return Err(Error::invalid(format!(
                "max_ngram_order must be in 1..=64, got {max_order}"
            )));
        }
        Ok(Options {
            tokenizer,
            flavor,
            smooth,
            smooth_value,
            effective_order,
            max_order,
            compensated_sum: false,
        })
    }

    /// The length of one segment's statistics: `2 + 2 * max_order`.
    pub fn stats_len(&self) -> usize {
        2 + 2 * self.max_order
    }

    /// A segment as the flavour tokenizes it (sacrebleu strips trailing whitespace first).
    pub fn tokenize(&self, text: &str) -> String {
        match self.flavor {
            Flavor::Sacrebleu => self.tokenizer.apply(py_rstrip(text)),
            Flavor::Evaluate => self.tokenizer.apply(text),
        }
    }
}

/// One BLEU score with the quantities sacrebleu reports beside it.
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    /// 0-100 (sacrebleu) or 0-1 (evaluate).
    pub score: f64,
    /// Per-order precisions, on the score's scale (sacrebleu: percent; evaluate: 0-1).
    pub precisions: Vec<f64>,
    pub bp: f64,
    pub sys_len: u64,
    pub ref_len: u64,
}

/// Statistics `[hyp_len, ref_len, correct_1..=N, total_1..=N]` of one hypothesis against its
/// references, tokens already split.
fn stats_of_tokens(hyp: &[&str], refs: &[Vec<&str>], opts: &Options) -> Vec<u64> {
    let order = opts.max_order;
    let mut out = vec![0u64; opts.stats_len()];
    let hyp_len = hyp.len();
    out[0] = hyp_len as u64;
    out[1] = match opts.flavor {
        // sacrebleu: the closest reference length, ties to the shorter
        Flavor::Sacrebleu => {
            let mut best: Option<(usize, usize)> = None; // (diff, len)
            for r in refs {
                let diff = hyp_len.abs_diff(r.len());
                best = match best {
                    None => Some((diff, r.len())),
                    Some((d, l)) if diff < d || (diff == d && r.len() < l) => Some((diff, r.len())),
                    keep => keep,
                };
            }
            best.map_or(0, |(_, l)| l as u64)
        }
        // evaluate: the shortest reference
        Flavor::Evaluate => refs.iter().map(Vec::len).min().unwrap_or(0) as u64,
    };
    for n in 1..=order {
        out[2 + order + n - 1] = hyp_len.saturating_sub(n - 1) as u64;
    }
    if hyp_len == 0 || refs.iter().all(Vec::is_empty) {
        return out;
    }
    // token ids shared by the references and the hypothesis; hypothesis tokens absent from
    // every reference can never match and get the id NONE
    let fast = order <= 4 && refs.iter().map(Vec::len).sum::<usize>() < 0xFFFF;
    let correct = if fast {
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            scratch.clipped_matches(hyp, refs, order)
        })
    } else {
        None
    };
    let correct = correct.unwrap_or_else(|| {
        let (hyp_ids, ref_ids) = token_ids_exact(hyp, refs);
        clipped_matches_slices(&hyp_ids, &ref_ids, order)
    });
    out[2..2 + order].copy_from_slice(&correct);
    out
}

/// Token ids through a map keyed by the token text (the exact path).
fn token_ids_exact(hyp: &[&str], refs: &[Vec<&str>]) -> (Vec<u32>, Vec<Vec<u32>>) {
    let mut vocab: FxHashMap<&str, u32> = FxHashMap::default();
    let ref_ids: Vec<Vec<u32>> = refs
        .iter()
        .map(|r| {
            r.iter()
                .map(|t| {
                    let next = vocab.len() as u32;
                    *vocab.entry(t).or_insert(next)
                })
                .collect()
        })
        .collect();
    let hyp_ids = hyp
        .iter()
        .map(|t| vocab.get(t).copied().unwrap_or(NONE))
        .collect();
    (hyp_ids, ref_ids)
}

fn token_hash(t: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write(t.as_bytes());
    h.write_usize(t.len());
    h.finish()
}

/// Buffers reused by every pair a thread scores (no allocation per pair once warm).
#[derive(Default)]
struct Scratch {
    /// token hash -> id (verified against `reps`: a hash collision falls back to the exact
    /// path, it never merges two tokens)
    vocab: FxHashMap<u64, u32>,
    ngrams: FxHashMap<u64, Counts>,
    ref_ids: Vec<u32>,
    hyp_ids: Vec<u32>,
    in_hyp: Vec<bool>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

impl Scratch {
    /// Clipped matches per order (orders <= 4, fewer than 65535 reference tokens), or None
    /// when two different tokens share a hash (the caller takes the exact path).
    fn clipped_matches(
        &mut self,
        hyp: &[&str],
        refs: &[Vec<&str>],
        order: usize,
    ) -> Option<Vec<u64>> {
        self.vocab.clear();
        self.ref_ids.clear();
        let mut reps: Vec<&str> = Vec::with_capacity(64);
        for r in refs {
            for t in r {
                let next = reps.len() as u32;
                let id = *self.vocab.entry(token_hash(t)).or_insert(next);
                if id == next {
                    reps.push(t);
                } else if reps[id as usize] != *t {
                    return None;
                }
                self.ref_ids.push(id);
            }
        }
        self.hyp_ids.clear();
        for t in hyp {
            let id = match self.vocab.get(&token_hash(t)) {
                Some(&id) if reps[id as usize] == *t => id,
                Some(_) => return None,
                None => NONE,
            };
            self.hyp_ids.push(id);
        }
        // reference tokens that also occur in the hypothesis: only n-grams made of these can
        // match, so the others are never counted
        self.in_hyp.clear();
        self.in_hyp.resize(reps.len(), false);
        for &id in &self.hyp_ids {
            if id != NONE {
                self.in_hyp[id as usize] = true;
            }
        }
        let mut bounds = Vec::with_capacity(refs.len());
        let mut at = 0;
        for r in refs {
            bounds.push((at, at + r.len()));
            at += r.len();
        }
        Some(clipped_matches_packed_into(
            &self.hyp_ids,
            &self.ref_ids,
            &bounds,
            order,
            Some(&self.in_hyp),
            &mut self.ngrams,
        ))
    }
}

const NONE: u32 = u32::MAX;

/// Per n-gram key: the max count over the references (`ref_max`), the count in the reference
/// being read (`cur`, valid while `cur_ref` names it) and the hypothesis count.
#[derive(Clone, Copy, Default)]
struct Counts {
    ref_max: u32,
    cur: u32,
    cur_ref: u32,
    hyp: u32,
}

/// Clipped match counts per order for orders <= 4 and fewer than 65535 distinct tokens: an
/// n-gram is one u64 with a 16-bit lane per token (id + 1; empty lanes 0, so n-grams of
/// different orders never collide), all orders in one map. `refs` are the references' ids,
/// concatenated, with `bounds` the (start, end) of each.
fn clipped_matches_packed_into(
    hyp: &[u32],
    refs: &[u32],
    bounds: &[(usize, usize)],
    order: usize,
    in_hyp: Option<&[bool]>,
    map: &mut FxHashMap<u64, Counts>,
) -> Vec<u64> {
    map.clear();
    for (j, &(lo, hi)) in bounds.iter().enumerate() {
        let j = j as u32 + 1;
        let r = &refs[lo..hi];
        for i in 0..r.len() {
            let mut key = 0u64;
            for (n, &id) in r[i..].iter().take(order).enumerate() {
                if in_hyp.is_some_and(|h| !h[id as usize]) {
                    break; // this n-gram and its extensions are not in the hypothesis
                }
                key |= u64::from(id + 1) << (16 * n);
                let e = map.entry(key).or_default();
                if e.cur_ref != j {
                    e.cur_ref = j;
                    e.cur = 0;
                }
                e.cur += 1;
                e.ref_max = e.ref_max.max(e.cur);
            }
        }
    }
    let mut correct = vec![0u64; order];
    for i in 0..hyp.len() {
        let mut key = 0u64;
        for (n, &id) in hyp[i..].iter().take(order).enumerate() {
            if id == NONE {
                break; // no longer n-gram from here can match either
            }
            key |= u64::from(id + 1) << (16 * n);
            match map.get_mut(&key) {
                Some(e) => {
                    if e.hyp < e.ref_max {
                        correct[n] += 1; // clipping: count at most ref_max occurrences
                    }
                    e.hyp += 1;
                }
                None => break, // an n-gram absent from every reference has no extension there
            }
        }
    }
    correct
}

#[cfg(test)]
fn clipped_matches_packed(hyp: &[u32], refs: &[Vec<u32>], order: usize) -> Vec<u64> {
    let flat: Vec<u32> = refs.concat();
    let mut bounds = Vec::new();
    let mut at = 0;
    for r in refs {
        bounds.push((at, at + r.len()));
        at += r.len();
    }
    // half the time with the hypothesis-token filter, half without: both must agree
    let in_hyp: Option<Vec<bool>> = (hyp.len() % 2 == 0).then(|| {
        let mut v = vec![
            false;
            flat.iter()
                .chain(hyp)
                .filter(|&&x| x != NONE)
                .max()
                .map_or(0, |&m| m as usize + 1)
        ];
        for &id in hyp {
            if id != NONE {
                v[id as usize] = true;
            }
        }
        v
    });
    clipped_matches_packed_into(
        hyp,
        &flat,
        &bounds,
        order,
        in_hyp.as_deref(),
        &mut FxHashMap::default(),
    )
}

/// The general case (any order, any vocabulary size): n-grams as slices of token ids.
fn clipped_matches_slices(hyp: &[u32], refs: &[Vec<u32>], order: usize) -> Vec<u64> {
    let mut correct = vec![0u64; order];
    let mut ref_max: FxHashMap<&[u32], u32> = FxHashMap::default();
    let mut one_ref: FxHashMap<&[u32], u32> = FxHashMap::default();
    let mut hyp_counts: FxHashMap<&[u32], u32> = FxHashMap::default();
    for n in 1..=order.min(hyp.len()) {
        hyp_counts.clear();
        for w in hyp.windows(n) {
            if !w.contains(&NONE) {
                *hyp_counts.entry(w).or_insert(0) += 1;
            }
        }
        if hyp_counts.is_empty() {
            continue;
        }
        ref_max.clear();
        for r in refs {
            one_ref.clear();
            for w in r.windows(n) {
                *one_ref.entry(w).or_insert(0) += 1;
            }
            for (&k, &v) in &one_ref {
                let e = ref_max.entry(k).or_insert(0);
                *e = (*e).max(v);
            }
        }
        correct[n - 1] = hyp_counts
            .iter()
            .map(|(k, &c)| u64::from(c.min(ref_max.get(k).copied().unwrap_or(0))))
            .sum();
    }
    correct
}

/// Statistics of one hypothesis against its references (raw text).
pub fn segment_stats(hyp: &str, refs: &[&str], opts: &Options) -> Vec<u64> {
    fn prep<'a>(t: &'a str, opts: &Options) -> (std::borrow::Cow<'a, str>, Vec<(usize, usize)>) {
        match opts.flavor {
            Flavor::Sacrebleu => opts.tokenizer.spans(py_rstrip(t)),
            Flavor::Evaluate => opts.tokenizer.spans(t),
        }
    }
    let (h_text, h_spans) = prep(hyp, opts);
    let hyp_tokens: Vec<&str> = h_spans.iter().map(|&(a, b)| &h_text[a..b]).collect();
    let ref_prep: Vec<_> = refs.iter().map(|r| prep(r, opts)).collect();
    let ref_tokens: Vec<Vec<&str>> = ref_prep
        .iter()
        .map(|(text, spans)| spans.iter().map(|&(a, b)| &text[a..b]).collect())
        .collect();
    stats_of_tokens(&hyp_tokens, &ref_tokens, opts)
}

/// Python's `sum()` of floats from the int 0: left to right (CPython <= 3.11), or with
/// Neumaier's compensation as CPython >= 3.12 does.
fn py_sum(values: impl Iterator<Item = f64>, compensated: bool) -> f64 {
    let mut total = 0.0f64;
    let mut c = 0.0f64;
    for x in values {
        if compensated {
            let t = total + x;
            if total.abs() >= x.abs() {
                c += (total - t) + x;
            } else {
                c += (x - t) + total;
            }
            total = t;
        } else {
            total += x;
        }
    }
    if compensated && c != 0.0 && c.is_finite() {
        total += c;
    }
    total
}

fn my_log(x: f64) -> f64 {
    if x == 0.0 {
        -9_999_999_999.0
    } else {
        x.ln()
    }
}

/// The score of (summed) statistics, exactly as the flavour computes it.
pub fn score_from_stats(stats: &[u64], opts: &Options) -> Result<Score> {
    if stats.len() != opts.stats_len() {
        return Err(Error::shape(format!(
            "BLEU statistics must have {} entries, got {}",
            opts.stats_len(),
            stats.len()
        )));
    }
    let order = opts.max_order;
    let (sys_len, ref_len) = (stats[0], stats[1]);
    let correct = &stats[2..2 + order];
    let total = &stats[2 + order..];
    match opts.flavor {
        Flavor::Sacrebleu => Ok(sacrebleu_score(sys_len, ref_len, correct, total, opts)),
        Flavor::Evaluate => evaluate_score(sys_len, ref_len, correct, total, opts),
    }
}

/// sacrebleu's `BLEU.compute_bleu`, operation for operation.
fn sacrebleu_score(
    sys_len: u64,
    ref_len: u64,
    correct: &[u64],
    total: &[u64],
    opts: &Options,
) -> Score {
    let order = opts.max_order;
    let mut bp = 1.0;
    if sys_len < ref_len {
        bp = if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        };
    }
    let mut precisions = vec![0.0; order];
    if correct.iter().all(|&c| c == 0) {
        return Score {
            score: 0.0,
            precisions,
            bp,
            sys_len,
            ref_len,
        };
    }
    let mut smooth_mteval = 1.0;
    let mut eff_order = order;
    for n in 1..=order {
        let (mut c, mut t) = (correct[n - 1] as f64, total[n - 1] as f64);
        if opts.smooth == Smooth::AddK && n > 1 {
            c += opts.smooth_value;
            t += opts.smooth_value;
        }
        if t == 0.0 {
            break;
        }
        if opts.effective_order {
            eff_order = n;
        }
        if c == 0.0 {
            if opts.smooth == Smooth::Exp {
                smooth_mteval *= 2.0;
                precisions[n - 1] = 100.0 / (smooth_mteval * t);
            } else if opts.smooth == Smooth::Floor {
                precisions[n - 1] = 100.0 * opts.smooth_value / t;
            }
        } else {
            precisions[n - 1] = 100.0 * c / t;
        }
    }
    let log_sum = py_sum(
        precisions[..eff_order].iter().map(|&p| my_log(p)),
        opts.compensated_sum,
    );
    Score {
        score: bp * (log_sum / eff_order as f64).exp(),
        precisions,
        bp,
        sys_len,
        ref_len,
    }
}

/// evaluate's `compute_bleu` (TensorFlow NMT), operation for operation. Where it divides by
/// zero (no hypothesis tokens) the limit is taken: brevity penalty 0, score 0. A zero
/// reference length is an error there and here.
fn evaluate_score(
    sys_len: u64,
    ref_len: u64,
    correct: &[u64],
    total: &[u64],
    opts: &Options,
) -> Result<Score> {
    let order = opts.max_order;
    if ref_len == 0 {
        return Err(Error::invalid(
            "evaluate's BLEU is undefined when the reference length is 0 (it counts the \
             shortest reference of each segment, and every segment here has an empty one \
             after tokenization): it divides by zero",
        ));
    }
    let precisions: Vec<f64> = (0..order)
        .map(|i| {
            let (m, p) = (correct[i] as f64, total[i] as f64);
            if opts.smooth == Smooth::AddOne {
                (m + 1.0) / (p + 1.0)
            } else if total[i] > 0 {
                m / p
            } else {
                0.0
            }
        })
        .collect();
    let min_p = precisions.iter().copied().fold(f64::INFINITY, f64::min);
    let geo_mean = if min_p > 0.0 {
        py_sum(
            precisions.iter().map(|&p| (1.0 / order as f64) * p.ln()),
            opts.compensated_sum,
        )
        .exp()
    } else {
        0.0
    };
    let ratio = sys_len as f64 / ref_len as f64;
    let bp = if ratio > 1.0 {
        1.0
    } else if sys_len == 0 {
        0.0
    } else {
        (1.0 - 1.0 / ratio).exp()
    };
    Ok(Score {
        score: geo_mean * bp,
        precisions,
        bp,
        sys_len,
        ref_len,
    })
}

fn check_pairs<R: AsRef<str> + Sync>(hyps: usize, refs: &[Vec<Option<R>>]) -> Result<()> {
    if hyps != refs.len() {
        return Err(Error::shape(format!(
            "got {hyps} hypotheses but references for {} segments",
            refs.len()
        )));
    }
    if let Some(i) = refs.iter().position(|r| r.iter().all(Option::is_none)) {
        return Err(Error::invalid(format!(
            "segment {i} has no reference (every reference of it is missing)"
        )));
    }
    Ok(())
}

/// Segments per task of the batched functions (fewer in all: no task for the pool).
const MIN_LEN: usize = 16;

/// One segment's statistics, or [`Error::Interrupted`] once `stop` is cancelled (the batched
/// functions check it before every segment).
fn pair_stats<H: AsRef<str>, R: AsRef<str>>(
    hyp: &H,
    refs: &[Option<R>],
    opts: &Options,
    stop: &Token,
) -> Result<Vec<u64>> {
    stop.check()?;
    let refs: Vec<&str> = refs.iter().flatten().map(AsRef::as_ref).collect();
    Ok(segment_stats(hyp.as_ref(), &refs, opts))
}

/// Per-segment statistics, flat `[n, 2 + 2 * max_order]`, in parallel. `refs[i]` holds the
/// references of hypothesis `i`; `None` entries are skipped (a variable number of
/// references), but every segment needs at least one. The batched functions stop with
/// [`Error::Interrupted`] once the call's [`Token`] is cancelled (checked every segment).
pub fn batch_stats<H, R>(hyps: &[H], refs: &[Vec<Option<R>>], opts: &Options) -> Result<Vec<u64>>
where
    H: AsRef<str> + Sync,
    R: AsRef<str> + Sync,
{
    check_pairs(hyps.len(), refs)?;
    let stop = Token::current();
    let per: Vec<Vec<u64>> = offload(None, hyps.len() > MIN_LEN, || {
        hyps.par_iter()
            .zip(refs.par_iter())
            .with_min_len(MIN_LEN)
            .map(|(h, r)| pair_stats(h, r, opts, &stop))
            .collect::<Result<_>>()
    })?;
    Ok(per.concat())
}

/// The corpus statistics: the sum over segments.
pub fn corpus_stats<H, R>(hyps: &[H], refs: &[Vec<Option<R>>], opts: &Options) -> Result<Vec<u64>>
where
    H: AsRef<str> + Sync,
    R: AsRef<str> + Sync,
{
    check_pairs(hyps.len(), refs)?;
    let len = opts.stats_len();
    let stop = Token::current();
    offload(None, hyps.len() > MIN_LEN, || {
        hyps.par_iter()
            .zip(refs.par_iter())
            .with_min_len(MIN_LEN)
            .map(|(h, r)| pair_stats(h, r, opts, &stop))
            .try_reduce(
                || vec![0u64; len],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    Ok(a)
                },
            )
    })
}

/// One score per (hypothesis, references) pair, in parallel.
pub fn sentence_scores<H, R>(
    hyps: &[H],
    refs: &[Vec<Option<R>>],
    opts: &Options,
) -> Result<Vec<f64>>
where
    H: AsRef<str> + Sync,
    R: AsRef<str> + Sync,
{
    check_pairs(hyps.len(), refs)?;
    let stop = Token::current();
    offload(None, hyps.len() > MIN_LEN, || {
        hyps.par_iter()
            .zip(refs.par_iter())
            .with_min_len(MIN_LEN)
            .map(|(h, r)| score_from_stats(&pair_stats(h, r, opts, &stop)?, opts).map(|s| s.score))
            .collect()
    })
}

/// Every text as the options tokenize it (for inspection), in parallel.
pub fn tokenize_batch<T: AsRef<str> + Sync>(texts: &[T], opts: &Options) -> Vec<String> {
    texts
        .par_iter()
        .with_min_len(64)
        .map(|t| opts.tokenize(t.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn words() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("a"),
                Just("b"),
                Just("c"),
                Just("d"),
                Just("."),
                Just("1")
            ],
            0..12,
        )
        .prop_map(|w| w.join(" "))
    }

    proptest! {
        #[test]
        fn packed_keys_equal_slice_keys(
            hyp in proptest::collection::vec(0u32..6, 0..30),
            refs in proptest::collection::vec(proptest::collection::vec(0u32..6, 0..30), 1..4),
            order in 1usize..=4,
        ) {
            // ids 5 stand for hypothesis tokens absent from every reference
            let hyp: Vec<u32> = hyp.into_iter().map(|x| if x == 5 { NONE } else { x }).collect();
            let refs: Vec<Vec<u32>> = refs.into_iter().map(|r| r.into_iter().map(|x| x % 5).collect()).collect();
            prop_assert_eq!(
                clipped_matches_packed(&hyp, &refs, order),
                clipped_matches_slices(&hyp, &refs, order)
            );
        }

        #[test]
        fn count_invariants(h in words(), r1 in words(), r2 in words()) {
            let o = opts("sacrebleu", "exp", true);
            let one = segment_stats(&h, &[&r1], &o);
            let two = segment_stats(&h, &[&r1, &r2], &o);
            let swapped = segment_stats(&h, &[&r2, &r1], &o);
            prop_assert_eq!(&two, &swapped);
            let len = one[0] as usize;
            for n in 1..=4 {
                prop_assert_eq!(one[5 + n] as usize, len.saturating_sub(n - 1));
                prop_assert!(one[1 + n] <= one[5 + n]);
                // another reference can only add matches (clipping takes the max)
                prop_assert!(two[1 + n] >= one[1 + n]);
            }
            let sc = score_from_stats(&two, &o).expect("score").score;
            prop_assert!((0.0..=100.0 + 1e-9).contains(&sc));
        }

        #[test]
        fn tokenizers_only_insert_boundaries(s in "[^&<\n]{0,40}") {
            // without entities, `<skipped>` and `-\n` (which 13a rewrites) every tokenizer
            // only splits: its tokens concatenate to the input without whitespace
            let bare: String = s.chars().filter(|&c| !crate::unicode::is_py_space(c)).collect();
            for t in [Tokenizer::Thirteen, Tokenizer::Intl, Tokenizer::Zh, Tokenizer::Char] {
                let out = t.apply(&s);
                let toks: Vec<&str> = crate::unicode::py_split(&out).collect();
                prop_assert_eq!(toks.concat(), bare.clone());
                if t != Tokenizer::Char {
                    prop_assert_eq!(out.clone(), toks.join(" "));
                }
            }
        }
    }

    fn opts(flavor: &str, smooth: &str, eff: bool) -> Options {
        Options::new("13a", flavor, smooth, None, eff, 4).expect("valid options")
    }

    #[test]
    fn identical_sentence_scores_100() {
        let o = opts("sacrebleu", "exp", true);
        let s = segment_stats("the cat sat on the mat", &["the cat sat on the mat"], &o);
        let sc = score_from_stats(&s, &o).expect("score");
        assert!((sc.score - 100.0).abs() < 1e-12);
        assert_eq!(sc.bp, 1.0);
    }

    #[test]
    fn clipping_and_closest_length() {
        let o = opts("sacrebleu", "none", false);
        let s = segment_stats("the the the the", &["the cat", "the the cat sat x"], &o);
        // 'the' clipped to its max count over the references (2), 'the the' to 1; the
        // closest reference length is 5 (|4 - 5| = 1 < |4 - 2| = 2)
        assert_eq!(s, [4, 5, 2, 1, 0, 0, 4, 3, 2, 1]);
    }

    #[test]
    fn empty_hypothesis_scores_zero() {
        for (flavor, smooth) in [("sacrebleu", "exp"), ("evaluate", "add-one")] {
            let o = opts(flavor, smooth, true);
            let s = segment_stats("", &["a b c"], &o);
            assert_eq!(score_from_stats(&s, &o).expect("score").score, 0.0);
        }
    }

    #[test]
    fn evaluate_rejects_empty_references() {
        let o = opts("evaluate", "add-one", false);
        let s = segment_stats("a b", &[""], &o);
        assert!(score_from_stats(&s, &o).is_err());
    }

    #[test]
    fn missing_references_are_an_error() {
        let o = opts("sacrebleu", "exp", true);
        let refs: Vec<Vec<Option<&str>>> = vec![vec![None]];
        assert!(sentence_scores(&["a"], &refs, &o).is_err());
        assert!(sentence_scores(&["a", "b"], &[vec![Some("a")]], &o).is_err());
    }

    #[test]
    fn compensated_sum_as_cpython_312() {
        // sum([0.1] * 10) is 0.9999999999999999 up to 3.11 and 1.0 from 3.12
        assert_eq!(
            py_sum(std::iter::repeat(0.1).take(10), false),
            0.999_999_999_999_999_9
        );
        assert_eq!(py_sum(std::iter::repeat(0.1).take(10), true), 1.0);
    }

    #[test]
    fn bad_options() {
        assert!(Options::new("14a", "sacrebleu", "exp", None, true, 4).is_err());
        assert!(Options::new("13a", "sacrebleu", "add-one", None, true, 4).is_err());
        assert!(Options::new("13a", "evaluate", "exp", None, true, 4).is_err());
        assert!(Options::new("13a", "sacrebleu", "floor", Some(f64::NAN), true, 4).is_err());
        assert!(Options::new("13a", "sacrebleu", "exp", None, true, 0).is_err());
    }

    #[test]
    fn batches_stop_when_cancelled() {
        use crate::cancel::testing::cancel_after;
        use crate::cancel::Token;
        use std::time::Duration;
        let o = opts("sacrebleu", "exp", true);
        let hyps: Vec<String> = (0..100).map(|i| format!("a b c d {i} e f")).collect();
        let refs: Vec<Vec<Option<String>>> = (0..100)
            .map(|i| vec![Some(format!("a b c {i} d e"))])
            .collect();
        let token = Token::new();
        // uncancelled: the same bits
        assert_eq!(
            token.scope(|| batch_stats(&hyps, &refs, &o)),
            batch_stats(&hyps, &refs, &o)
        );
        assert_eq!(
            token.scope(|| corpus_stats(&hyps, &refs, &o)),
            corpus_stats(&hyps, &refs, &o)
        );
        assert_eq!(
            token.scope(|| sentence_scores(&hyps, &refs, &o)),
            sentence_scores(&hyps, &refs, &o)
        );
        token.cancel();
        for few in [1, 100] {
            let (h, r) = (&hyps[..few], &refs[..few]);
            assert_eq!(
                token.scope(|| batch_stats(h, r, &o)),
                Err(Error::Interrupted)
            );
            assert_eq!(
                token.scope(|| corpus_stats(h, r, &o)),
                Err(Error::Interrupted)
            );
            assert_eq!(
                token.scope(|| sentence_scores(h, r, &o)),
                Err(Error::Interrupted)
            );
        }
        // stopped while it runs (two million segments: seconds)
        let (hyps, refs): (Vec<&String>, Vec<&Vec<Option<String>>>) = (
            hyps.iter().cycle().take(2_000_000).collect(),
            refs.iter().cycle().take(2_000_000).collect(),
        );
        let hyps: Vec<&str> = hyps.into_iter().map(String::as_str).collect();
        let refs: Vec<Vec<Option<&str>>> = refs
            .into_iter()
            .map(|r| r.iter().map(|x| x.as_deref()).collect())
            .collect();
        let (out, late) = cancel_after(Duration::from_millis(50), || {
            sentence_scores(&hyps, &refs, &o)
        });
        assert_eq!(out, Err(Error::Interrupted));
        assert!(late < Duration::from_secs(1), "{late:?}");
    }
}
