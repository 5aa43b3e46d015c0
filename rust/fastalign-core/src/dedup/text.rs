//! Text normalization and shingling: one pass from a document to its normalized bytes, its
//! word spans, and its 64-bit shingle hashes.
//!
//! Normalization (each step optional, all on by default in the Python API):
//! NFKC, then lowercase (Unicode's full mapping), then every punctuation or symbol character
//! (Unicode general category P* or S*) becomes a word boundary, then runs of whitespace
//! (Python's `str.isspace()` set) collapse to one space and the ends are trimmed. Words are
//! the non-empty pieces between boundaries. ASCII documents take a byte-level fast path that
//! gives the same bytes as the general path (tested).

use unicode_normalization::UnicodeNormalization;
use xxhash_rust::xxh3::xxh3_64;

use crate::unicode::{is_punct, is_py_space, is_symbol};

/// Which normalization steps run before shingling or exact hashing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Normalize {
    /// Unicode NFKC (compatibility composition: full-width forms, ligatures, ...).
    pub nfkc: bool,
    /// Unicode lowercase (with final sigma folded to sigma, so that case never matters).
    pub lowercase: bool,
    /// Punctuation and symbols (general category P* or S*) become word boundaries.
    pub punctuation: bool,
    /// Whitespace runs collapse to one space, ends trimmed (always true for word shingles).
    pub whitespace: bool,
}

impl Normalize {
    /// Every step on.
    pub const ALL: Normalize = Normalize {
        nfkc: true,
        lowercase: true,
        punctuation: true,
        whitespace: true,
    };
    /// No step: the text as given.
    pub const NONE: Normalize = Normalize {
        nfkc: false,
        lowercase: false,
        punctuation: false,
        whitespace: false,
    };
}

/// What a shingle is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// `n` consecutive words.
    Word,
    /// `n` consecutive characters of the normalized text.
    Char,
}

impl Unit {
    /// `"word"` or `"char"`.
    pub fn parse(name: &str) -> crate::Result<Self> {
        match name {
            "word" => Ok(Unit::Word),
            "char" => Ok(Unit::Char),
            other => Err(crate::Error::invalid(format!(
                "unit must be 'word' or 'char', got {other:?}"
            ))),
        }
    }
}

/// A normalized document: its bytes (UTF-8) and the byte spans of its words.
#[derive(Default, Debug)]
pub struct Normalized {
    pub bytes: Vec<u8>,
    pub words: Vec<(u32, u32)>,
}

impl Normalized {
    /// The normalized text.
    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 characters are ever pushed.
        std::str::from_utf8(&self.bytes).unwrap_or_default()
    }
}

/// Punctuation or symbol: general category P* or S*.
#[inline]
fn is_boundary_class(c: char) -> bool {
    is_punct(c) || is_symbol(c)
}

/// Builds the normalized text into `out` (cleared first).
pub fn normalize_into(text: &str, norm: Normalize, out: &mut Normalized) {
    out.bytes.clear();
    out.words.clear();
    if text.is_ascii() {
        normalize_ascii(text.as_bytes(), norm, out);
    } else if norm.nfkc {
        normalize_chars(text.nfkc(), norm, out);
    } else {
        normalize_chars(text.chars(), norm, out);
    }
}

/// The state machine both paths share: a boundary closes the current word; with whitespace
/// collapsing, one space separates words and the ends are trimmed.
struct Builder<'a> {
    out: &'a mut Normalized,
    norm: Normalize,
    word_start: Option<usize>,
    pending_space: bool,
}

impl<'a> Builder<'a> {
    fn new(out: &'a mut Normalized, norm: Normalize) -> Self {
        Builder {
            out,
            norm,
            word_start: None,
            pending_space: false,
        }
    }

    #[inline]
    fn close_word(&mut self) {
        if let Some(s) = self.word_start.take() {
            let e = self.out.bytes.len();
            self.out.words.push((s as u32, e as u32));
        }
    }

