//! `train sweep SWEEP.toml`: many runs of one study from one file, each a
//! variant of a base configuration, over one or more seeds.
//!
//! # The sweep file
//!
//! ```toml
//! base = "../demo.toml"          # a run config, relative to this file (optional)
//!
//! [set]                          # applied to every variant (optional)
//! augment.flip = false
//! augment.noise = 0.0
//!
//! [grid]                         # every combination of these values (optional)
//! "data.balanced" = [1, 2, 4]
//! optimizer.lr = [0.001, 0.01]
//!
//! [[variant]]                    # named variants (optional)
//! name = "noise"
//! augment.noise = 25.0
//!
//! [[variant]]                    # unnamed: named after its keys
//! augment.flip = true
//! ```
//!
//! Keys are the dotted keys of a run config (`config.toml`, see
//! [`RunConfig`](crate::config::RunConfig)); dotted (`augment.noise = 25.0`)
//! and nested (`[set.augment]`) spellings mean the same. The variants are
//! every `[[variant]]` × every `[grid]` point (a grid alone: one variant per
//! point; neither: the base alone). Each is the base, then `[set]`, then its
//! variant's keys, then its grid point's, read and validated as a run
//! config before anything runs: an unknown key or a value of the wrong type
//! is an error naming the sweep file and the key. A variant without a
//! `name` is named after what it sets (`augment.noise=25,data.balanced=2`,
//! made safe for a folder name). `run.runs` and `version` belong to the
//! sweep; `run.seed` and `data.cache` are the same for every run, so only
//! the base and `[set]` may set them.
//!
//! # Runs
//!
//! Each (variant, seed) is a run of this same binary in a child process
//! ([`runner`]), under `<out>/<variant>/seed-<S>/` ([`plan`]);
//! `<out>/sweep.json` lists the variants, seeds and each run's status
//! ([`record`]). A sweep run again skips finished runs, resumes interrupted
//! ones and refuses a variant whose settings the file has since changed.

pub mod overrides;
pub mod plan;
pub mod record;
pub mod runner;
pub mod spec;
pub mod summary;
#[cfg(test)]
mod tests;

pub use plan::{Action, Job, PlanError};
pub use spec::{Sweep, SweepError, SweepFile, Variant};

/// The sweep file format, for `train sweep --help`.
pub const FORMAT_HELP: &str = "\
The sweep file (TOML):

  task = \"seg\"              \"cls\" (the default): `train` runs; \"seg\":
                            `train seg` runs, from its chapter 13 preset
  base = \"../demo.toml\"     a run config (as --config reads), relative to
                            the sweep file; optional
  [set]                     keys applied to every variant; optional
  augment.noise = 0.0
  [grid]                    lists of values: one variant per combination
  \"data.balanced\" = [1, 2, 4]
  optimizer.lr = [0.001, 0.01]
  [[variant]]               a named variant (× every grid point)
  name = \"flip\"
  augment.flip = true
  [[variant]]               unnamed: named after its keys
  augment.noise = 25.0

Keys are a run config's dotted keys (section.key, as in a run's config.toml).
Every variant is the base, then [set], then its own keys, then its grid
point's, validated before anything runs. Variants without a name are named
after what they set, e.g. augment.noise=25,data.balanced=2. run.runs and
version belong to the sweep; run.seed and data.cache only in the base or [set].

Each (variant, seed) runs as a child `train --config` (`train seg --config`)
with its output in <out>/<variant>/seed-<S>/train.log, its run folder under
that folder, and <out>/sweep.json listing every run's status. Run the same command again to
go on: finished runs are skipped, interrupted ones resumed; a variant whose
settings the file changed since is refused. Compare the results with
`train compare <out>`.";
