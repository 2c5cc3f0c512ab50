//! Each run of a sweep as a child `train` process, a few at a time.
//!
//! A child process per run, not a thread: libtorch's random generator and
//! thread pool are process-global, so two runs sharing a process would not
//! repeat. Each child gets its own process group: a terminal's Ctrl-C
//! reaches only the sweep, which passes one interrupt to each child (they
//! stop after the batch, their finished epochs checkpointed) and, on a
//! second Ctrl-C, kills them.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::plan::{Action, Job};
use crate::run::run_dir::timestamp;
use crate::run::RunKind;

/// How often the sweep looks at its children and at Ctrl-C.
const POLL: Duration = Duration::from_millis(100);
/// `train`'s exit statuses after an interrupt (SIGINT, SIGTERM).
const INTERRUPTED_EXITS: [i32; 2] = [130, 143];

/// How the children are started.
#[derive(Clone, Debug)]
pub struct Launcher {
    /// The `train` binary (the sweep's own).
    pub exe: PathBuf,
    /// What the runs train: `train` or `train seg`.
    pub task: RunKind,
    /// libtorch CPU threads of each run.
    pub threads_per_run: u32,
    /// Runs at once.
    pub parallel: usize,
}

/// How a child's run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Done,
    Interrupted,
    Failed(String),
}

/// What the sweep hears from its runs, in order.
#[derive(Debug)]
pub enum Event<'a> {
    Started {
        job: &'a Job,
    },
    Finished {
        job: &'a Job,
        outcome: Outcome,
        wall: Duration,
    },
}

/// Ctrl-C presses so far: the first stops the runs cleanly, the second
/// kills them.
pub type Presses = AtomicUsize;

struct Running<'a> {
    job: &'a Job,
    child: Child,
    started: Instant,
    signalled: usize,
}

impl Launcher {
    /// The child's command line for `job` (which must not be a skip).
    pub fn command(&self, job: &Job) -> Command {
        let mut cmd = Command::new(&self.exe);
        if self.task == RunKind::Segment {
            cmd.arg("seg");
        }
        match &job.action {
            Action::Resume { run_dir, .. } | Action::Skip { run_dir, .. } => {
                cmd.arg("--resume")
                    .arg(run_dir)
                    .arg("--epochs")
                    .arg(job.config.run.epochs.to_string());
            }
            Action::Start { .. } => {
                cmd.arg("--config").arg(job.planned_config_file());
            }
        }
        if let Some(cache) = &job.config.data.cache {
            cmd.arg("--cache").arg(cache);
        }
        cmd.arg("--threads").arg(self.threads_per_run.to_string());
        cmd
    }

