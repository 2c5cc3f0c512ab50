//! Signals the tools turn into orderly exits.
//!
//! SIGINT (Ctrl-C) and SIGTERM (what schedulers and `kill` send) both ask a
//! long job to stop cleanly; the tools exit 128 + the signal's number (130,
//! 143) so a caller can tell them apart. SIGBUS on a memory-mapped cache
//! means its files changed under the process: a one-line message instead of
//! a bare "Bus error".
//!
//! Handlers do only async-signal-safe work (write(2), _exit(2)); what a stop
//! should do runs on an ordinary thread woken through a pipe.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};

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

/// Write end of the pipe the stop handler wakes the listener thread with.
static STOP_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_stop_signal(signal: libc::c_int) {
    let fd = STOP_PIPE.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; one byte from the stack.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// Calls `on_signal` (on a thread of its own) for every SIGINT and SIGTERM
/// the process receives from now on. Once per process.
pub fn on_stop(mut on_signal: impl FnMut(Stop) + Send + 'static) -> io::Result<()> {
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let [read_end, write_end] = fds;
    if STOP_PIPE
        .compare_exchange(-1, write_end, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        // SAFETY: both descriptors were just created here and are unused.
        unsafe {
            libc::close(read_end);
            libc::close(write_end);
        }
        return Err(io::Error::other("stop handler installed twice"));
    }
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || loop {
            let mut byte = 0u8;
            // SAFETY: read(2) of one byte into a stack variable.
            let n = unsafe { libc::read(read_end, (&mut byte as *mut u8).cast(), 1) };
            if n == 1 {
                if let Some(stop) = Stop::of_signal(i32::from(byte)) {
                    on_signal(stop);
                }
            } else if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return;
            }
        })?;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        install(
            signal,
            on_stop_signal as extern "C" fn(libc::c_int) as usize,
            0,
        )?;
    }
    Ok(())
}

/// Exit status after SIGBUS on a mapped cache: sysexits' EX_IOERR.
pub const CACHE_CHANGED_EXIT: i32 = 74;

/// The message the SIGBUS handler writes; leaked, never freed, since a
/// handler may be reading the previous one.
static SIGBUS_MESSAGE: AtomicPtr<Vec<u8>> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn on_sigbus(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
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
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            on_sigbus;
        install(libc::SIGBUS, handler as usize, libc::SA_SIGINFO)?;
    }
    Ok(())
}

fn install(signal: i32, handler: usize, flags: i32) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is valid; the handler is an extern "C" fn
    // of the shape `flags` announces, doing only async-signal-safe work.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = flags | libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
