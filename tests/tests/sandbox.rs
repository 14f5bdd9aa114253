//! Hostile plugins: a plugin that loops, hoards memory, panics or probes the
//! sandbox only ever costs its own record. The host survives, the record is
//! dead-lettered with a clear reason, and the rest of the batch completes.

use std::time::{Duration, Instant};

use weir::chain::{ChainResult, FailureKind};
use weir::runtime::{DocRecord, Grants, Limits, Trap};
use weir_tests::{chain, load, runtime, text_record};

fn tight_limits() -> Limits {
    Limits {
        max_memory_bytes: 64 << 20,
        deadline: Duration::from_millis(300),
        fuel: None,
    }
}

/// (record id, body): one well-behaved record between each hostile one.
const BATCH: [(&str, &str); 12] = [
    ("ok-1", "fine"),
    ("loop", "loop"),
    ("ok-2", "fine"),
    ("alloc", "alloc"),
    ("ok-3", "fine"),
    ("panic", "panic"),
    ("ok-4", "fine"),
    ("fs", "fs"),
    ("env", "env"),
    ("net", "net"),
    ("clock", "clock"),
    ("ok-5", "fine"),
];

fn batch() -> Vec<DocRecord> {
    BATCH
        .iter()
        .map(|(id, body)| text_record(id, body))
        .collect()
}

fn outcome(result: &ChainResult) -> (String, String) {
    match result {
        ChainResult::Done { outputs, .. } => (
            "done".into(),
            outputs
                .iter()
                .map(|o| String::from_utf8_lossy(&o.record().expect("a record").body).into_owned())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ChainResult::Failed(f) => (format!("{:?}", f.kind), f.reason.clone()),
    }
}

#[test]
fn hostile_records_are_isolated_and_explained() {
    let runtime = runtime();
    let chain = chain(&runtime, &[("hostile", "hostile", tight_limits())]);
    let mut worker = chain.start_worker().unwrap();
    let started = Instant::now();
    let results = worker.process(batch()).unwrap();
    let elapsed = started.elapsed();

    let by_id: Vec<(&str, (String, String))> = BATCH
        .iter()
        .map(|(id, _)| *id)
        .zip(results.iter().map(outcome))
        .collect();
    for (id, (kind, reason)) in &by_id {
        let expect = |want_kind: &str, want_reason: &str| {
            assert_eq!(kind, want_kind, "{id}: {reason}");
            assert!(
                reason.contains(want_reason),
                "{id}: {reason:?} should contain {want_reason:?}"
            );
        };
        match *id {
            id if id.starts_with("ok-") => expect("done", "fine"),
            "loop" => expect("Trap", "deadline exceeded: the call ran longer than 300ms"),
            "alloc" => expect("Trap", "memory limit exceeded: the plugin asked for"),
            "panic" => expect(
                "Trap",
                "plugin panicked: panicked at tests/plugins/hostile/src/lib.rs",
            ),
            "fs" => expect("BadInput", "denied: read /etc/passwd"),
            "env" => expect("BadInput", "denied: environment is empty"),
            "net" => expect("BadInput", "denied: connect to 127.0.0.1:9"),
            // A frozen clock: the Unix epoch.
            "clock" => expect("done", "0"),
            other => panic!("unexpected id {other}"),
        }
    }
    let ChainResult::Failed(panic) = &results[5] else {
        unreachable!()
    };
    assert!(
        panic
            .reason
            .contains("hostile plugin panics on purpose for panic"),
        "{}",
        panic.reason
    );
    assert_eq!(panic.kind, FailureKind::Trap);
    assert_eq!(panic.attempts, 1, "traps are not retried");
    // The loop costs one deadline when the batch traps and one more when it
    // is isolated; nothing is retried beyond that.
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");

    // The worker (with fresh instances) carries on with the next batch.
    let again = worker.process(vec![text_record("after", "fine")]).unwrap();
    assert_eq!(outcome(&again[0]), ("done".into(), "fine".into()));
}

#[test]
fn grants_lift_exactly_their_restriction() {
    let runtime = runtime();
    let hostile = load(&runtime, "hostile");
    // SAFETY of the test: PATH is set in any test environment.
    let path = std::env::var("PATH").expect("PATH is set");
    let grants = Grants {
        env: vec![("PATH".into(), path)],
        clocks: true,
        ..Grants::default()
    };
    let mut instance = hostile.instantiate(&tight_limits(), &grants, "{}").unwrap();
    let outcomes = instance
        .process(&[
            text_record("env", "env"),
            text_record("clock", "clock"),
            text_record("fs", "fs"),
        ])
        .unwrap();
    let env = outcomes[0].as_ref().unwrap_err();
    assert!(format!("{env:?}").contains("sandbox leak: environment variables are visible"));
    let now: u64 = String::from_utf8(outcomes[1].as_ref().unwrap()[0].body.clone())
        .unwrap()
        .parse()
        .unwrap();
    assert!(now > 1_600_000_000, "a real clock: {now}");
    // The filesystem stays closed: no directory was granted.
    assert!(format!("{:?}", outcomes[2]).contains("denied"));
}

/// This thread and `spinners` busy threads, all on one CPU: the thread
/// gets about 1 / (spinners + 1) of it, as on a crowded machine. Dropping
/// it stops the spinners and gives the thread its CPUs back.
struct Crowd {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    spinners: Vec<std::thread::JoinHandle<()>>,
    allowed_before: libc::cpu_set_t,
}

impl Crowd {
    fn on_one_cpu(spinners: usize) -> Crowd {
        use std::sync::atomic::{AtomicBool, Ordering};
        let size = size_of::<libc::cpu_set_t>();
        // SAFETY: a zeroed cpu_set_t is an empty set; the calls get its
        // size and write nothing else.
        let (allowed_before, one) = unsafe {
            let mut allowed: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(libc::sched_getaffinity(0, size, &mut allowed), 0);
            let cpu = (0..libc::CPU_SETSIZE as usize)
                .find(|&cpu| libc::CPU_ISSET(cpu, &allowed))
                .expect("an allowed CPU");
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut one);
            (allowed, one)
        };
        let pin = move || {
            // SAFETY: as above; 0 is the calling thread.
            assert_eq!(unsafe { libc::sched_setaffinity(0, size, &one) }, 0);
        };
        pin();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let spinners = (0..spinners)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    pin();
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        Crowd {
            stop,
            spinners,
            allowed_before,
        }
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for spinner in self.spinners.drain(..) {
            let _ = spinner.join();
        }
        let size = size_of::<libc::cpu_set_t>();
        // SAFETY: restores the mask read in `on_one_cpu`.
        unsafe { libc::sched_setaffinity(0, size, &self.allowed_before) };
    }
}

