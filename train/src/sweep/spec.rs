//! A sweep file read and expanded into its variants, each a validated
//! [`RunConfig`]; every error names the sweep file and the key or variant.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::overrides::{self, describe, folder_name, is_folder_char, Override};
use crate::config::{dotted, presets, ConfigError, RunConfig, CONFIG_VERSION};
use crate::run::RunKind;

/// Keys no sweep may set, and why.
const OWNED_BY_THE_SWEEP: [(&str, &str); 2] = [
    ("version", "the base's version is the sweep's"),
    (
        "run.runs",
        "the sweep puts each run under <out>/<variant>/seed-<S>/ (choose <out> with --out)",
    ),
];

/// Keys only the base and `[set]` may set: they are the same for every run.
const SHARED_BY_ALL_RUNS: [(&str, &str); 2] = [
    (
        "run.seed",
        "seeds are swept with --seeds (or set once in the base or [set])",
    ),
    (
        "data.cache",
        "every run of a sweep reads the same cache (--cache, or the base or [set])",
    ),
];

/// The longest `name` a variant may be given (its folder's name).
const MAX_GIVEN_NAME: usize = 100;

/// A sweep file that cannot run, named with the key or variant at fault.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path}: base {base}: {source}")]
    Base {
        path: PathBuf,
        base: PathBuf,
        source: ConfigError,
    },
    #[error("{path}: {place}: key `{key}`: {reason}")]
    Key {
        path: PathBuf,
        place: String,
        key: String,
        reason: String,
    },
    #[error("{path}: variant `{variant}`: {reason}")]
    Variant {
        path: PathBuf,
        variant: String,
        reason: String,
    },
    #[error("{path}: [grid] key `{key}` has an empty list: give it at least one value")]
    EmptyGrid { path: PathBuf, key: String },
    #[error("{path}: two variants are both named `{name}`: give them distinct names")]
    DuplicateName { path: PathBuf, name: String },
    #[error("{path}: {count} variants (variants × grid points); a sweep may have at most {MAX_VARIANTS}")]
    TooManyVariants { path: PathBuf, count: String },
}

/// Most variants a sweep expands to: each is a run per seed, and every one
/// is validated before anything starts, so a grid beyond this is a typo
/// that would otherwise validate for minutes without a word.
pub const MAX_VARIANTS: usize = 10_000;

/// A `[[variant]]` entry: an optional name and its overrides.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantSpec {
    pub name: Option<String>,
    pub overrides: Vec<Override>,
}

/// A sweep file as written, its keys checked against the run config.
#[derive(Clone, Debug)]
pub struct SweepFile {
    pub path: PathBuf,
    /// What the runs train (`task = "seg"`: `train seg` runs, from its
    /// chapter 13 preset); the classifier by default.
    pub task: RunKind,
    /// The base file, resolved against the sweep file's folder.
    pub base: Option<PathBuf>,
    /// The base with `[set]` applied: what every variant starts from.
    pub base_table: Table,
    pub set: Vec<Override>,
    /// `[grid]` keys in the file's order, each with its values.
    pub grid: Vec<(String, Vec<Value>)>,
    pub variants: Vec<VariantSpec>,
}

/// One run configuration of the sweep (the seed aside).
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// Its folder name: given, or spelled from its overrides.
    pub name: String,
    /// What it changes from the base and `[set]`: its variant's keys, then
    /// its grid point's.
    pub overrides: Vec<Override>,
    pub config: RunConfig,
}

/// A sweep file expanded.
#[derive(Clone, Debug)]
pub struct Sweep {
    pub file: SweepFile,
    /// The base's seed (after `[set]`), used when no seeds are given.
    pub base_seed: Option<u64>,
    pub variants: Vec<Variant>,
}

impl Sweep {
    /// Reads, checks and expands the sweep file at `path`; nothing runs.
    pub fn load(path: &Path) -> Result<Self, SweepError> {
        let file = SweepFile::read(path)?;
        let variants = file.expand()?;
        let base_seed = to_config(&file.base_table)
            .ok()
            .and_then(|c: RunConfig| c.run.seed);
        Ok(Sweep {
            file,
            base_seed,
            variants,
        })
    }
}

