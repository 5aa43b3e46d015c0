//! The tokenizers of sacrebleu 2.6 (`13a`, `intl`, `zh`, `char`, `none`), character for
//! character, including its quirks.
//!
//! sacrebleu's tokenizers are sequences of Python regex substitutions followed by
//! `' '.join(line.split())`. Each substitution here is one left-to-right scan that applies
//! the pattern at the first position where it matches and resumes after the match, which is
//! what `re.sub` does for these fixed-width patterns. The `13a` patterns are ASCII-only, so
//! their scans run over UTF-8 bytes: a multi-byte character never matches a class of ASCII
//! characters and spaces are only ever inserted at character boundaries.
//!
//! "Whitespace" is Python's `str.isspace()` set (`split`, `strip`, `rstrip`), which holds
//! `\x1c`-`\x1f` besides Unicode's White_Space property that Rust's own methods use
//! ([`crate::unicode`] holds it and the other character classes).

use crate::unicode::{is_number, is_punct, is_py_space, is_symbol, py_split, py_strip};

/// A sacrebleu tokenizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tokenizer {
    /// `13a`: mteval-v13a, sacrebleu's default.
    Thirteen,
    /// `intl`: mteval-v14 international (Unicode punctuation and symbols).
    Intl,
    /// `zh`: CJK characters spaced out, then the `13a` regexes (without 13a's preprocessing).
    Zh,
    /// `char`: every character is a token.
    Char,
    /// `none`: whitespace split only.
    None,
}

impl Tokenizer {
    /// The tokenizer named as sacrebleu names it.
    pub fn parse(name: &str) -> crate::Result<Self> {
        Ok(match name {
            "13a" => Tokenizer::Thirteen,
            "intl" => Tokenizer::Intl,
            "zh" => Tokenizer::Zh,
            "char" => Tokenizer::Char,
            "none" => Tokenizer::None,
            other => {
                return Err(crate::Error::invalid(format!(
                    "tokenize must be one of '13a', 'intl', 'zh', 'char', 'none', got {other:?}"
                )))
            }
        })
    }

    /// The name sacrebleu's signature prints.
    pub fn signature(self) -> &'static str {
        match self {
            Tokenizer::Thirteen => "13a",
            Tokenizer::Intl => "intl",
            Tokenizer::Zh => "zh",
            Tokenizer::Char => "char",
            Tokenizer::None => "none",
        }
    }

    /// The tokenized line, exactly as sacrebleu's tokenizer returns it (tokens joined by one
    /// space, except `none`, which returns its input unchanged).
    pub fn apply(self, line: &str) -> String {
        match self {
            Tokenizer::Thirteen => tokenize_13a(line),
            Tokenizer::Intl => tokenize_intl(line),
            Tokenizer::Zh => tokenize_zh(line),
            Tokenizer::Char => {
                let mut out = String::with_capacity(2 * line.len());
                for (i, c) in line.chars().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push(c);
                }
                out
            }
            Tokenizer::None => line.to_owned(),
        }
    }
}

impl Tokenizer {
    /// The tokens of `line` as byte spans of the returned text (the input itself, or its
    /// rewritten form), without building the joined string sacrebleu builds.
    pub fn spans<'a>(self, line: &'a str) -> (std::borrow::Cow<'a, str>, Vec<(usize, usize)>) {
        use std::borrow::Cow;
        let mut spans = Vec::with_capacity(line.len() / 4 + 4);
        let text = match self {
            Tokenizer::Thirteen => {
                let s = preprocess_13a(line);
                regexp_tokens(&s, true, false, &mut spans);
                s
            }
            Tokenizer::Zh => {
                let s = py_strip(line);
                regexp_tokens(s, false, true, &mut spans);
                Cow::Borrowed(s)
            }
            Tokenizer::Intl => {
                let s = tokenize_intl(line);
                let mut at = 0;
                for tok in s.split(' ') {
                    if !tok.is_empty() {
                        spans.push((at, at + tok.len()));
                    }
                    at += tok.len() + 1;
                }
                Cow::Owned(s)
            }
            Tokenizer::Char => {
                for (i, c) in line.char_indices() {
                    if !is_py_space(c) {
                        spans.push((i, i + c.len_utf8()));
                    }
                }
                Cow::Borrowed(line)
            }
            Tokenizer::None => {
                let mut start = None;
                for (i, c) in line.char_indices() {
                    if is_py_space(c) {
                        if let Some(s) = start.take() {
                            spans.push((s, i));
                        }
                    } else if start.is_none() {
                        start = Some(i);
                    }
                }
                if let Some(s) = start {
                    spans.push((s, line.len()));
                }
                Cow::Borrowed(line)
            }
        };
        (text, spans)
    }
}

