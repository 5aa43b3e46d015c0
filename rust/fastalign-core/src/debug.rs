//! Test-only hooks that fail on purpose, so that the binding's error and panic mapping can be
//! tested end to end from Python. They do no work and are not part of the public API.

use crate::{Error, Result};

/// Fails in the way `kind` names: `"ok"` (no failure), `"invalid"`, `"shape"`, `"nonfinite"`,
/// `"convergence"`, `"memory"`, `"interrupted"` return the matching [`Error`]; `"panic"` panics
/// with a known message.
pub fn fail(kind: &str) -> Result<()> {
    match kind {
        "ok" => Ok(()),
        "invalid" => Err(Error::invalid("debug: invalid argument")),
        "shape" => Err(Error::shape("debug: shape mismatch")),
        "nonfinite" => Err(Error::NonFinite {
            what: "debug input",
            location: "row 3".into(),
            value: f64::NAN,
        }),
        "convergence" => Err(Error::NoConvergence("debug: no convergence".into())),
        "memory" => Err(Error::Memory {
            what: "debug: n=12 would produce 12 things".into(),
            bytes: 9_600_000_000,
        }),
        "interrupted" => Err(Error::Interrupted),
        "panic" => panic!("debug: deliberate panic inside fastalign-core"),
        other => Err(Error::invalid(format!(
            "debug: unknown failure kind {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_variants() {
        assert_eq!(fail("ok"), Ok(()));
        assert!(matches!(fail("invalid"), Err(Error::InvalidArgument(_))));
        assert!(matches!(fail("shape"), Err(Error::Shape(_))));
        assert!(matches!(fail("nonfinite"), Err(Error::NonFinite { .. })));
        assert!(matches!(fail("convergence"), Err(Error::NoConvergence(_))));
        assert!(matches!(fail("memory"), Err(Error::Memory { .. })));
        assert_eq!(fail("interrupted"), Err(Error::Interrupted));
        assert!(matches!(fail("nope"), Err(Error::InvalidArgument(_))));
    }

    #[test]
    #[should_panic(expected = "deliberate panic")]
    fn panic_kind_panics() {
        let _ = fail("panic");
    }
}
