//! One module per subcommand: each turns its parsed arguments into work
//! and output. `main.rs` only dispatches.

pub mod bench;
pub mod compare;
pub mod doctor;
pub mod eval;
pub mod predict;
pub mod score;
pub mod sweep;
pub mod train;