/// `13a`'s first class: `[\{-\~\[-\` -\&\(-\+\:-\@\/]`.
#[inline]
const fn is_13a_symbol(b: u8) -> bool {
    matches!(b, b'{'..=b'~' | b'['..=b'`' | b' '..=b'&' | b'('..=b'+' | b':'..=b'@' | b'/')
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cls {
    Digit,
    Dot, // `.` or `,`
    Dash,
    Space,
    Isolated, // a 13a symbol other than space, or (zh) a CJK character
    Other,
}

#[inline]
fn class(c: char, zh: bool) -> Cls {
    if c.is_ascii() {
        let b = c as u8;
        match b {
            b'0'..=b'9' => Cls::Digit,
            b'.' | b',' => Cls::Dot,
            b'-' => Cls::Dash,
            b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r' | b'\x1c'..=b'\x1f' | b' ' => Cls::Space,
            _ if is_13a_symbol(b) => Cls::Isolated,
            _ => Cls::Other,
        }
    } else if is_py_space(c) {
        Cls::Space
    } else if zh && is_zh_char(c) {
        Cls::Isolated
    } else {
        Cls::Other
    }
}

/// The tokens sacrebleu's `TokenizerRegexp` gives for `line`, as slices of `line`, in one
/// pass and without copying (`pad`: 13a's `' ' + line + ' '`; `zh`: CJK characters are
/// spaced out first, as `TokenizerZh` does).
///
/// The four substitutions only ever insert spaces, so a token is a run of the input, and a
/// character is cut out as a token of its own when one of them puts spaces on both of its
/// sides: (1) a 13a symbol (or a CJK character); (2) `([^0-9])([.,])` matching at (k-1, k);
/// (3) `([.,])([^0-9])` matching at (k, k+1) in the output of (2); (4) `([0-9])(-)`. With
/// `m2`, `m3` the positions where (2) and (3) match, `re.sub`'s left-to-right,
/// non-overlapping scan gives
///   m2[k] = dot(k) && !digit(k-1) && !m2[k-1]   (k-1 consumed by the match at k-2)
///   m3[k] = dot(k) && right(k) && !(m3[k-1] && !m2[k-1] && !m2[k])
///   right(k) = m2[k] || m2[k+1] || !digit(k+1)  (a space that (2) inserted after k, or the
///              next character; none at the end of an unpadded line unless m2[k])
///   m4[k] = dash(k) && digit(k-1)
/// Symbols and the spaces (1) puts around them are neither digits, `.`/`,` nor `-`, so the
/// later patterns decide on the original neighbours; a space (2) or (3) inserts is consumed
/// in place of the character after it, which is why `m3` looks at `m2` around k.
/// `reference_passes` in the tests runs the four substitutions literally for comparison.
pub fn regexp_tokens(line: &str, pad: bool, zh: bool, out: &mut Vec<(usize, usize)>) {
    if line.is_ascii() {
        regexp_tokens_ascii(line.as_bytes(), pad, out);
    } else {
        regexp_tokens_general(line, pad, zh, out);
    }
}

/// [`regexp_tokens`] for any text.
fn regexp_tokens_general(line: &str, pad: bool, zh: bool, out: &mut Vec<(usize, usize)>) {
    // classes of every character first (a table lookup per ASCII byte; non-ASCII characters
    // decoded), then the recurrences over the classes
    let bytes = line.as_bytes();
    let mut cls: Vec<(u32, Cls)> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            cls.push((i as u32, ASCII_CLASS[b as usize]));
            i += 1;
        } else {
            let c = line[i..].chars().next().unwrap_or(' ');
            cls.push((i as u32, class(c, zh)));
            i += c.len_utf8();
        }
    }
    let edge = if pad { Some(Cls::Space) } else { None };
    let n = cls.len();
    let mut st = Recurrence::new(edge, cls.first().map(|c| c.1));
    let mut tokens = TokenSpans { start: None, out };
    for k in 0..n {
        let (pos, ck) = (cls[k].0 as usize, cls[k].1);
        let end = if k + 1 < n {
            cls[k + 1].0 as usize
        } else {
            bytes.len()
        };
        let next = if k + 1 < n { Some(cls[k + 1].1) } else { edge };
        let cut = st.step(ck, next);
        tokens.push(ck, cut, pos, end);
    }
    tokens.finish(bytes.len());
}