    /// A whitespace character (`raw` is its UTF-8 when whitespace is kept as is).
    #[inline]
    fn space(&mut self, raw: &[u8]) {
        self.close_word();
        if self.norm.whitespace {
            self.pending_space = !self.out.bytes.is_empty();
        } else {
            self.out.bytes.extend_from_slice(raw);
        }
    }

    /// A punctuation or symbol character that becomes a boundary.
    #[inline]
    fn boundary(&mut self) {
        self.space(b" ");
    }

    #[inline]
    fn word_bytes(&mut self, b: &[u8]) {
        if self.word_start.is_none() {
            if self.pending_space {
                self.out.bytes.push(b' ');
                self.pending_space = false;
            }
            self.word_start = Some(self.out.bytes.len());
        }
        self.out.bytes.extend_from_slice(b);
    }

    fn finish(mut self) {
        self.close_word();
    }
}

#[inline]
const fn ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f)
}

/// Byte classes of the ASCII fast path: 0 word, 1 whitespace, 2 punctuation or symbol.
const ASCII_CLASS: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut c = 0;
    while c < 128 {
        let b = c as u8;
        t[c] = if ascii_space(b) {
            1
        } else if b.is_ascii_punctuation() {
            2
        } else {
            0
        };
        c += 1;
    }
    t
};

fn normalize_ascii(bytes: &[u8], norm: Normalize, out: &mut Normalized) {
    out.bytes.reserve(bytes.len());
    if norm.whitespace {
        // Whole words at a time: skip boundaries, copy the word, lowercase it in place.
        let limit = if norm.punctuation { 2 } else { 1 };
        let boundary = |b: u8| ASCII_CLASS[b as usize] != 0 && ASCII_CLASS[b as usize] <= limit;
        let (n, mut i) = (bytes.len(), 0);
        loop {
            while i < n && boundary(bytes[i]) {
                i += 1;
            }
            if i == n {
                break;
            }
            let start = i;
            while i < n && !boundary(bytes[i]) {
                i += 1;
            }
            if !out.bytes.is_empty() {
                out.bytes.push(b' ');
            }
            let ws = out.bytes.len();
            out.bytes.extend_from_slice(&bytes[start..i]);
            if norm.lowercase {
                out.bytes[ws..].make_ascii_lowercase();
            }
            out.words.push((ws as u32, out.bytes.len() as u32));
        }
        return;
    }
    let mut b = Builder::new(out, norm);
    for &c in bytes {
        if ascii_space(c) {
            b.space(&[c]);
        } else if norm.punctuation && c.is_ascii_punctuation() {
            // All 32 ASCII punctuation characters are Unicode P* or S*.
            b.boundary();
        } else {
            let c = if norm.lowercase {
                c.to_ascii_lowercase()
            } else {
                c
            };
            b.word_bytes(&[c]);
        }
    }
    b.finish();
}

fn normalize_chars(chars: impl Iterator<Item = char>, norm: Normalize, out: &mut Normalized) {
    let mut b = Builder::new(out, norm);
    let mut buf = [0u8; 4];
    let mut push = |b: &mut Builder<'_>, c: char| {
        if is_py_space(c) {
            b.space(c.encode_utf8(&mut buf).as_bytes());
        } else if norm.punctuation && is_boundary_class(c) {
            b.boundary();
        } else {
            b.word_bytes(c.encode_utf8(&mut buf).as_bytes());
        }
    };
    for c in chars {
        if norm.lowercase {
            for l in c.to_lowercase() {
                // final sigma folded to sigma: case-insensitive, position-independent
                push(&mut b, if l == 'ς' { 'σ' } else { l });
            }
        } else {
            push(&mut b, c);
        }
    }
    b.finish();
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// MurmurHash3's 64-bit finalizer: a bijection on u64 that mixes every input bit into every
/// output bit.
#[inline]
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The hash of one normalized word: 8 bytes at a time (the last chunk zero-padded), the length
/// mixed in.
#[inline]
pub fn word_hash(bytes: &[u8]) -> u64 {
    word_hash_in(bytes, 0, bytes.len(), false)
}

