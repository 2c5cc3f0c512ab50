//! Signals the tools turn into orderly exits.
//!
//! SIGINT (Ctrl-C) and SIGTERM (what schedulers and `kill` send) both ask a
//! long job to stop cleanly; the tools exit 128 + the signal's number (130,
//! 143) so a caller can tell them apart. SIGBUS on a memory-mapped cache
//! means its files changed under the process: a one-line message instead of
//! a bare "Bus error".
//!
//! Stops are delivered to an ordinary thread (signal-hook's self-pipe);
//! the SIGBUS action does only async-signal-safe work (write(2), _exit(2)).

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use signal_hook::iterator::Signals;

/// A request to stop: which signal asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT: Ctrl-C in a terminal.
    Interrupt,
    /// SIGTERM: `kill`, a scheduler or a shutdown.
    Terminate,
}

impl Stop {
    /// The shell's code for a process ended by this signal: 130 or 143.
    pub fn exit_code(self) -> u8 {
        match self {
            Stop::Interrupt => 130,
            Stop::Terminate => 143,
        }
    }

    /// What a second one does, for the messages ("Ctrl-C again").
    pub fn again(self) -> &'static str {
        match self {
            Stop::Interrupt => "Ctrl-C again",
            Stop::Terminate => "SIGTERM again",
        }
    }

    /// The signal's name, as a message prefix.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "interrupt",
            Stop::Terminate => "interrupt (SIGTERM)",
        }
    }

    fn of_signal(signal: i32) -> Option<Stop> {
        match signal {
            libc::SIGINT => Some(Stop::Interrupt),
            libc::SIGTERM => Some(Stop::Terminate),
            _ => None,
        }
    }
}

/// Calls `on_signal` (on a thread of its own) for every SIGINT and SIGTERM
/// the process receives from now on.
fn on_stop(mut on_signal: impl FnMut(Stop) + Send + 'static) -> io::Result<()> {
    let mut signals = Signals::new([libc::SIGINT, libc::SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            for signal in signals.forever() {
                if let Some(stop) = Stop::of_signal(signal) {
                    on_signal(stop);
                }
            }
        })?;
    Ok(())
}

/// What a second stop signal does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Second {
    /// Exits at once with the signal's code: the user does not want to wait.
    Exits,
    /// Is only counted, for a caller that escalates itself (a sweep kills
    /// its child runs).
    Counted,
}

/// The stop signals a tool received, as [`stop_on_signals`] records them.
#[derive(Debug, Default)]
pub struct Stops {
    /// Set by the first: what a long loop polls between units of work.
    pub requested: AtomicBool,
    /// How many so far.
    pub count: AtomicUsize,
    first: Mutex<Option<Stop>>,
}

impl Stops {
    /// The exit status of a tool that stopped on request: the first
    /// signal's (130 when none came, as for a plain interrupt).
    pub fn exit_code(&self) -> u8 {
        let first = *self.first.lock().unwrap_or_else(|e| e.into_inner());
        first.unwrap_or(Stop::Interrupt).exit_code()
    }

    fn record(&self, what: Stop, second: Second) -> bool {
        if self.count.fetch_add(1, Ordering::SeqCst) > 0 {
            if second == Second::Exits {
                std::process::exit(what.exit_code().into());
            }
            return false;
        }
        *self.first.lock().unwrap_or_else(|e| e.into_inner()) = Some(what);
        self.requested.store(true, Ordering::SeqCst);
        true
    }
}

/// The one stop handler of the tools: the first SIGINT or SIGTERM prints
/// `message(signal)` on a line of its own and sets [`Stops::requested`];
/// later ones do what `second` says.
pub fn stop_on_signals(
    message: impl Fn(Stop) -> String + Send + 'static,
    second: Second,
) -> io::Result<Arc<Stops>> {
    let stops = Arc::new(Stops::default());
    let seen = Arc::clone(&stops);
    on_stop(move |what| {
        if seen.record(what, second) {
            eprintln!("\n{}", message(what));
        }
    })?;
    Ok(stops)
}

/// Exit status after SIGBUS on a mapped cache: sysexits' EX_IOERR.
pub const CACHE_CHANGED_EXIT: i32 = 74;

/// The message the SIGBUS handler writes; leaked, never freed, since a
/// handler may be reading the previous one.
static SIGBUS_MESSAGE: AtomicPtr<Vec<u8>> = AtomicPtr::new(std::ptr::null_mut());

/// The SIGBUS action: the message, then exit. Never returns, so the
/// default action (a core dump and status 135) never runs.
fn write_message_and_exit() {
    let message = SIGBUS_MESSAGE.load(Ordering::SeqCst);
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the message is a
    // leaked, never-mutated Vec set before the cache was mapped.
    unsafe {
        if let Some(message) = message.as_ref() {
            libc::write(2, message.as_ptr().cast(), message.len());
        }
        libc::_exit(CACHE_CHANGED_EXIT);
    }
}

/// From now on a SIGBUS (a mapped file shrank or vanished under the
/// process) ends it with one line naming `cache` and exit status
/// [`CACHE_CHANGED_EXIT`], instead of a bare "Bus error" (135). Call before
/// mapping the cache; `tool` prefixes the message.
pub fn exit_on_sigbus(tool: &str, cache: &Path) -> io::Result<()> {
    let message = format!(
        "Error: {tool}: cache {} was modified while in use (a shard truncated or replaced under this process); check it with `prepcache verify {}` and start again\n",
        cache.display(),
        cache.display()
    );
    let old = SIGBUS_MESSAGE.swap(
        Box::into_raw(Box::new(message.into_bytes())),
        Ordering::SeqCst,
    );
    if old.is_null() {
        // SAFETY: the action does only async-signal-safe work (above).
        unsafe { signal_hook::low_level::register(libc::SIGBUS, write_message_and_exit) }?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_stop_sets_the_flag_and_decides_the_exit_code() {
        let stops = Stops::default();
        assert_eq!(stops.exit_code(), 130);
        assert!(stops.record(Stop::Terminate, Second::Counted));
        assert!(!stops.record(Stop::Interrupt, Second::Counted));
        assert!(stops.requested.load(Ordering::SeqCst));
        assert_eq!(stops.count.load(Ordering::SeqCst), 2);
        assert_eq!(stops.exit_code(), 143);
    }
}