/// The state of the four substitutions' matches along the text (see [`regexp_tokens`]).
struct Recurrence {
    prev: Option<Cls>,
    m2_prev: bool,
    m3_prev: bool,
    m2_cur: bool,
}

impl Recurrence {
    fn new(edge: Option<Cls>, first: Option<Cls>) -> Self {
        let m2_cur = first == Some(Cls::Dot) && matches!(edge, Some(p) if p != Cls::Digit);
        Recurrence {
            prev: edge,
            m2_prev: false,
            m3_prev: false,
            m2_cur,
        }
    }

    /// Advance over a character of class `ck` followed by `next`; whether substitutions
    /// (2)-(4) cut it out as a token of its own.
    #[inline]
    fn step(&mut self, ck: Cls, next: Option<Cls>) -> bool {
        let m2_next = next == Some(Cls::Dot) && ck != Cls::Digit && !self.m2_cur;
        let right = self.m2_cur || m2_next || matches!(next, Some(c) if c != Cls::Digit);
        let consumed3 = self.m3_prev && !self.m2_prev && !self.m2_cur;
        let m3 = ck == Cls::Dot && right && !consumed3;
        let m4 = ck == Cls::Dash && self.prev == Some(Cls::Digit);
        let cut = self.m2_cur || m3 || m4;
        self.m2_prev = self.m2_cur;
        self.m3_prev = m3;
        self.m2_cur = m2_next;
        self.prev = Some(ck);
        cut
    }

    /// Skip a run of ordinary characters ending before `next`: every match is false there.
    #[inline]
    fn skip_run(&mut self, next: Option<Cls>) {
        self.prev = Some(Cls::Other);
        self.m2_prev = false;
        self.m3_prev = false;
        self.m2_cur = next == Some(Cls::Dot);
    }
}

/// Token spans collected as characters are classified.
struct TokenSpans<'o> {
    start: Option<usize>,
    out: &'o mut Vec<(usize, usize)>,
}

impl TokenSpans<'_> {
    /// A character at `pos..end` of class `ck`; `cut`: the substitutions isolate it.
    #[inline]
    fn push(&mut self, ck: Cls, cut: bool, pos: usize, end: usize) {
        if ck == Cls::Space {
            if let Some(s) = self.start.take() {
                self.out.push((s, pos));
            }
        } else if ck == Cls::Isolated || cut {
            if let Some(s) = self.start.take() {
                self.out.push((s, pos));
            }
            self.out.push((pos, end));
        } else if self.start.is_none() {
            self.start = Some(pos);
        }
    }

    fn finish(self, len: usize) {
        if let Some(s) = self.start {
            self.out.push((s, len));
        }
    }
}