#[inline(always)]
fn mix_chunk(h: u64, x: u64) -> u64 {
    (h ^ x).wrapping_mul(0xff51_afd7_ed55_8ccd).rotate_left(31)
}

/// ASCII uppercase letters of 8 packed ASCII bytes made lowercase (SWAR: no byte reaches
/// 0x80, so the additions carry into no neighbour).
#[inline(always)]
fn swar_lower(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let ge_a = x.wrapping_add(ONES * (0x80 - b'A' as u64));
    let gt_z = x.wrapping_add(ONES * (0x80 - b'Z' as u64 - 1));
    let upper = (ge_a ^ gt_z) & (ONES * 0x80);
    x | (upper >> 2)
}

/// Loads up to 8 bytes of `bytes[at..at + len]` little-endian, zero above `len` (reads past
/// `len` within `bytes` when it can, to avoid a copy).
#[inline(always)]
fn load_partial(bytes: &[u8], at: usize, len: usize) -> u64 {
    debug_assert!(len <= 8);
    if at + 8 <= bytes.len() {
        let c = &bytes[at..at + 8];
        let x = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        if len == 8 {
            x
        } else {
            x & ((1u64 << (8 * len)) - 1)
        }
    } else {
        let mut last = [0u8; 8];
        last[..len].copy_from_slice(&bytes[at..at + len]);
        u64::from_le_bytes(last)
    }
}

/// [`word_hash`] of `text[start..end]`, lowercased first when asked (ASCII text only).
#[inline(always)]
fn word_hash_in(text: &[u8], start: usize, end: usize, lower: bool) -> u64 {
    let len = end - start;
    let mut h = (len as u64).wrapping_mul(K) ^ 0x2545_F491_4F6C_DD1D;
    let mut at = start;
    while at < end {
        let x = load_partial(text, at, (end - at).min(8));
        h = mix_chunk(h, if lower { swar_lower(x) } else { x });
        at += 8;
    }
    // Not finished by fmix64: bijective in the word for words of up to 8 bytes, which is all
    // the shingle combiner (multiplies, then fmix64) needs.
    h
}

const ONES: u64 = 0x0101_0101_0101_0101;

/// 0x80 in each of 8 packed ASCII bytes that lies in `[lo, hi]` (no byte reaches 0x80, so no
/// addition carries into a neighbour).
#[inline(always)]
fn in_range(x: u64, lo: u8, hi: u8) -> u64 {
    let ge = x.wrapping_add(ONES * (0x80 - lo as u64));
    let gt = x.wrapping_add(ONES * (0x7f - hi as u64));
    ge & !gt & (ONES * 0x80)
}