/// On a crowded machine a call reaches its deadline in wall time having
/// run for a fraction of it; the time its thread waited for a CPU does not
/// count, so a record that needs less than its deadline is not trapped
/// (it used to be dead-lettered, a fault of the host blamed on the record),
/// while a loop still is.
#[test]
fn waiting_for_a_cpu_does_not_count_against_the_deadline() {
    let runtime = runtime();
    let limits = Limits {
        deadline: Duration::from_millis(400),
        ..tight_limits()
    };
    // About 150 ms of CPU per record.
    let mut costly = load(&runtime, "echo")
        .instantiate(&limits, &Grants::default(), r#"{"work": 150}"#)
        .unwrap();
    let mut hostile = load(&runtime, "hostile")
        .instantiate(&limits, &Grants::default(), "{}")
        .unwrap();
    let crowd = Crowd::on_one_cpu(3);
    let started = Instant::now();
    let done = costly.process(&[text_record("costly", "fine")]);
    let took = started.elapsed();
    let looped = hostile.process(&[text_record("loop", "loop")]);
    drop(crowd);
    assert!(done.is_ok(), "after {took:?}: {done:?}");
    assert!(
        took > limits.deadline,
        "the call was not slowed down ({took:?}): the test shows nothing"
    );
    assert_eq!(looped, Err(Trap::Deadline(limits.deadline)));
}

#[test]
fn fuel_limits_stop_runaway_computation() {
    let runtime = weir::runtime::Runtime::new(&weir::runtime::RuntimeOptions {
        fuel: true,
        ..Default::default()
    })
    .unwrap();
    let limits = Limits {
        fuel: Some(50_000_000),
        deadline: Duration::from_secs(30),
        ..tight_limits()
    };
    let chain = chain(&runtime, &[("hostile", "hostile", limits)]);
    let mut worker = chain.start_worker().unwrap();
    let results = worker
        .process(vec![text_record("loop", "loop"), text_record("ok", "fine")])
        .unwrap();
    assert_eq!(outcome(&results[0]).0, "Trap");
    assert!(
        outcome(&results[0]).1.contains("fuel exhausted"),
        "{:?}",
        outcome(&results[0])
    );
    assert_eq!(outcome(&results[1]), ("done".into(), "fine".into()));
}

#[test]
fn a_trap_is_recovered_from_with_every_pool_slot_in_use() {
    // One slot: the worker's only instance. The trapped instance must give
    // its slot up before the fresh one takes it.
    let runtime = weir::runtime::Runtime::new(&weir::runtime::RuntimeOptions {
        max_instances: 1,
        ..Default::default()
    })
    .unwrap();
    let chain = chain(&runtime, &[("hostile", "hostile", tight_limits())]);
    let mut worker = chain.start_worker().unwrap();
    let results = worker
        .process(vec![
            text_record("ok-1", "fine"),
            text_record("panic", "panic"),
            text_record("ok-2", "fine"),
        ])
        .expect("the trapped instance is replaced within the pool");
    let outcomes: Vec<String> = results.iter().map(|r| outcome(r).0).collect();
    assert_eq!(outcomes, ["done", "Trap", "done"]);
}

#[test]
fn compiled_plugins_are_cached_on_disk() {
    let cache = tempfile::tempdir().unwrap();
    let options = weir::runtime::RuntimeOptions {
        compiled_cache_dir: Some(cache.path().to_owned()),
        ..Default::default()
    };
    let path = weir_tests::plugin_path("echo");
    let first = weir::runtime::Runtime::new(&options)
        .unwrap()
        .load_file(&path)
        .unwrap();
    assert_eq!(first.compiled_from(), weir::runtime::CompiledFrom::Compiled);
    let second = weir::runtime::Runtime::new(&options)
        .unwrap()
        .load_file(&path)
        .unwrap();
    assert_eq!(second.compiled_from(), weir::runtime::CompiledFrom::Cache);
    let artifacts: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(artifacts.len(), 1);
    let name = artifacts[0]
        .as_ref()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    assert!(name.starts_with(&first.digest().hex()), "{name}");
}

/// Outputs that break the contract (a content type that is not a media type
/// at all, a 10 MB id) dead-letter their record at the stage that emitted
/// them: they reach neither the next stage nor the results.
#[test]
fn outputs_that_break_the_contract_are_dead_lettered_where_they_are_emitted() {
    let runtime = runtime();
    let chain = chain(
        &runtime,
        &[
            ("hostile", "hostile", Limits::default()),
            ("echo", "echo", Limits::default()),
        ],
    );
    let mut worker = chain.start_worker().unwrap();
    let results = worker
        .process(vec![
            text_record("badtype", "badtype"),
            text_record("bigid", "bigid"),
            text_record("fine", "fine"),
        ])
        .unwrap();
    for (result, reason) in results
        .iter()
        .zip(["not a media type", "output id of 10485760 bytes"])
    {
        let ChainResult::Failed(failure) = result else {
            panic!("{reason}: {result:?}");
        };
        assert_eq!(failure.kind, FailureKind::Contract);
        assert_eq!(failure.stage, "hostile");
        assert!(failure.reason.contains(reason), "{}", failure.reason);
    }
    assert_eq!(outcome(&results[2]), ("done".into(), "fine".into()));
}

/// Bytes written by a tracing subscriber.
#[derive(Clone, Default)]
struct CountingWriter(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .fetch_add(buf.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A plugin that logs 200,000 lines of 1 KB while processing one record
/// puts a bounded amount on the host's log, says once what it dropped, and
/// its record still succeeds.
#[test]
fn a_plugin_cannot_flood_the_host_log() {
    let written = CountingWriter::default();
    let writer = written.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    let runtime = runtime();
    let chain = chain(&runtime, &[("hostile", "hostile", Limits::default())]);
    let mut worker = chain.start_worker().unwrap();
    let results = tracing::subscriber::with_default(subscriber, || {
        worker.process(vec![text_record("flood", "flood")]).unwrap()
    });
    assert_eq!(outcome(&results[0]).0, "done");
    let bytes = written.0.load(std::sync::atomic::Ordering::Relaxed);
    assert!(bytes < 1 << 20, "{bytes} bytes of log for one record");
    let counters: std::collections::BTreeMap<_, _> = worker.take_counters().into_iter().collect();
    let dropped = counters["hostile"].get(weir::runtime::DROPPED_COUNTER);
    assert!(
        dropped.is_some_and(|d| d >= 199_000),
        "dropped lines are counted: {dropped:?}"
    );
}