fn to_config(table: &Table) -> Result<RunConfig, String> {
    Value::Table(table.clone())
        .try_into()
        .map_err(|e: toml::de::Error| e.message().trim().to_owned())
}

impl SweepFile {
    pub fn read(path: &Path) -> Result<Self, SweepError> {
        let text = std::fs::read_to_string(path).map_err(|e| SweepError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::parse(path, &text)
    }

    /// The sweep file `text`, read from `path` (for the base's folder and
    /// for messages).
    pub fn parse(path: &Path, text: &str) -> Result<Self, SweepError> {
        let file_err = |reason: String| SweepError::File {
            path: path.to_owned(),
            reason,
        };
        let raw: Table = toml::from_str(text).map_err(|e| file_err(e.to_string()))?;
        let mut base = None;
        let mut task = RunKind::Classify;
        let mut set = Vec::new();
        let mut grid = Vec::new();
        let mut variants = Vec::new();
        for (key, value) in &raw {
            match (key.as_str(), value) {
                ("base", Value::String(b)) => {
                    let folder = path.parent().unwrap_or(Path::new(""));
                    base = Some(folder.join(b));
                }
                ("task", Value::String(t)) => {
                    task = RunKind::ALL
                        .into_iter()
                        .find(|k| k.tag() == t)
                        .ok_or_else(|| file_err(format!("task = {t:?}: expected \"cls\" (`train`) or \"seg\" (`train seg`)")))?;
                }
                ("set", Value::Table(t)) => set = overrides::flatten(t),
                ("grid", Value::Table(t)) => grid = grid_lists(path, t)?,
                ("variant", Value::Array(items)) => {
                    for (n, item) in items.iter().enumerate() {
                        variants.push(variant_spec(path, n + 1, item)?);
                    }
                }
                ("base" | "task" | "set" | "grid" | "variant", _) => {
                    return Err(file_err(format!(
                        "`{key}` must be {}",
                        match key.as_str() {
                            "base" => "a path string (base = \"../demo.toml\")",
                            "task" => "a string (task = \"seg\")",
                            "set" => "a table ([set])",
                            "grid" => "a table ([grid])",
                            _ => "a list of tables ([[variant]])",
                        }
                    )))
                }
                _ => {
                    return Err(file_err(format!(
                        "unknown key `{key}`: a sweep file has `base`, `task`, [set], [grid] and [[variant]] (see `train sweep --help`)"
                    )))
                }
            }
        }
        let mut base_table = match &base {
            Some(b) => read_base(path, b)?,
            None => Table::from_iter([(
                "version".to_owned(),
                Value::Integer(i64::from(CONFIG_VERSION)),
            )]),
        };
        if task != RunKind::Classify {
            // The base file changes the task's preset, as `--config` does.
            let mut preset = Table::try_from(preset(task))
                .map_err(|e| file_err(format!("the {} preset: {e}", task.tag())))?;
            dotted::merge(&mut preset, base_table);
            base_table = preset;
        }
        let mut file = SweepFile {
            path: path.to_owned(),
            task,
            base,
            base_table,
            set,
            grid,
            variants,
        };
        file.check_keys()?;
        Ok(file)
    }

    /// Every key of the file applies to the base and has the right type,
    /// and none is one the sweep owns; applies `[set]` to the base.
    fn check_keys(&mut self) -> Result<(), SweepError> {
        for (key, value) in &self.set {
            self.refuse_owned("[set]", key, &OWNED_BY_THE_SWEEP)?;
            self.check_key("[set]", key, value)?;
            overrides::apply(&mut self.base_table, key, value)
                .map_err(|e| self.key_err("[set]", key, e.to_string()))?;
        }
        for (key, values) in &self.grid {
            self.refuse_owned("[grid]", key, &OWNED_BY_THE_SWEEP)?;
            self.refuse_owned("[grid]", key, &SHARED_BY_ALL_RUNS)?;
            for value in values {
                self.check_key("[grid]", key, value)?;
            }
        }
        for (n, variant) in self.variants.iter().enumerate() {
            let place = variant_place(n + 1, variant.name.as_deref());
            for (key, value) in &variant.overrides {
                self.refuse_owned(&place, key, &OWNED_BY_THE_SWEEP)?;
                self.refuse_owned(&place, key, &SHARED_BY_ALL_RUNS)?;
                if self.grid.iter().any(|(g, _)| g == key) {
                    return Err(self.key_err(
                        &place,
                        key,
                        "is in [grid] too: set it in one place".to_owned(),
                    ));
                }
                self.check_key(&place, key, value)?;
            }
        }
        Ok(())
    }

    fn key_err(&self, place: &str, key: &str, reason: String) -> SweepError {
        SweepError::Key {
            path: self.path.clone(),
            place: place.to_owned(),
            key: key.to_owned(),
            reason,
        }
    }

    fn refuse_owned(
        &self,
        place: &str,
        key: &str,
        owned: &[(&str, &str)],
    ) -> Result<(), SweepError> {
        match owned.iter().find(|(k, _)| *k == key) {
            Some((_, why)) => Err(self.key_err(place, key, format!("cannot be swept: {why}"))),
            None => Ok(()),
        }
    }

    /// `key = value` on the base alone reads as a run config: the key
    /// exists and the value has its type (ranges are checked per variant).
    fn check_key(&self, place: &str, key: &str, value: &Value) -> Result<(), SweepError> {
        let mut table = self.base_table.clone();
        overrides::apply(&mut table, key, value)
            .map_err(|e| self.key_err(place, key, format!("not a run-config key: {e}")))?;
        to_config(&table)
            .map(|_| ())
            .map_err(|reason| self.key_err(place, key, reason))
    }

    /// Every variant × every grid point, validated; names are unique.
    pub fn expand(&self) -> Result<Vec<Variant>, SweepError> {
        let implicit = [VariantSpec {
            name: None,
            overrides: Vec::new(),
        }];
        let specs = if self.variants.is_empty() {
            &implicit[..]
        } else {
            &self.variants[..]
        };
        let count = self
            .grid
            .iter()
            .try_fold(specs.len(), |n, (_, values)| n.checked_mul(values.len()));
        if count.is_none_or(|n| n > MAX_VARIANTS) {
            return Err(SweepError::TooManyVariants {
                path: self.path.clone(),
                count: count.map_or_else(|| "more than 2^64".to_owned(), |n| n.to_string()),
            });
        }
        let points = grid_points(&self.grid);
        let mut out: Vec<Variant> = Vec::with_capacity(specs.len() * points.len());
        let mut names = std::collections::HashSet::new();
        for spec in specs {
            for point in &points {
                let variant = self.variant(spec, point)?;
                if !names.insert(variant.name.clone()) {
                    return Err(SweepError::DuplicateName {
                        path: self.path.clone(),
                        name: variant.name,
                    });
                }
                out.push(variant);
            }
        }
        Ok(out)
    }

    fn variant(&self, spec: &VariantSpec, point: &[Override]) -> Result<Variant, SweepError> {
        let label = [
            spec.name
                .clone()
                .unwrap_or_else(|| describe(&spec.overrides)),
            describe(point),
        ]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(",");
        let name = if label.is_empty() {
            "base".to_owned()
        } else {
            folder_name(&label)
        };
        let overrides: Vec<Override> = spec.overrides.iter().chain(point).cloned().collect();
        let mut table = self.base_table.clone();
        for (key, value) in &overrides {
            overrides::apply(&mut table, key, value)
                .map_err(|e| self.key_err(&format!("variant `{name}`"), key, e.to_string()))?;
        }
        let variant_err = |reason: String| SweepError::Variant {
            path: self.path.clone(),
            variant: name.clone(),
            reason,
        };
        let config = to_config(&table).map_err(&variant_err)?;
        config.validate().map_err(|e| variant_err(e.to_string()))?;
        Ok(Variant {
            name,
            overrides,
            config,
        })
    }
}

/// The starting configuration of a `task` run (`train` or `train seg`).
fn preset(task: RunKind) -> RunConfig {
    match task {
        RunKind::Classify => RunConfig::default(),
        RunKind::Segment => presets::segmentation(),
    }
}

fn variant_place(number: usize, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("[[variant]] `{n}`"),
        None => format!("[[variant]] #{number}"),
    }
}

