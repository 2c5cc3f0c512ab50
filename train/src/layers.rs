//! The layer order of `train`'s top-level modules (README, Architecture),
//! checked against the source so it stays true: a module may name only
//! modules of lower layers (`crate::x` outside comments), so there are no
//! import cycles and nothing below `config` reads the run configuration.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Lowest first. Modules of one layer do not use each other.
const LAYERS: &[&[&str]] = &[
    &["model", "optim", "evaluate", "host_memory", "torch_threads"],
    &["data"],
    &["config"],
    &["run"],
    &["inference", "analyze", "bench", "compare", "sweep"],
    &["cli"],
    &["commands"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `.rs` file of a top-level module (`x.rs`, or `x/` and below).
fn files_of(entry: &Path) -> Vec<PathBuf> {
    if entry.is_file() {
        return vec![entry.to_owned()];
    }
    let mut out = Vec::new();
    for child in std::fs::read_dir(entry).unwrap().flatten() {
        out.extend(files_of(&child.path()));
    }
    out.retain(|p| p.extension().is_some_and(|e| e == "rs"));
    out
}

/// The top-level modules `text` names as `crate::x`, comments left out.
fn uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.insert(rest[..end].to_owned());
        }
    }
    out
}

#[test]
fn each_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if ["lib", "main", "layers"].contains(&name.as_str()) {
            continue;
        }
        let own = layer_of(&name)
            .unwrap_or_else(|| panic!("train/src/{name}: place it in layers::LAYERS"));
        for file in files_of(&path) {
            let text = std::fs::read_to_string(&file).unwrap();
            for used in uses(&text) {
                if layer_of(&used).is_some_and(|l| l >= own) && used != name {
                    broken.push(format!("{}: uses crate::{used}", file.display()));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "against the layer order:\n{}",
        broken.join("\n")
    );
}

#[test]
fn uses_reads_paths_and_skips_comments() {
    let text = "use crate::config::{RunConfig};\n//! [`crate::cli`]\n    x: crate::run::driver::short(),\n";
    let found: Vec<String> = uses(text).into_iter().collect();
    assert_eq!(found, ["config", "run"]);
}