/// The boundary bytes among 8 ASCII bytes, one bit each: whitespace (Python's ASCII set:
/// 9-13 and 28-32), and with `punct` the 32 punctuation characters.
#[inline(always)]
fn boundary_bits(x: u64, punct: bool) -> u64 {
    let m = in_range(x, 9, 13)
        | if punct {
            in_range(x, 28, 47) | in_range(x, 58, 64) | in_range(x, 91, 96) | in_range(x, 123, 126)
        } else {
            in_range(x, 28, 32)
        };
    // gather the 8 high bits into the low byte
    ((m >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// The word hashes of an ASCII text straight from its bytes (no normalized copy): equal to
/// hashing the words [`normalize_into`] gives (tested). Boundaries are found 64 bytes at a
/// time as a bit mask; words are the runs of zero bits.
pub fn ascii_word_hashes(bytes: &[u8], norm: Normalize, out: &mut Vec<u64>) {
    out.clear();
    let (punct, lower) = (norm.punctuation, norm.lowercase);
    let n = bytes.len();
    let mut word_start: Option<usize> = None;
    let mut base = 0;
    while base < n {
        let mut mask = 0u64; // bit k: byte base + k is a boundary (bytes past the end are)
        for k in 0..8 {
            let at = base + 8 * k;
            let bits = if at + 8 <= n {
                boundary_bits(load_partial(bytes, at, 8), punct)
            } else if at < n {
                let len = n - at;
                boundary_bits(load_partial(bytes, at, len), punct) | (0xff << len) & 0xff
            } else {
                0xff
            };
            mask |= bits << (8 * k);
        }
        // transitions: a start where a boundary (or the block's left edge outside a word) is
        // followed by a word byte, an end where a word byte is followed by a boundary
        let words = !mask;
        let prev_in_word = word_start.is_some() as u64;
        let starts = words & !((words << 1) | prev_in_word);
        let ends = mask & ((words << 1) | prev_in_word);
        let mut events = starts | ends;
        while events != 0 {
            let k = events.trailing_zeros() as usize;
            events &= events - 1;
            let pos = base + k;
            if starts >> k & 1 == 1 {
                word_start = Some(pos);
            } else if let Some(s) = word_start.take() {
                out.push(word_hash_in(bytes, s, pos, lower));
            }
        }
        base += 64;
    }
    if let Some(s) = word_start {
        out.push(word_hash_in(bytes, s, n, lower));
    }
}

/// The `n`-gram shingle hashes of a sequence of word hashes (one shingle of all the words when
/// there are fewer than `n`; none for no words).
pub fn word_shingles(w: &[u64], n: usize, out: &mut Vec<u64>) {
    out.clear();
    if w.is_empty() {
        return;
    }
    let n = n.min(w.len());
    if n <= SHINGLE_MULTIPLIERS.len() {
        // independent multiplies (no dependency chain), then one full mix
        let c = &SHINGLE_MULTIPLIERS[..n];
        out.extend(w.windows(n).map(|win| {
            let h = win
                .iter()
                .zip(c)
                .fold(n as u64, |h, (&x, &m)| h.wrapping_add(x.wrapping_mul(m)));
            fmix64(h)
        }));
    } else {
        out.extend(w.windows(n).map(|win| {
            let mut h = n as u64;
            for &x in win {
                h = (h.rotate_left(23) ^ x).wrapping_mul(K);
            }
            fmix64(h)
        }));
    }
}

/// Distinct odd constants weighting the words of an n-gram by position.
const SHINGLE_MULTIPLIERS: [u64; 8] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0xD6E8_FEB8_6659_FD93,
    0xA076_1D64_78BD_642F,
    0xE703_7ED1_A0B4_28DB,
    0x8EBC_6AF0_9C88_C6E3,
    0x5899_65CC_7537_4CC3,
];

/// The shingle hashes of a normalized document (not deduplicated): word or character
/// `n`-grams; a non-empty document shorter than `n` units is one shingle; an empty one has
/// none. `word_hashes` is scratch space.
pub fn shingles_into(
    doc: &Normalized,
    unit: Unit,
    n: usize,
    word_hashes: &mut Vec<u64>,
    out: &mut Vec<u64>,
) {
    out.clear();
    match unit {
        Unit::Word => {
            word_hashes.clear();
            word_hashes.extend(
                doc.words
                    .iter()
                    .map(|&(s, e)| word_hash(&doc.bytes[s as usize..e as usize])),
            );
            word_shingles(word_hashes, n, out);
        }
        Unit::Char => {
            let bytes = &doc.bytes;
            if bytes.is_empty() {
                return;
            }
            if bytes.is_ascii() {
                let n = n.min(bytes.len());
                out.extend(bytes.windows(n).map(xxh3_64));
            } else {
                let s = doc.as_str();
                let starts: Vec<usize> =
                    s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
                let chars = starts.len() - 1;
                let n = n.min(chars);
                out.extend((0..=chars - n).map(|i| xxh3_64(&bytes[starts[i]..starts[i + n]])));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn norm(text: &str, n: Normalize) -> (String, Vec<String>) {
        let mut out = Normalized::default();
        normalize_into(text, n, &mut out);
        let words = out
            .words
            .iter()
            .map(|&(s, e)| out.as_str()[s as usize..e as usize].to_owned())
            .collect();
        (out.as_str().to_owned(), words)
    }

    #[test]
    fn examples() {
        let (t, w) = norm("  Hello,   WORLD!\tIt's ﬁne  ", Normalize::ALL);
        assert_eq!(t, "hello world it s fine");
        assert_eq!(w, ["hello", "world", "it", "s", "fine"]);
        let (t, w) = norm("Ｆｕｌｌ－width $5 ", Normalize::ALL);
        assert_eq!(t, "full width 5");
        assert_eq!(w, ["full", "width", "5"]);
        let (t, w) = norm(" a  B,c ", Normalize::NONE);
        assert_eq!(t, " a  B,c ");
        assert_eq!(w, ["a", "B,c"]);
        assert_eq!(norm("", Normalize::ALL).0, "");
        assert_eq!(norm(" ,;! ", Normalize::ALL).1.len(), 0);
    }

    proptest! {
        #[test]
        fn ascii_fast_path_equals_the_general_path(
            s in "[a-zA-Z0-9 ,.!$_\t\n\u{1c}]{0,40}",
            nfkc: bool, lowercase: bool, punctuation: bool, whitespace: bool,
        ) {
            let n = Normalize { nfkc, lowercase, punctuation, whitespace };
            let mut fast = Normalized::default();
            normalize_ascii(s.as_bytes(), n, &mut fast);
            let mut slow = Normalized::default();
            normalize_chars(s.chars(), n, &mut slow);
            prop_assert_eq!(fast.bytes, slow.bytes);
            prop_assert_eq!(fast.words, slow.words);
        }

        #[test]
        fn fused_ascii_word_hashes_equal_hashing_the_normalized_words(
            bytes in prop::collection::vec(
                prop_oneof![0u8..128, Just(b' '), b'a'..=b'z', b'A'..=b'Z'], 0..300),
            lowercase: bool, punctuation: bool,
        ) {
            let s = String::from_utf8(bytes).expect("ascii");
            let n = Normalize { nfkc: true, lowercase, punctuation, whitespace: true };
            let mut doc = Normalized::default();
            normalize_into(&s, n, &mut doc);
            let want: Vec<u64> = doc.words.iter()
                .map(|&(a, b)| word_hash(&doc.bytes[a as usize..b as usize])).collect();
            let mut got = Vec::new();
            ascii_word_hashes(s.as_bytes(), n, &mut got);
            prop_assert_eq!(got, want);
        }

        #[test]
        fn swar_lowercase_is_ascii_lowercase(x: [u8; 8]) {
            let x = x.map(|b| b & 0x7f);
            let got = swar_lower(u64::from_le_bytes(x)).to_le_bytes();
            prop_assert_eq!(got, x.map(|b| b.to_ascii_lowercase()));
        }

        #[test]
        fn words_are_the_python_split_of_the_text(s in "\\PC{0,40}") {
            let mut out = Normalized::default();
            normalize_into(&s, Normalize { punctuation: false, ..Normalize::ALL }, &mut out);
            let text = out.as_str();
            let split: Vec<&str> = crate::unicode::py_split(text).collect();
            let words: Vec<&str> =
                out.words.iter().map(|&(a, b)| &text[a as usize..b as usize]).collect();
            prop_assert_eq!(split, words);
        }

        #[test]
        fn shingle_count(words in prop::collection::vec("[a-z]{1,5}", 0..20), n in 1usize..7) {
            let text = words.join(" ");
            let mut doc = Normalized::default();
            normalize_into(&text, Normalize::ALL, &mut doc);
            let (mut scratch, mut out) = (Vec::new(), Vec::new());
            shingles_into(&doc, Unit::Word, n, &mut scratch, &mut out);
            let want = if words.is_empty() { 0 } else { words.len().saturating_sub(n) + 1 };
            prop_assert_eq!(out.len(), want);
            shingles_into(&doc, Unit::Char, n, &mut scratch, &mut out);
            let chars = text.chars().count();
            let want = if chars == 0 { 0 } else { chars.saturating_sub(n) + 1 };
            prop_assert_eq!(out.len(), want);
        }
    }
}