/// [`regexp_tokens`] for ASCII text: classes straight from the bytes, and runs of
/// ordinary characters (where every recurrence is false) skipped in a tight loop.
fn regexp_tokens_ascii(bytes: &[u8], pad: bool, out: &mut Vec<(usize, usize)>) {
    let n = bytes.len();
    let edge = if pad { Some(Cls::Space) } else { None };
    let at = |k: usize| -> Option<Cls> {
        if k < n {
            Some(ASCII_CLASS[bytes[k] as usize])
        } else {
            edge
        }
    };
    let mut st = Recurrence::new(edge, at(0).filter(|_| n > 0));
    let mut tokens = TokenSpans { start: None, out };
    let mut k = 0;
    while k < n {
        let ck = ASCII_CLASS[bytes[k] as usize];
        if ck == Cls::Other && !st.m3_prev {
            // an ordinary character: inside (or starting) a token; skip the whole run
            if tokens.start.is_none() {
                tokens.start = Some(k);
            }
            let mut j = k + 1;
            while j < n && ASCII_CLASS[bytes[j] as usize] == Cls::Other {
                j += 1;
            }
            st.skip_run(at(j));
            k = j;
            continue;
        }
        let cut = st.step(ck, at(k + 1));
        tokens.push(ck, cut, k, k + 1);
        k += 1;
    }
    tokens.finish(n);
}

/// The class of every ASCII byte (see [`class`]).
const ASCII_CLASS: [Cls; 128] = {
    let mut t = [Cls::Other; 128];
    let mut b = 0;
    while b < 128 {
        t[b] = match b as u8 {
            b'0'..=b'9' => Cls::Digit,
            b'.' | b',' => Cls::Dot,
            b'-' => Cls::Dash,
            b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r' | b'\x1c'..=b'\x1f' | b' ' => Cls::Space,
            x if is_13a_symbol(x) => Cls::Isolated,
            _ => Cls::Other,
        };
        b += 1;
    }
    t
};

/// `' '.join` of the spans of `line`.
fn join_spans(line: &str, spans: &[(usize, usize)]) -> String {
    let mut out = String::with_capacity(line.len() + spans.len());
    for (k, &(a, b)) in spans.iter().enumerate() {
        if k > 0 {
            out.push(' ');
        }
        out.push_str(&line[a..b]);
    }
    out
}

/// sacrebleu's `TokenizerRegexp`: the four `13a` substitutions, then whitespace join.
#[cfg(test)]
fn regexp_passes(line: &str) -> String {
    let mut spans = Vec::new();
    regexp_tokens(line, false, false, &mut spans);
    join_spans(line, &spans)
}

/// `' '.join(line.split())`.
fn join_tokens(s: &str) -> String {
    py_split(s).collect::<Vec<_>>().join(" ")
}

/// 13a's preprocessing: `<skipped>` dropped, `-\n` joined, `\n` to space, four entities.
pub fn preprocess_13a(line: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    // str.replace in sacrebleu's order; each only when its pattern occurs (no copy otherwise)
    fn rep<'a>(s: Cow<'a, str>, from: &str, to: &str) -> Cow<'a, str> {
        if s.contains(from) {
            Cow::Owned(s.replace(from, to))
        } else {
            s
        }
    }
    let mut s = Cow::Borrowed(line);
    s = rep(s, "<skipped>", "");
    s = rep(s, "-\n", "");
    s = rep(s, "\n", " ");
    if s.contains('&') {
        s = rep(s, "&quot;", "\"");
        s = rep(s, "&amp;", "&");
        s = rep(s, "&lt;", "<");
        s = rep(s, "&gt;", ">");
    }
    s
}

/// sacrebleu's `Tokenizer13a`.
pub fn tokenize_13a(line: &str) -> String {
    let s = preprocess_13a(line);
    let mut spans = Vec::new();
    regexp_tokens(&s, true, false, &mut spans);
    join_spans(&s, &spans)
}

