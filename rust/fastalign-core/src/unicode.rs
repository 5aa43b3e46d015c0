//! Unicode character classes as Python and sacrebleu see them, shared by the BLEU tokenizers
//! and the dedup normalizer.
//!
//! "Whitespace" is Python's `str.isspace()` set (`split`, `strip`, `rstrip`), which holds
//! `\x1c`-`\x1f` besides Unicode's White_Space property that Rust's own methods use.
//! Punctuation, symbols and numbers are the general categories P*, S* and N*.

use unicode_general_category::{get_general_category, GeneralCategory as G};

/// Python's `str.isspace()`.
#[inline]
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` (no argument): runs of whitespace separate, no empty tokens.
pub fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|t| !t.is_empty())
}

/// Python's `str.rstrip()`.
pub fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_py_space)
}

/// Python's `str.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Unicode general category N* (numbers).
#[inline]
pub(crate) fn is_number(c: char) -> bool {
    matches!(
        get_general_category(c),
        G::DecimalNumber | G::LetterNumber | G::OtherNumber
    )
}

/// Unicode general category P* (punctuation).
#[inline]
pub(crate) fn is_punct(c: char) -> bool {
    matches!(
        get_general_category(c),
        G::ConnectorPunctuation
            | G::DashPunctuation
            | G::OpenPunctuation
            | G::ClosePunctuation
            | G::InitialPunctuation
            | G::FinalPunctuation
            | G::OtherPunctuation
    )
}

/// Unicode general category S* (symbols).
#[inline]
pub(crate) fn is_symbol(c: char) -> bool {
    matches!(
        get_general_category(c),
        G::MathSymbol | G::CurrencySymbol | G::ModifierSymbol | G::OtherSymbol
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_whitespace() {
        assert!(is_py_space('\x1c') && is_py_space('\u{a0}') && is_py_space('\u{3000}'));
        assert!(!is_py_space('\u{200b}') && !is_py_space('\u{180e}'));
        assert_eq!(
            py_split("a\x1fb\u{a0}c ").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }
}
