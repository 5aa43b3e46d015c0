//! Rating and voting methods over comparisons, rankings and preference matrices, one file
//! per method, re-exported here: Elo (`elo.rs`), Borda, Copeland and Schulze (`voting.rs`),
//! cycle statistics of the majority graph (`cycles.rs`), preference-pair construction
//! (`preference_pairs.rs`), comparisons from a score matrix (`score_comparisons.rs`), and
//! seeded bootstrap resampling of Bradley-Terry fits (`bootstrap.rs`).

mod bootstrap;
mod cycles;
mod elo;
mod preference_pairs;
mod score_comparisons;
mod voting;

pub use bootstrap::bootstrap_bt;
pub use cycles::cycles;
pub use elo::elo;
pub use preference_pairs::{preference_pairs, PairMode};
pub use score_comparisons::{score_comparisons, MAX_SCORED_ITEMS};
pub use voting::{borda, copeland, schulze};
