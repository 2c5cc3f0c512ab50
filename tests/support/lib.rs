//! Helpers for the end-to-end tests: where the binaries are, running them,
//! and the Python used for cross-checks.
//!
//! The binaries are the workspace's own release (or debug) builds next to
//! this test's executable; `make test` builds them before it tests. A
//! missing binary is a clear failure, never a nested cargo run.

pub mod book_state;
pub mod prepcache;
pub mod python;
pub mod safetensors;
pub mod train;

use std::path::PathBuf;

/// `target/<profile>/<name>`: a binary of the workspace.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir.join(name);
    assert!(
        bin.is_file(),
        "{} not found: build the binaries first (`cargo build --release --workspace --bins`, as `make test` does)",
        bin.display()
    );
    bin
}
