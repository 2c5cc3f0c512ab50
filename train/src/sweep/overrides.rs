//! Dotted run-config keys (`augment.noise`) on TOML tables: read from a
//! sweep file, applied to a base configuration, and spelled into folder
//! names.

use toml::{Table, Value};

/// One setting a sweep changes: a dotted key of the run configuration and
/// its value.
pub type Override = (String, Value);

/// A dotted key that cannot be applied to a configuration table.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum PathError {
    #[error("empty key part")]
    EmptyPart,
    #[error("`{0}` is a value, not a section")]
    NotASection(String),
}

/// The leaves of `table` as dotted keys: `[set]` written as
/// `augment.noise = 25.0` and as `augment = { noise = 25.0 }` mean the same.
pub use crate::config::dotted::flatten;

/// Sets `key` (dotted) to `value` in `config`, creating the sections on
/// the way.
pub fn apply(config: &mut Table, key: &str, value: &Value) -> Result<(), PathError> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(PathError::EmptyPart);
    }
    let (leaf, sections) = parts.split_last().ok_or(PathError::EmptyPart)?;
    let mut table = config;
    for (depth, part) in sections.iter().enumerate() {
        let entry = table
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Table(Table::new()));
        table = match entry {
            Value::Table(t) => t,
            _ => return Err(PathError::NotASection(parts[..=depth].join("."))),
        };
    }
    table.insert((*leaf).to_owned(), value.clone());
    Ok(())
}

/// `25.0` → `25`, `"1:1,3:2"` → `1:1,3:2`, `[0.9, 0.999]` → `0.9+0.999`:
/// a value as a person writes it in a name (before [`folder_name`]).
pub fn spell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 => {
            format!("{f:.0}")
        }
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Array(items) => items.iter().map(spell).collect::<Vec<_>>().join("+"),
        other => other.to_string(),
    }
}

/// `key=value,key=value` of `overrides`, in their order.
pub fn describe(overrides: &[Override]) -> String {
    overrides
        .iter()
        .map(|(k, v)| format!("{k}={}", spell(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Characters a variant's folder name may hold: portable on every file
/// system, and free of the shell's and the path's special characters.
pub fn is_folder_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '=' | ',')
}

/// Names longer than this are shortened (file systems allow 255 bytes; the
/// run folder inside adds its own).
const MAX_NAME: usize = 100;
const KEPT_PREFIX: usize = 80;

/// `text` made a folder name: other characters become `-`, a leading `.`
/// becomes `_` (no hidden folders, no `..`), and a long name keeps its
/// start plus a hash of the whole, so distinct names stay distinct and the
/// same text always gives the same folder.
pub fn folder_name(text: &str) -> String {
    let mut name: String = text
        .chars()
        .map(|c| if is_folder_char(c) { c } else { '-' })
        .collect();
    if name.starts_with('.') {
        name.replace_range(..1, "_");
    }
    if name.is_empty() {
        return "_".to_owned();
    }
    if name.len() > MAX_NAME {
        name.truncate(KEPT_PREFIX);
        name = format!("{name}-{:016x}", fnv1a(text.as_bytes()));
    }
    name
}

/// FNV-1a: a hash fixed by its definition (std's hasher may change between
/// releases, and these names must not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn dotted_and_nested_keys_flatten_alike() {
        let dotted = table("augment.noise = 25.0\ndata.balanced = 2\n");
        let nested = table("[augment]\nnoise = 25.0\n[data]\nbalanced = 2\n");
        assert_eq!(flatten(&dotted), flatten(&nested));
        assert_eq!(
            flatten(&dotted),
            vec![
                ("augment.noise".to_owned(), Value::Float(25.0)),
                ("data.balanced".to_owned(), Value::Integer(2)),
            ]
        );
    }

    #[test]
    fn apply_creates_sections_and_replaces_values() {
        let mut config = table("version = 1\n[augment]\nflip = true\nnoise = 0.0\n");
        apply(&mut config, "augment.noise", &Value::Float(25.0)).unwrap();
        apply(&mut config, "optimizer.lr", &Value::Float(0.01)).unwrap();
        assert_eq!(
            config,
            table("version = 1\n[augment]\nflip = true\nnoise = 25.0\n[optimizer]\nlr = 0.01\n")
        );
        assert_eq!(
            apply(&mut config, "augment.flip.p", &Value::Float(0.5)),
            Err(PathError::NotASection("augment.flip".to_owned()))
        );
        assert_eq!(
            apply(&mut config, "augment..flip", &Value::Boolean(true)),
            Err(PathError::EmptyPart)
        );
    }

    #[test]
    fn values_are_spelled_as_written() {
        assert_eq!(spell(&Value::Float(25.0)), "25");
        assert_eq!(spell(&Value::Float(0.1)), "0.1");
        assert_eq!(spell(&Value::Float(1e-8)), "0.00000001");
        assert_eq!(spell(&Value::Integer(4)), "4");
        assert_eq!(spell(&Value::Boolean(false)), "false");
        assert_eq!(spell(&Value::String("1:1,3:2".into())), "1:1,3:2");
        let betas = Value::Array(vec![Value::Float(0.9), Value::Float(0.999)]);
        assert_eq!(spell(&betas), "0.9+0.999");
        let overrides = vec![
            ("augment.noise".to_owned(), Value::Float(25.0)),
            ("data.balanced".to_owned(), Value::Integer(2)),
        ];
        assert_eq!(describe(&overrides), "augment.noise=25,data.balanced=2");
    }

    #[test]
    fn folder_names_are_safe_stable_and_distinct() {
        assert_eq!(
            folder_name("augment.noise=25,data.balanced=2"),
            "augment.noise=25,data.balanced=2"
        );
        assert_eq!(
            folder_name("data.balanced_schedule=1:1,3:2 x/y"),
            "data.balanced_schedule=1-1,3-2-x-y"
        );
        assert_eq!(folder_name(".."), "_.");
        assert_eq!(folder_name(""), "_");
        let long_a = format!("{}a", "k=1,".repeat(40));
        let long_b = format!("{}b", "k=1,".repeat(40));
        let (a, b) = (folder_name(&long_a), folder_name(&long_b));
        assert!(a.len() <= MAX_NAME && b.len() <= MAX_NAME, "{a}");
        assert_ne!(a, b);
        assert_eq!(a, folder_name(&long_a));
        assert!(a.chars().all(is_folder_char), "{a}");
    }
}