/// The base config file as a table, after [`RunConfig::read`] has
/// accepted it whole (version, keys, types).
fn read_base(path: &Path, base: &Path) -> Result<Table, SweepError> {
    let base_err = |source| SweepError::Base {
        path: path.to_owned(),
        base: base.to_owned(),
        source,
    };
    RunConfig::read(base).map_err(base_err)?;
    let text = std::fs::read_to_string(base).map_err(|e| {
        base_err(ConfigError::File {
            path: base.to_owned(),
            reason: e.to_string(),
        })
    })?;
    toml::from_str(&text).map_err(|e: toml::de::Error| {
        base_err(ConfigError::File {
            path: base.to_owned(),
            reason: e.to_string(),
        })
    })
}

fn grid_lists(path: &Path, table: &Table) -> Result<Vec<(String, Vec<Value>)>, SweepError> {
    overrides::flatten(table)
        .into_iter()
        .map(|(key, value)| match value {
            Value::Array(values) if values.is_empty() => Err(SweepError::EmptyGrid {
                path: path.to_owned(),
                key,
            }),
            Value::Array(values) => Ok((key, values)),
            other => Err(SweepError::Key {
                path: path.to_owned(),
                place: "[grid]".to_owned(),
                key,
                reason: format!(
                    "needs a list of values, e.g. [{other}] (a single value belongs in [set])"
                ),
            }),
        })
        .collect()
}

