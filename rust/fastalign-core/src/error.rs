//! The one error type of the core. The binding maps each variant to a Python exception.

/// Every way a core routine can fail. No core routine panics on bad input; it returns one of
/// these instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An argument has a value outside its domain (maps to a `ValueError`).
    #[error("{0}")]
    InvalidArgument(String),
    /// Array shapes or lengths that do not fit together (maps to a `ValueError`).
    #[error("{0}")]
    Shape(String),
    /// A NaN or infinity where a finite number is required (maps to a `ValueError`).
    #[error("{what} contains a non-finite value ({value}) at {location}")]
    NonFinite {
        what: &'static str,
        location: String,
        value: f64,
    },
    /// An iterative solver stopped before meeting its tolerance (maps to `ConvergenceError`).
    #[error("{0}")]
    NoConvergence(String),
    /// A result or working set larger than the memory the process can get (maps to
    /// `AllocationError`, a `MemoryError`): `what` names the argument and what it asks for.
    #[error("{what} ({}): more memory than this process can allocate", human_bytes(*bytes))]
    Memory { what: String, bytes: u128 },
    /// The call was cancelled through its [`crate::cancel::Token`] (maps to
    /// `KeyboardInterrupt`, or to whatever the signal's Python handler raised).
    #[error("interrupted")]
    Interrupted,
}

/// The core's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// `bytes` in decimal units, one decimal: "9.6 GB", "512 bytes".
pub fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `n` with thousands separators: "400,000,000".
pub fn grouped(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// Shorthand for [`Error::Shape`].
    pub fn shape(msg: impl Into<String>) -> Self {
        Error::Shape(msg.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(9_600_000_000), "9.6 GB");
        assert_eq!(human_bytes(999_960), "1.0 MB");
        assert_eq!(human_bytes(u128::MAX).split(' ').nth(1), Some("EB"));
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(400_000_000), "400,000,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        let e = Error::Memory {
            what: "all_pairs=True would produce 400,000,000 pairs".into(),
            bytes: 9_600_000_000,
        };
        assert_eq!(
            e.to_string(),
            "all_pairs=True would produce 400,000,000 pairs (9.6 GB): more memory than this \
             process can allocate"
        );
    }
}
