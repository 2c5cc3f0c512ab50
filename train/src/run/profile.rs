//! `--profile`: where a phase's time goes, part by part.
//!
//! Each part ends with a lap; on CUDA a lap first waits for the device, so
//! queued kernels are charged to the part that queued them (which removes
//! the overlap the unprofiled loop has: profile figures add up to a slower
//! step). On the CPU every op is synchronous already and nothing changes.

use std::time::{Duration, Instant};

use tch::Device;

/// The parts of a step, in the order they run (and are reported).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Host→device copy of the batch (queued by the loader) and int16→float.
    Input,
    Augment,
    Forward,
    Backward,
    Optimizer,
    /// Metric rows and the progress bar.
    Metrics,
}

const PARTS: usize = 6;
/// Report names, indexed by `Part as usize`.
const NAMES: [&str; PARTS] = [
    "input (H2D + to float)",
    "augment",
    "forward",
    "backward",
    "optimizer",
    "metrics",
];

/// A step's handle on the profile: laps when `--profile` is on, nothing
/// otherwise, so a task's step charges its parts without knowing which.
pub struct Laps<'a>(pub Option<&'a mut StepProfile>);

impl Laps<'_> {
    pub fn lap(&mut self, part: Part) {
        if let Some(p) = &mut self.0 {
            p.lap(part);
        }
    }
}

pub struct StepProfile {
    device: Device,
    totals: [Duration; PARTS],
    last: Instant,
}

impl StepProfile {
    pub fn new(device: Device) -> Self {
        StepProfile {
            device,
            totals: [Duration::ZERO; PARTS],
            last: Instant::now(),
        }
    }

    /// Starts timing a batch. The device is not waited for here: a copy the
    /// loader queued is then charged to [`Part::Input`].
    pub fn start(&mut self) {
        self.last = Instant::now();
    }

    /// Charges the time since the previous lap (or start) to `part`.
    pub fn lap(&mut self, part: Part) {
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i as i64);
        }
        let now = Instant::now();
        self.totals[part as usize] += now - self.last;
        self.last = now;
    }

    /// One line: the loader wait and each part, in seconds and as a share of
    /// `wall`, plus what is left (the loop itself); resets the totals.
    pub fn report(&mut self, wait: Duration, wall: Duration) -> String {
        let wall_s = wall.as_secs_f64().max(1e-9);
        let share = |d: Duration| {
            format!(
                "{:.2}s ({:.1}%)",
                d.as_secs_f64(),
                100.0 * d.as_secs_f64() / wall_s
            )
        };
        let mut parts = vec![format!("loader wait {}", share(wait))];
        let mut accounted = wait;
        for (name, total) in NAMES.iter().zip(self.totals) {
            if total > Duration::ZERO {
                parts.push(format!("{name} {}", share(total)));
                accounted += total;
            }
        }
        parts.push(format!("other {}", share(wall.saturating_sub(accounted))));
        self.totals = [Duration::ZERO; PARTS];
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_add_up_to_the_elapsed_time_and_the_report_resets() {
        let mut p = StepProfile::new(Device::Cpu);
        p.start();
        std::thread::sleep(Duration::from_millis(20));
        p.lap(Part::Forward);
        std::thread::sleep(Duration::from_millis(10));
        p.lap(Part::Metrics);
        let forward = p.totals[Part::Forward as usize];
        let metrics = p.totals[Part::Metrics as usize];
        assert!(forward >= Duration::from_millis(20), "{forward:?}");
        assert!(metrics >= Duration::from_millis(10), "{metrics:?}");
        let line = p.report(Duration::from_millis(5), Duration::from_millis(100));
        assert!(
            line.starts_with("loader wait 0.01s (5.0%), forward 0.0"),
            "{line}"
        );
        assert!(
            line.contains("metrics 0.01s") && line.contains("other "),
            "{line}"
        );
        assert!(
            !line.contains("augment"),
            "parts never lapped are left out: {line}"
        );
        assert_eq!(p.totals, [Duration::ZERO; 6]);
    }
}
