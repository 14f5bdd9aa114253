//! Child processes of the tests and benchmarks.
//!
//! - [`Spawned`]: a process that is killed when its handle is dropped, so
//!   a test that fails half-way does not leave hosts running (they would
//!   hold the shared broker's partitions and the machine's cores for the
//!   tests after it).
//! - [`measure`] and friends: whole commands, measured: wall time and CPU
//!   time (user + system) of a child process, as the benchmarks that
//!   compare `weir` runs with each other or with another tool report them.
//!   CPU time is what a run costs on a shared machine, where the broker and
//!   the S3 server use the same cores.

use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// A running child process, killed (SIGKILL) and reaped when dropped
/// unless it has already exited. Dereferences to its [`Child`].
pub struct Spawned {
    /// Always `Some` until [`Spawned::wait_with_output`] consumes it.
    child: Option<Child>,
}

impl Spawned {
    /// Start `command`; panics if it cannot start.
    pub fn start(command: &mut Command) -> Spawned {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        Spawned { child: Some(child) }
    }

    /// Wait for the exit, collecting the piped output (as
    /// [`Child::wait_with_output`]).
    pub fn wait_with_output(mut self) -> Output {
        let child = self.child.take().expect("not yet consumed");
        child.wait_with_output().expect("wait for the child")
    }
}

impl Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.child.as_ref().expect("not yet consumed")
    }
}

impl DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("not yet consumed")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut()
            && matches!(child.try_wait(), Ok(None))
        {
            // Errors are ignored: the process may exit between the two calls.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One measured command.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Wall time from start to exit.
    pub wall: Duration,
    /// CPU time of the process and of every process it waited for.
    pub cpu: Duration,
    /// What it printed on stdout.
    pub stdout: String,
}

/// CPU time (user + system) of the children this process has waited for.
fn children_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let usage = unsafe {
        assert_eq!(
            libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()),
            0
        );
        usage.assume_init()
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Run `command` to its end and measure it; panics (with its output) if it
/// fails. Nothing else may run children of this process meanwhile.
pub fn measure(mut command: Command) -> Measured {
    let cpu_before = children_cpu();
    let started = Instant::now();
    let output = command.output().expect("the command starts");
    let wall = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Measured {
        wall,
        cpu: children_cpu() - cpu_before,
        stdout,
    }
}

/// The median wall time and the median CPU time of `runs` (which must not
/// be empty), each taken on its own, with the output of the run of median
/// CPU time.
pub fn median(mut runs: Vec<Measured>) -> Measured {
    let middle = runs.len() / 2;
    let mut walls: Vec<Duration> = runs.iter().map(|m| m.wall).collect();
    walls.sort();
    runs.sort_by_key(|m| m.cpu);
    let mut run = runs.swap_remove(middle);
    run.wall = walls[middle];
    run
}

/// One measured case: a name and what runs it.
pub type Case<'a> = (&'a str, Box<dyn FnMut() -> Measured + 'a>);

/// Run each case `runs` times, in turn (so that a slow moment of the
/// machine falls on every case alike), and keep each case's median.
pub fn in_turn(runs: usize, cases: &mut [Case<'_>]) -> Vec<Measured> {
    let mut all: Vec<Vec<Measured>> = vec![Vec::new(); cases.len()];
    for _ in 0..runs {
        for (i, (_, case)) in cases.iter_mut().enumerate() {
            all[i].push(case());
        }
    }
    all.into_iter().map(median).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test that panics drops its processes: they must not outlive it.
    #[test]
    fn a_dropped_process_is_killed_and_reaped() {
        let sleeper = Spawned::start(Command::new("sleep").arg("600"));
        let proc_dir = format!("/proc/{}", sleeper.id());
        assert!(std::path::Path::new(&proc_dir).exists());
        drop(sleeper);
        assert!(!std::path::Path::new(&proc_dir).exists(), "{proc_dir}");
    }
}
