//! fastalign-core: the CPU-side math of LLM alignment, in plain Rust.
//!
//! Nothing here knows about Python: functions take slices and return owned vectors or a typed
//! [`Error`]. The PyO3 binding (`fastalign-py`) is a thin layer over these functions. Every
//! parallel routine gives results that do not depend on the number of threads.

pub mod bleu;
pub mod cancel;
pub mod debug;
pub mod dedup;
pub mod error;
pub mod mem;
pub mod pareto;
pub mod rank;
pub mod rl;
pub mod sys;
pub mod unicode;

pub use error::{Error, Result};
