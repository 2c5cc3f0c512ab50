//! A configuration table as its leaves under dotted keys
//! (`augment.noise`), the one spelling of a setting that sweeps override
//! and `compare` reports.

use toml::{Table, Value};

/// The leaves of `table` as (dotted key, value), in the table's order:
/// `augment.noise = 25.0` and `augment = { noise = 25.0 }` come out alike.
/// No run-config value is a table, so every table is a section to descend
/// into.
pub fn flatten(table: &Table) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    flatten_into("", table, &mut out);
    out
}

fn flatten_into(prefix: &str, table: &Table, out: &mut Vec<(String, Value)>) {
    for (key, value) in table {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Table(inner) => flatten_into(&dotted, inner, out),
            other => out.push((dotted, other.clone())),
        }
    }
}

/// Lays `over`'s keys onto `base`, table by table.
pub fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(inner)), Value::Table(value)) => merge(inner, value),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}
