//! The per-call deadline: how long a call into a plugin may run, in wall
//! time, not counting the time its thread waited for a CPU.
//!
//! The engine's epoch advances every tick on a thread of its own; a call's
//! epoch deadline is armed at `deadline / tick` ticks. When it is reached,
//! [`Deadline::on_expiry`] decides: a call that has had its whole deadline
//! (wall time since it started, less the time the scheduler kept its thread
//! waiting on a run queue) is interrupted, and the plugin traps; one that
//! has not is given the ticks it is still owed.
//!
//! Why: on a busy machine (more partitions than cores, a noisy neighbour,
//! the broker on the same cores) a call can reach its wall-clock deadline
//! having run for a fraction of it. Trapping it would dead-letter the
//! record for a fault of the host. Time the call spends blocked in a host
//! call (a read, a clock wait) still counts: only waiting for a CPU does
//! not, so a plugin that sleeps is still stopped.
//!
//! The waiting time comes from the kernel's scheduler statistics for the
//! calling thread (`/proc/thread-self/schedstat`, its second field: time
//! spent runnable but not running, in nanoseconds). Where the kernel does
//! not keep them, deadlines are plain wall time.

use std::cell::RefCell;
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;

/// When the call under way started, and how long its thread had waited for
/// a CPU by then.
#[derive(Debug, Clone, Copy)]
pub(super) struct CallClock {
    started: Instant,
    waited_before: Option<Duration>,
}

impl CallClock {
    /// A call starting now, on this thread.
    pub(super) fn start() -> Self {
        CallClock {
            started: Instant::now(),
            waited_before: thread_run_delay(),
        }
    }

    /// How long the call has had so far: wall time since it started, less
    /// the time its thread waited for a CPU meanwhile (if known).
    fn had(&self) -> Duration {
        let elapsed = self.started.elapsed();
        let waited = match (self.waited_before, thread_run_delay()) {
            (Some(before), Some(now)) => now.saturating_sub(before),
            _ => Duration::ZERO,
        };
        elapsed.saturating_sub(waited)
    }
}

/// A stage's deadline, in the engine's epoch ticks.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    limit: Duration,
    tick: Duration,
}

impl Deadline {
    pub(super) fn new(limit: Duration, tick: Duration) -> Self {
        Deadline { limit, tick }
    }

    /// The epoch ticks of the whole deadline, armed before each call.
    pub(super) fn ticks(&self) -> u64 {
        self.ticks_for(self.limit)
    }

    fn ticks_for(&self, time: Duration) -> u64 {
        let tick = self.tick.as_nanos().max(1);
        u64::try_from(time.as_nanos().div_ceil(tick).max(1)).unwrap_or(u64::MAX)
    }

    /// The epoch deadline of the call `clock` times was reached: interrupt
    /// it if it has had its deadline, else give it the rest.
    pub(super) fn on_expiry(&self, clock: &CallClock) -> UpdateDeadline {
        let had = clock.had();
        if had >= self.limit {
            UpdateDeadline::Interrupt
        } else {
            tracing::debug!(
                had = ?had,
                deadline = ?self.limit,
                "a plugin call reached its deadline in wall time while waiting for a CPU: extended"
            );
            UpdateDeadline::Continue(self.ticks_for(self.limit - had))
        }
    }
}

thread_local! {
    /// This thread's scheduler statistics, kept open: a read at offset 0
    /// regenerates them, one system call per call into a plugin.
    static SCHEDSTAT: RefCell<Option<File>> =
        RefCell::new(File::open("/proc/thread-self/schedstat").ok());
}

/// How long the calling thread has waited for a CPU since it started, or
/// `None` where the kernel does not say.
fn thread_run_delay() -> Option<Duration> {
    SCHEDSTAT.with_borrow(|file| {
        let mut buf = [0u8; 128];
        let read = file.as_ref()?.read_at(&mut buf, 0).ok()?;
        parse_run_delay(&buf[..read])
    })
}

/// The second field of a `schedstat` line (`run wait timeslices`).
fn parse_run_delay(schedstat: &[u8]) -> Option<Duration> {
    let text = std::str::from_utf8(schedstat).ok()?;
    let waited = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_nanos(waited))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waiting_time_is_the_second_field() {
        assert_eq!(
            parse_run_delay(b"1843206 52011 17\n"),
            Some(Duration::from_nanos(52011))
        );
        assert_eq!(parse_run_delay(b"1843206\n"), None);
        assert_eq!(parse_run_delay(b""), None);
    }

    #[test]
    fn this_kernel_reports_waiting_time() {
        // The machines weir runs on do; without it deadlines are plain wall
        // time, which this test would hide.
        assert!(thread_run_delay().is_some());
    }

    #[test]
    fn a_call_that_has_had_its_deadline_is_interrupted() {
        let deadline = Deadline::new(Duration::from_millis(100), Duration::from_millis(10));
        assert_eq!(deadline.ticks(), 10);
        let fresh = CallClock::start();
        assert!(matches!(
            deadline.on_expiry(&fresh),
            UpdateDeadline::Continue(ticks) if (1..=10).contains(&ticks)
        ));
        let old = CallClock {
            started: Instant::now() - Duration::from_millis(150),
            waited_before: thread_run_delay(),
        };
        assert!(matches!(
            deadline.on_expiry(&old),
            UpdateDeadline::Interrupt
        ));
    }
}
