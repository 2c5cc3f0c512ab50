//! Every path a run writes, and the writes that must survive a crash.
//!
//! A run of stamp `S` and comment `C` under `<runs>/<tb_prefix>/` owns three
//! folders, named like the book's: `S-cls-C` (config.toml, metrics.jsonl,
//! the checkpoint) and the TensorBoard folders `S-trn_cls-C`, `S-val_cls-C`;
//! `seg` instead of `cls` for a segmentation run, as the book's chapter 13.
//! A new run's folder is created exclusively, so two runs never share one;
//! a resumed run writes in exactly the folder it was given.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::best::{BEST_DIR, BEST_FILE};
use super::checkpoint::TRAINER_FILE;
use crate::config::{RunConfig, CONFIG_FILE};
use crate::evaluate::METRICS_FILE;

/// How many runs of one comment may start within one second.
const MAX_SAME_SECOND: usize = 10_000;

/// What a run trains, as its folder names say (the book's `cls`/`seg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    Classify,
    Segment,
}

impl RunKind {
    pub const ALL: [RunKind; 2] = [RunKind::Classify, RunKind::Segment];

    /// `cls` or `seg`.
    pub fn tag(self) -> &'static str {
        match self {
            RunKind::Classify => "cls",
            RunKind::Segment => "seg",
        }
    }

    /// The run folder's mark, `-cls-` or `-seg-`, between stamp and comment.
    pub fn mark(self) -> String {
        format!("-{}-", self.tag())
    }

    /// The kind and the (stamp, comment) halves of a run folder's name.
    pub fn split(name: &str) -> Option<(RunKind, &str, &str)> {
        RunKind::ALL.into_iter().find_map(|kind| {
            let (stamp, comment) = name.split_once(&kind.mark())?;
            Some((kind, stamp, comment))
        })
    }
}

/// The folders and files of one run.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// `S-cls-C` (or `S-seg-C`): configuration, metrics and checkpoint.
    pub root: PathBuf,
    /// TensorBoard events of the training phases.
    pub trn_events: PathBuf,
    /// TensorBoard events of the validation phases.
    pub val_events: PathBuf,
}

impl RunDir {
    /// The run `stamp`-…-`comment` inside `group` (`<runs>/<tb_prefix>`).
    pub fn new(group: &Path, stamp: &str, kind: RunKind, comment: &str) -> Self {
        let name = |part: &str| group.join(format!("{stamp}-{part}{}-{comment}", kind.tag()));
        RunDir {
            root: name(""),
            trn_events: name("trn_"),
            val_events: name("val_"),
        }
    }

