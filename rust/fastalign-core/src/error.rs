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
}

/// The core's result type.
pub type Result<T> = std::result::Result<T, Error>;

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