    /// Runs every job that is not a skip, `parallel` at a time, calling
    /// `on_event` as they start and end; returns when all have ended or,
    /// after Ctrl-C, when the running ones have stopped.
    pub fn run_all<'a>(
        &self,
        jobs: &'a [Job],
        presses: &Presses,
        mut on_event: impl FnMut(Event<'a>) -> Result<()>,
    ) -> Result<()> {
        let queue: Vec<&'a Job> = jobs
            .iter()
            .filter(|j| !matches!(j.action, Action::Skip { .. }))
            .collect();
        let mut next = 0;
        let mut running: Vec<Running<'a>> = Vec::new();
        loop {
            let pressed = presses.load(Ordering::SeqCst);
            while pressed == 0 && running.len() < self.parallel.max(1) {
                let Some(&job) = queue.get(next) else { break };
                next += 1;
                match self.spawn(job) {
                    Ok(child) => {
                        running.push(Running {
                            job,
                            child,
                            started: Instant::now(),
                            signalled: 0,
                        });
                        on_event(Event::Started { job })?;
                    }
                    Err(e) => on_event(Event::Finished {
                        job,
                        outcome: Outcome::Failed(format!("{e:#}")),
                        wall: Duration::ZERO,
                    })?,
                }
            }
            for run in &mut running {
                pass_on_presses(run, pressed);
            }
            let mut i = 0;
            while i < running.len() {
                let status = running[i].child.try_wait().with_context(|| {
                    format!("waiting for the run in {}", running[i].job.dir.display())
                })?;
                let Some(status) = status else {
                    i += 1;
                    continue;
                };
                let run = running.swap_remove(i);
                let outcome = outcome(run.job, status, pressed > 0);
                if outcome == Outcome::Done {
                    mark_done(run.job)?;
                }
                on_event(Event::Finished {
                    job: run.job,
                    outcome,
                    wall: run.started.elapsed(),
                })?;
            }
            if running.is_empty() && (pressed > 0 || next == queue.len()) {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    }

    /// Clears what a start replaces, writes the planned settings and
    /// starts the child with its output going to the job's log.
    fn spawn(&self, job: &Job) -> Result<Child> {
        fs::create_dir_all(&job.dir).with_context(|| format!("creating {}", job.dir.display()))?;
        remove_if_present(&job.done_file())?;
        if let Action::Start { stale } = &job.action {
            for dir in stale {
                fs::remove_dir_all(dir).with_context(|| {
                    format!("removing {}, a run with no finished epoch", dir.display())
                })?;
            }
        }
        let planned = job.planned_config_file();
        shared::durable::write_atomically(&planned, job.config.to_toml().as_bytes())
            .with_context(|| format!("writing {}", planned.display()))?;
        let log_path = job.log_file();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut cmd = self.command(job);
        writeln!(log, "== sweep {}: {:?}", timestamp(), cmd)
            .with_context(|| format!("writing {}", log_path.display()))?;
        let err_log = log
            .try_clone()
            .with_context(|| format!("opening {}", log_path.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .process_group(0);
        cmd.spawn()
            .with_context(|| format!("starting {}", self.exe.display()))
    }
}

/// Sends the child one SIGINT per press it has not had (the second one
/// makes `train` quit at once), then SIGKILL for any press beyond.
fn pass_on_presses(run: &mut Running<'_>, pressed: usize) {
    while run.signalled < pressed {
        run.signalled += 1;
        if run.signalled <= 2 {
            let Ok(pid) = i32::try_from(run.child.id()) else {
                return;
            };
            // SAFETY: kill(2) with a pid this process spawned and has not
            // yet reaped (try_wait has not returned its status), so the id
            // cannot have been reused.
            unsafe {
                libc::kill(pid, libc::SIGINT);
            }
        } else {
            let _ = run.child.kill();
        }
    }
}

fn outcome(job: &Job, status: ExitStatus, stopping: bool) -> Outcome {
    match status.code() {
        Some(0) => Outcome::Done,
        Some(code) if INTERRUPTED_EXITS.contains(&code) => Outcome::Interrupted,
        None if stopping => Outcome::Interrupted,
        Some(code) => Outcome::Failed(format!(
            "exit status {code}: {}",
            last_error(&job.log_file())
        )),
        None => Outcome::Failed(format!(
            "killed by signal {}; see {}",
            status.signal().unwrap_or_default(),
            job.log_file().display()
        )),
    }
}

/// The child's error message from its log (anyhow's `Error: …` line), or
/// its last line.
fn last_error(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let attempt = text.rsplit("\n== sweep ").next().unwrap_or(&text);
    attempt
        .lines()
        .find(|l| l.starts_with("Error: "))
        .or_else(|| attempt.lines().rev().find(|l| !l.trim().is_empty()))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("no output; see {}", log.display()))
}

/// Records that the child finished cleanly with the configured epochs, so
/// a run that stopped early (`--patience`) is not resumed again.
fn mark_done(job: &Job) -> Result<()> {
    let path = job.done_file();
    let text = serde_json::json!({ "epochs": job.config.run.epochs }).to_string();
    shared::durable::write_atomically(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}