fn variant_spec(path: &Path, number: usize, item: &Value) -> Result<VariantSpec, SweepError> {
    let place = variant_place(number, None);
    let Value::Table(table) = item else {
        return Err(SweepError::File {
            path: path.to_owned(),
            reason: format!("{place} must be a table"),
        });
    };
    let mut table = table.clone();
    let name = match table.remove("name") {
        None => None,
        Some(Value::String(name)) => Some(checked_name(path, &place, name)?),
        Some(other) => {
            return Err(SweepError::File {
                path: path.to_owned(),
                reason: format!("{place}: `name` must be a string, not {other}"),
            })
        }
    };
    Ok(VariantSpec {
        name,
        overrides: overrides::flatten(&table),
    })
}

/// A given name is used as its folder's name, so it must be one.
fn checked_name(path: &Path, place: &str, name: String) -> Result<String, SweepError> {
    let fine = !name.is_empty()
        && name.len() <= MAX_GIVEN_NAME
        && !name.starts_with('.')
        && name.chars().all(is_folder_char);
    if fine {
        Ok(name)
    } else {
        Err(SweepError::File {
            path: path.to_owned(),
            reason: format!(
                "{place}: name {name:?} names a folder: use 1 to {MAX_GIVEN_NAME} letters, digits and . _ - + = , (not starting with .)"
            ),
        })
    }
}

/// The cartesian product of the grid, the first key outermost; one empty
/// point without a grid.
fn grid_points(grid: &[(String, Vec<Value>)]) -> Vec<Vec<Override>> {
    let mut points: Vec<Vec<Override>> = vec![Vec::new()];
    for (key, values) in grid {
        points = points
            .into_iter()
            .flat_map(|point| {
                values.iter().map(move |v| {
                    let mut next = point.clone();
                    next.push((key.clone(), v.clone()));
                    next
                })
            })
            .collect();
    }
    points
}
