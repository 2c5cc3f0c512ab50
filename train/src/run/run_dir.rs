//! Every path a run writes, and the writes that must survive a crash.
//!
//! A run of stamp `S` and comment `C` under `<runs>/<tb_prefix>/` owns three
//! folders, named like the book's: `S-cls-C` (config.toml, metrics.jsonl,
//! the checkpoint) and the TensorBoard folders `S-trn_cls-C`, `S-val_cls-C`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::{RunConfig, CONFIG_FILE};

pub const METRICS_FILE: &str = "metrics.jsonl";

/// The folders and files of one run.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// `S-cls-C`: configuration, metrics and checkpoint.
    pub root: PathBuf,
    /// TensorBoard events of the training phases.
    pub trn_events: PathBuf,
    /// TensorBoard events of the validation phases.
    pub val_events: PathBuf,
}

impl RunDir {
    /// The run `stamp`-…-`comment` inside `group` (`<runs>/<tb_prefix>`).
    pub fn new(group: &Path, stamp: &str, comment: &str) -> Self {
        let name = |kind: &str| group.join(format!("{stamp}-{kind}-{comment}"));
        RunDir {
            root: name("cls"),
            trn_events: name("trn_cls"),
            val_events: name("val_cls"),
        }
    }

    pub fn metrics_file(&self) -> PathBuf {
        self.root.join(METRICS_FILE)
    }

    pub fn config_file(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    /// Creates the run folder and writes `config.toml` (atomically).
    pub fn create(&self, config: &RunConfig) -> Result<()> {
        fs::create_dir_all(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))?;
        let path = self.config_file();
        shared::durable::write_atomically(&path, config.to_toml().as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Rewrites metrics.jsonl (atomically) without the records of epochs
    /// after `epoch`: a crash or Ctrl-C after an epoch's training line but
    /// before its checkpoint leaves lines a resumed run writes again.
    pub fn drop_records_after(&self, epoch: usize) -> Result<()> {
        let path = self.metrics_file();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut kept = String::with_capacity(text.len());
        for (n, line) in text.lines().enumerate() {
            let record: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}: line {} is not JSON", path.display(), n + 1))?;
            if record["epoch"]
                .as_u64()
                .is_some_and(|e| e as usize <= epoch)
            {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        if kept.len() != text.len() {
            shared::durable::write_atomically(&path, kept.as_bytes())
                .with_context(|| format!("rewriting {}", path.display()))?;
        }
        Ok(())
    }
}

/// UTC `YYYY-MM-DD_HH.MM.SS`, the book's run-name timestamp format.
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    format!(
        "{year:04}-{month:02}-{day:02}_{:02}.{:02}.{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_has_the_books_shape() {
        let t = timestamp();
        assert_eq!(t.len(), 19, "{t}");
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], "_");
        assert_eq!(&t[13..14], ".");
        assert!(t.starts_with("20"));
    }

    #[test]
    fn folders_follow_the_books_names_and_records_are_trimmed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::new(tmp.path(), "2026-01-02_03.04.05", "demo");
        assert!(dir.root.ends_with("2026-01-02_03.04.05-cls-demo"));
        assert!(dir.val_events.ends_with("2026-01-02_03.04.05-val_cls-demo"));
        dir.create(&RunConfig::default()).unwrap();
        assert!(dir.config_file().is_file());
        let lines = "{\"epoch\":1}\n{\"epoch\":2}\n{\"epoch\":3}\n";
        fs::write(dir.metrics_file(), lines).unwrap();
        dir.drop_records_after(2).unwrap();
        let kept = fs::read_to_string(dir.metrics_file()).unwrap();
        assert_eq!(kept, "{\"epoch\":1}\n{\"epoch\":2}\n");
    }
}
