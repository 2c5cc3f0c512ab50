//! A counting semaphore: bounds how many scan volumes are resident at once.

use std::sync::{Condvar, Mutex};

pub struct Limiter {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Limiter {
    pub fn new(permits: usize) -> Self {
        Limiter {
            free: Mutex::new(permits.max(1)),
            freed: Condvar::new(),
        }
    }

    /// Block until a permit is free; it is returned when the guard drops.
    pub fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Permit { limiter: self }
    }
}

pub struct Permit<'a> {
    limiter: &'a Limiter,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut free = self.limiter.free.lock().unwrap_or_else(|p| p.into_inner());
        *free += 1;
        self.limiter.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn never_more_holders_than_permits() {
        let limiter = Limiter::new(2);
        let (now, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    let _p = limiter.acquire();
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    now.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }
}