/// The code points sacrebleu's `zh` tokenizer spaces out. Its table is a list of string
/// ranges compared as Python strings; two of its entries are written `u'\u20000'` and
/// `u'\u2f800'`, which Python reads as two-character strings (`'\u2000' + '0'`), so those
/// ranges cover U+2001..=U+2A6D and U+2F81..=U+2FA1 of the Basic Multilingual Plane and
/// no supplementary-plane ideograph at all. These are the resulting intervals, merged.
const ZH_RANGES: [(u32, u32); 13] = [
    (0x2001, 0x2A6D),
    (0x2E80, 0x2FDF),
    (0x2FF0, 0x303F),
    (0x3100, 0x312F),
    (0x31A0, 0x31EF),
    (0x3200, 0x4DB5),
    (0x4E00, 0x9FBB),
    (0xF900, 0xFA2D),
    (0xFA30, 0xFA6A),
    (0xFA70, 0xFAD9),
    (0xFE10, 0xFE1F),
    (0xFE30, 0xFE4F),
    (0xFF00, 0xFFEF),
];

/// Whether sacrebleu's `zh` tokenizer treats `c` as a Chinese character.
pub fn is_zh_char(c: char) -> bool {
    let c = c as u32;
    ZH_RANGES.iter().any(|&(lo, hi)| lo <= c && c <= hi)
}

/// sacrebleu's `TokenizerZh`: strip, space out CJK characters, then the regexp passes.
pub fn tokenize_zh(line: &str) -> String {
    let line = py_strip(line);
    let mut spans = Vec::new();
    regexp_tokens(line, false, true, &mut spans);
    join_spans(line, &spans)
}