    /// Creates a new run's folder under `group`, named after `stamp`, or
    /// after `stamp.2`, `stamp.3`, … when a run of the same comment took
    /// that name in the same second; returns the folders and the stamp
    /// used. Never reuses an existing folder.
    pub fn create_new(
        group: &Path,
        stamp: &str,
        kind: RunKind,
        comment: &str,
    ) -> Result<(Self, String)> {
        fs::create_dir_all(group).with_context(|| format!("creating {}", group.display()))?;
        for n in 1..=MAX_SAME_SECOND {
            let stamp = match n {
                1 => stamp.to_owned(),
                n => format!("{stamp}.{n}"),
            };
            let dir = RunDir::new(group, &stamp, kind, comment);
            match fs::create_dir(&dir.root) {
                Ok(()) => return Ok((dir, stamp)),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("creating {}", dir.root.display()))
                }
            }
        }
        bail!(
            "{}: {MAX_SAME_SECOND} runs named {stamp}…{}{comment} already; use another comment",
            group.display(),
            kind.mark()
        )
    }

    /// The folders of the existing run folder `root`: its TensorBoard
    /// folders are its siblings, `S-trn_cls-C` for `S-cls-C` and
    /// `S-trn_seg-C` for `S-seg-C` (`NAME-trn_cls` for a folder named
    /// otherwise, such as a copy, with the tag of `kind`).
    pub fn existing(root: &Path, kind: RunKind) -> Self {
        let root = match root.file_name() {
            Some(_) => root.to_owned(),
            // `.` or `..`: the folder's own name is needed for its siblings.
            None => fs::canonicalize(root).unwrap_or_else(|_| root.to_owned()),
        };
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sibling = |phase: &str| {
            let sibling = match RunKind::split(&name) {
                Some((kind, stamp, comment)) => format!("{stamp}-{phase}{}-{comment}", kind.tag()),
                None => format!("{name}-{phase}{}", kind.tag()),
            };
            root.with_file_name(sibling)
        };
        RunDir {
            trn_events: sibling("trn_"),
            val_events: sibling("val_"),
            root,
        }
    }

    pub fn metrics_file(&self) -> PathBuf {
        self.root.join(METRICS_FILE)
    }

    pub fn config_file(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    /// Writes `config.toml` (atomically) into the run folder.
    pub fn write_config(&self, config: &RunConfig) -> Result<()> {
        let path = self.config_file();
        shared::durable::write_atomically(&path, config.to_toml().as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// The run folder that `--resume` continues for the checkpoint folder
/// `ckpt`: the folder itself, or for a run's `best/` the run, which goes
/// on from its own last checkpoint (resuming it from `best/` would drop
/// the later epochs' records and checkpoint), saying so.
pub fn resume_folder(ckpt: &Path) -> Result<PathBuf> {
    if !ckpt.is_dir() {
        bail!(
            "--resume {}: no such run folder (give the run folder or a checkpoint file in it)",
            ckpt.display()
        );
    }
    let run = ckpt.parent().filter(|p| !p.as_os_str().is_empty());
    let is_best = ckpt.file_name().is_some_and(|n| n == BEST_DIR) && ckpt.join(BEST_FILE).is_file();
    match run {
        Some(run) if is_best && run.join(TRAINER_FILE).is_file() => {
            println!(
                "train: {} is the best epoch's checkpoint of the run {}; continuing that run from its last checkpoint (to go on from the best epoch, copy {} to a folder of its own and resume the copy)",
                ckpt.display(),
                run.display(),
                ckpt.display()
            );
            Ok(run.to_owned())
        }
        _ => Ok(ckpt.to_owned()),
    }
}

/// Refuses a run folder that is marked read-only: resuming writes its
/// checkpoint and metrics there, and nowhere else.
pub fn refuse_read_only(root: &Path) -> Result<()> {
    let meta = fs::metadata(root).with_context(|| format!("--resume {}", root.display()))?;
    if meta.permissions().readonly() {
        bail!(
            "--resume {}: the run folder is read-only; a resumed run writes there (make it writable, or copy it and resume the copy)",
            root.display()
        );
    }
    Ok(())
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
    fn folders_follow_the_books_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::new(tmp.path(), "2026-01-02_03.04.05", RunKind::Classify, "demo");
        assert!(dir.root.ends_with("2026-01-02_03.04.05-cls-demo"));
        assert!(dir.val_events.ends_with("2026-01-02_03.04.05-val_cls-demo"));
        fs::create_dir(&dir.root).unwrap();
        dir.write_config(&RunConfig::default()).unwrap();
        assert!(dir.config_file().is_file());
        assert!(dir
            .metrics_file()
            .ends_with("2026-01-02_03.04.05-cls-demo/metrics.jsonl"));
    }

    #[test]
    fn runs_started_in_the_same_second_get_distinct_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let stamp = "2026-01-02_03.04.05";
        let (a, sa) = RunDir::create_new(tmp.path(), stamp, RunKind::Classify, "demo").unwrap();
        let (b, sb) = RunDir::create_new(tmp.path(), stamp, RunKind::Classify, "demo").unwrap();
        let (c, sc) = RunDir::create_new(tmp.path(), stamp, RunKind::Classify, "demo").unwrap();
        assert_eq!(sa, stamp);
        assert_eq!(sb, format!("{stamp}.2"));
        assert_eq!(sc, format!("{stamp}.3"));
        assert!(b.root.ends_with(format!("{stamp}.2-cls-demo")));
        assert!(b.trn_events.ends_with(format!("{stamp}.2-trn_cls-demo")));
        for dir in [&a, &b, &c] {
            assert!(dir.root.is_dir());
        }
        // Newest last in a sorted listing, as `ls | sort | tail -1` expects.
        let mut names = vec![c.root.clone(), a.root.clone(), b.root.clone()];
        names.sort();
        assert_eq!(names, [a.root, b.root, c.root]);
    }

    #[test]
    fn concurrent_creators_never_share_a_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let group = tmp.path().to_owned();
        let roots: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        RunDir::create_new(&group, "2026-01-02_03.04.05", RunKind::Classify, "x")
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap().0.root)
                .collect()
        });
        let unique: std::collections::BTreeSet<_> = roots.iter().collect();
        assert_eq!(unique.len(), 8, "{roots:?}");
    }

    #[test]
    fn an_existing_folder_keeps_its_name_and_its_siblings_follow_it() {
        let run = Path::new("/r/p2ch12/2026-01-02_03.04.05-cls-demo");
        let dir = RunDir::existing(run, RunKind::Classify);
        assert_eq!(dir.root, run);
        assert_eq!(
            dir.val_events,
            Path::new("/r/p2ch12/2026-01-02_03.04.05-val_cls-demo")
        );
        let copy = RunDir::existing(Path::new("/elsewhere/my-copy"), RunKind::Classify);
        assert_eq!(copy.trn_events, Path::new("/elsewhere/my-copy-trn_cls"));
        let seg = RunDir::existing(Path::new("/r/p2ch13/S-seg-x"), RunKind::Segment);
        assert_eq!(seg.trn_events, Path::new("/r/p2ch13/S-trn_seg-x"));
        let seg_copy = RunDir::existing(Path::new("/elsewhere/seg-copy"), RunKind::Segment);
        assert_eq!(
            seg_copy.val_events,
            Path::new("/elsewhere/seg-copy-val_seg")
        );
    }

    #[test]
    fn segmentation_runs_are_named_seg_as_the_books_chapter_13() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, _) =
            RunDir::create_new(tmp.path(), "2026-01-02_03.04.05", RunKind::Segment, "a").unwrap();
        assert!(dir.root.ends_with("2026-01-02_03.04.05-seg-a"));
        assert!(dir.trn_events.ends_with("2026-01-02_03.04.05-trn_seg-a"));
        assert!(dir.val_events.ends_with("2026-01-02_03.04.05-val_seg-a"));
        assert_eq!(
            RunKind::split("S-seg-a-cls-b"),
            Some((RunKind::Classify, "S-seg-a", "b"))
        );
    }
}