/// sacrebleu's `TokenizerV14International`.
pub fn tokenize_intl(line: &str) -> String {
    let a: Vec<char> = line.chars().collect();
    // 1. `(\P{N})(\p{P})` -> `\1 \2 `
    let mut b = Vec::with_capacity(a.len() * 2);
    let mut i = 0;
    while i < a.len() {
        if i + 1 < a.len() && !is_number(a[i]) && is_punct(a[i + 1]) {
            b.extend_from_slice(&[a[i], ' ', a[i + 1], ' ']);
            i += 2;
        } else {
            b.push(a[i]);
            i += 1;
        }
    }
    // 2. `(\p{P})(\P{N})` -> ` \1 \2`
    let mut c = Vec::with_capacity(b.len() + 16);
    i = 0;
    while i < b.len() {
        if i + 1 < b.len() && is_punct(b[i]) && !is_number(b[i + 1]) {
            c.extend_from_slice(&[' ', b[i], ' ', b[i + 1]]);
            i += 2;
        } else {
            c.push(b[i]);
            i += 1;
        }
    }
    // 3. `(\p{S})` -> ` \1 `
    let mut s = String::with_capacity(c.len() * 2);
    for ch in c {
        if is_symbol(ch) {
            s.push(' ');
            s.push(ch);
            s.push(' ');
        } else {
            s.push(ch);
        }
    }
    join_tokens(&s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The four substitutions of sacrebleu's `TokenizerRegexp`, literally (spaces tripled
    /// too), then whitespace join: the reference for `regexp_tokens`.
    fn reference_passes(line: &str) -> String {
        let x: Vec<char> = line.chars().collect();
        let sym = |c: char| c.is_ascii() && is_13a_symbol(c as u8);
        let dot = |c: char| c == '.' || c == ',';
        let dig = |c: char| c.is_ascii_digit();
        let mut a = Vec::new();
        for &c in &x {
            if sym(c) {
                a.extend([' ', c, ' ']);
            } else {
                a.push(c);
            }
        }
        let sub =
            |v: &[char], m: &dyn Fn(char, char) -> bool, r: &dyn Fn(char, char) -> Vec<char>| {
                let mut out = Vec::new();
                let mut i = 0;
                while i < v.len() {
                    if i + 1 < v.len() && m(v[i], v[i + 1]) {
                        out.extend(r(v[i], v[i + 1]));
                        i += 2;
                    } else {
                        out.push(v[i]);
                        i += 1;
                    }
                }
                out
            };
        let b = sub(&a, &|p, q| !dig(p) && dot(q), &|p, q| vec![p, ' ', q, ' ']);
        let c = sub(&b, &|p, q| dot(p) && !dig(q), &|p, q| vec![' ', p, ' ', q]);
        let d = sub(&c, &|p, q| dig(p) && q == '-', &|p, q| vec![p, ' ', q, ' ']);
        let s: String = d.into_iter().collect();
        py_split(&s).collect::<Vec<_>>().join(" ")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn one_pass_equals_the_four_substitutions(s in "[a1.,\\- $x\t\u{a0}9]{0,24}") {
            prop_assert_eq!(regexp_passes(&s), reference_passes(&s));
            prop_assert_eq!(tokenize_13a(&s), reference_passes(&format!(" {} ", preprocess_13a(&s))));
        }

        #[test]
        fn ascii_fast_path_equals_the_general_path(s in "[a1.,\\-$ x]{0,24}", pad: bool) {
            let mut fast = Vec::new();
            regexp_tokens_ascii(s.as_bytes(), pad, &mut fast);
            let mut general = Vec::new();
            regexp_tokens_general(&s, pad, false, &mut general);
            prop_assert_eq!(fast, general);
        }

        #[test]
        fn one_pass_equals_the_four_substitutions_any_text(s in "\\PC{0,30}") {
            prop_assert_eq!(regexp_passes(&s), reference_passes(&s));
        }

        #[test]
        fn spans_are_the_tokens(s in "\\PC{0,30}") {
            for t in [Tokenizer::Thirteen, Tokenizer::Intl, Tokenizer::Zh, Tokenizer::Char, Tokenizer::None] {
                let (text, spans) = t.spans(&s);
                let via_spans: Vec<&str> = spans.iter().map(|&(a, b)| &text[a..b]).collect();
                let joined = t.apply(&s);
                let via_string: Vec<&str> = py_split(&joined).collect();
                prop_assert_eq!(via_spans, via_string);
            }
        }
    }

    #[test]
    fn thirteen_a_examples() {
        assert_eq!(tokenize_13a("Hello, world!"), "Hello , world !");
        assert_eq!(
            tokenize_13a("It costs $3.50, right?"),
            "It costs $ 3.50 , right ?"
        );
        assert_eq!(tokenize_13a("1990-2000"), "1990 - 2000");
        assert_eq!(tokenize_13a("a&amp;b &lt;c&gt;"), "a & b < c >");
        assert_eq!(tokenize_13a("x<skipped>y-\nz\nw"), "xyz w");
        assert_eq!(tokenize_13a("don't"), "don't");
        assert_eq!(tokenize_13a("café."), "café .");
        assert_eq!(tokenize_13a(""), "");
    }

    #[test]
    fn zh_quirky_ranges() {
        assert!(!is_zh_char('\u{2000}') && is_zh_char('\u{2014}') && is_zh_char('\u{2a6d}'));
        assert!(!is_zh_char('\u{20000}') && is_zh_char('中'));
        assert_eq!(tokenize_zh(" 我们—test. "), "我 们 — test .");
    }

    #[test]
    fn intl_examples() {
        assert_eq!(tokenize_intl("Hello, world!"), "Hello , world !");
        assert_eq!(tokenize_intl("3.14 and 1,000."), "3.14 and 1,000.");
        assert_eq!(tokenize_intl("a+b=c €5"), "a + b = c € 5");
    }

    #[test]
    fn char_and_none() {
        assert_eq!(Tokenizer::Char.apply("ab c"), "a b   c");
        assert_eq!(Tokenizer::None.apply(" a  b "), " a  b ");
    }
}
