//! Unit tests of the partition worker: delivery (every message in one
//! place, fencing) and event mode (verdicts, restore, never ahead of the
//! written results).

use std::time::Duration;

use super::*;
use crate::chain::Chain;
use crate::dlq::DeadLetterSink;
use crate::state::CheckpointPolicy;
use crate::storage::ObjectStore;
use crate::test_support::{chain_of, delete, message, revision, upsert};

/// A worker of partition `t`/0 writing to `store` (fenced as `owner`,
/// when given), with objects cut only when flushed.
fn worker(store: &ObjectStore, owner: Option<&str>, chain: &Arc<Chain>) -> PartitionWorker {
    worker_cutting_at(100, store, owner, chain)
}

/// [`worker`], with objects also cut every `max_records` inputs.
fn worker_cutting_at(
    max_records: usize,
    store: &ObjectStore,
    owner: Option<&str>,
    chain: &Arc<Chain>,
) -> PartitionWorker {
    let mut sink = Sink::new("p", store.clone(), DeadLetterSink::Store(store.clone()));
    if let Some(owner) = owner {
        sink = sink.with_fencing(owner.to_owned());
    }
    let batching = BatchingConfig {
        max_records,
        max_bytes: 1 << 30,
        max_age_ms: 3_600_000,
        ..BatchingConfig::default()
    };
    PartitionWorker::new(
        chain.start_worker().unwrap(),
        Arc::new(sink),
        DecodeConfig::default(),
        batching,
        "t",
        0,
    )
}

/// A worker of an `echo` chain on a memory store, resumed from offset 0;
/// with the runtime to keep alive and the store.
async fn resumed_echo_worker() -> (crate::runtime::Runtime, ObjectStore, PartitionWorker) {
    let (runtime, chain) = chain_of(&["echo"]);
    let chain = Arc::new(chain.unwrap());
    let store = ObjectStore::memory();
    let mut worker = worker(&store, None, &chain);
    worker.resume(0).await.unwrap();
    (runtime, store, worker)
}

#[tokio::test]
async fn every_message_ends_in_exactly_one_place() {
    let (_runtime, store, mut worker) = resumed_echo_worker().await;
    let delete = r#"{"id":"d","op":"delete","revision":2,"timestamp":"2024-01-01T00:00:00Z"}"#;
    let messages = vec![
        upsert(0, "a", "hello"),
        message(1, delete),
        message(2, "{oops"),
    ];
    assert_eq!(
        worker.process(messages).await.unwrap(),
        None,
        "nothing cut yet"
    );
    assert_eq!(worker.flush().await.unwrap(), Some(2));
    let s = worker.stats();
    assert_eq!(
        (s.records, s.results, s.tombstones, s.dead_letters),
        (3, 1, 1, 1)
    );
    assert_eq!(worker.last_durable(), Some(2));
    let keys = store.list("p/").await.unwrap();
    assert_eq!(
        keys.len(),
        2,
        "one results and one dead-letter object: {keys:?}"
    );
}

/// A line too long to hold is dead-lettered as oversized, its letter
/// marked as holding only the line's start (a redrive would otherwise take
/// the head for the record, and fail it as cut-off JSON).
#[tokio::test]
async fn a_cut_line_is_dead_lettered_as_such() {
    let (_runtime, store, mut worker) = resumed_echo_worker().await;
    let mut cut = message(0, "");
    cut.payload = crate::source::Payload::Cut {
        head: br#"{"id":"big","body":"xxx"#.to_vec(),
        bytes: 90_000_000,
    };
    worker.process(vec![cut]).await.unwrap();
    worker.flush().await.unwrap();
    let key = store.list("p/dead-letters/").await.unwrap().remove(0);
    let letter: DeadLetter =
        serde_json::from_slice(&store.get(&key).await.unwrap().unwrap()).unwrap();
    assert!(
        letter.reason.starts_with("the event is 90000000 bytes"),
        "{}",
        letter.reason
    );
    assert_eq!(
        letter.payload,
        crate::dlq::Payload::Truncated {
            head: r#"{"id":"big","body":"xxx"#.into(),
            bytes: 90_000_000
        }
    );
    assert!(letter.payload.is_partial());
}

/// `result` is the refusal of a worker whose partition's lease was taken.
fn assert_fenced<T: std::fmt::Debug>(result: &Result<T, WorkerError>) {
    assert!(
        matches!(
            result,
            Err(WorkerError::Sink(SinkError::Fence(
                crate::fence::FenceError::Fenced { .. }
            )))
        ),
        "{result:?}"
    );
}

/// A worker that lost its partition (another took the lease) writes
/// nothing more: its open batch is refused, and only the new owner's
/// object exists. Without fencing the zombie's object 0-2 would overlap
/// the new owner's 0-4.
#[tokio::test]
async fn a_fenced_worker_writes_nothing_more() {
    let (_runtime, chain) = chain_of(&["echo"]);
    let chain = Arc::new(chain.unwrap());
    let store = ObjectStore::memory();
    let mut zombie = worker(&store, Some("host-a"), &chain);
    zombie.resume(0).await.unwrap();
    let first: Vec<_> = (0..3).map(|o| upsert(o, "a", "x")).collect();
    zombie.process(first).await.unwrap();

    let mut owner = worker(&store, Some("host-b"), &chain);
    owner.resume(0).await.unwrap();
    let all: Vec<_> = (0..5).map(|o| upsert(o, "a", "x")).collect();
    owner.process(all).await.unwrap();
    assert_eq!(owner.flush().await.unwrap(), Some(4));

    let refused = zombie.flush().await;
    assert_fenced(&refused);
    let results = store.list("p/results/").await.unwrap();
    assert_eq!(
        results,
        ["p/results/t/0/00000000000000000000-00000000000000000004.jsonl.zst"]
    );
}

/// A full batch is written in the background: the worker returns for the
/// next inputs while the batch's PUT is unanswered, and counts the batch
/// as durable only once the write has returned. The fake S3 server below
/// holds its answers until the test lets them go; a worker that waited
/// for its write would never return from `process`.
#[tokio::test]
async fn a_full_batch_is_written_while_the_worker_goes_on() {
    use tokio::io::AsyncWriteExt;
    let (_runtime, chain) = chain_of(&["echo"]);
    let chain = Arc::new(chain.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (release, released) = tokio::sync::watch::channel(false);
    let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = requests.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let (mut released, seen) = (released.clone(), seen.clone());
            tokio::spawn(async move {
                loop {
                    let head = crate::test_support::read_request(&mut socket).await;
                    let Some(request) = head.lines().next().filter(|l| !l.is_empty()) else {
                        return;
                    };
                    // The method and path, without the query.
                    let method_path = request.split([' ', '?']).take(2).collect::<Vec<_>>();
                    seen.lock().unwrap().push(method_path.join(" "));
                    released.wait_for(|go| *go).await.unwrap();
                    let response = "HTTP/1.1 200 OK\r\netag: \"e\"\r\ncontent-length: 0\r\n\r\n";
                    socket.write_all(response.as_bytes()).await.unwrap();
                }
            });
        }
    });
    let client = crate::test_support::s3_client_at(address).await;
    let results = ObjectStore::s3(client, "b", "");
    let mut worker = worker_cutting_at(2, &results, None, &chain);
    let inputs = (0..3).map(|o| upsert(o, &format!("d{o}"), "x")).collect();
    let returned = tokio::time::timeout(Duration::from_secs(30), worker.process(inputs))
        .await
        .expect("the worker went on while its full batch was being written");
    assert_eq!(
        returned.unwrap(),
        None,
        "not durable before its write returns"
    );
    assert_eq!(worker.last_durable(), None);
    assert_eq!(worker.due_in(), Some(Duration::ZERO), "a write to wait for");
    release.send(true).unwrap();
    assert_eq!(worker.flush().await.unwrap(), Some(2));
    assert_eq!(worker.due_in(), None);
    let key = |first, last| format!("put /b/p/results/t/0/{first:020}-{last:020}.jsonl.zst");
    assert_eq!(*requests.lock().unwrap(), [key(0, 1), key(2, 2)]);
}

/// A background write that fails stops the worker at its next step, and
/// nothing of the batch counts as durable: here the worker lost its lease
/// while its full batch was on its way.
#[tokio::test]
async fn a_failed_background_write_stops_the_worker() {
    let (_runtime, chain) = chain_of(&["echo"]);
    let chain = Arc::new(chain.unwrap());
    let store = ObjectStore::memory();
    let mut zombie = worker_cutting_at(2, &store, Some("host-a"), &chain);
    zombie.resume(0).await.unwrap();
    let mut owner = worker(&store, Some("host-b"), &chain);
    owner.resume(0).await.unwrap();
    let inputs = (0..3).map(|o| upsert(o, "a", "x")).collect();
    // The write may have failed already, or not yet.
    let refused = match zombie.process(inputs).await {
        Err(e) => Err(e),
        Ok(_) => zombie.flush().await,
    };
    assert_fenced(&refused);
    assert_eq!(zombie.last_durable(), None);
    assert!(store.list("p/results/").await.unwrap().is_empty());
}

/// The counts of a worker's stats that event mode is about:
/// (results, tombstones, unchanged, stale).
fn event_counts(worker: &PartitionWorker) -> (u64, u64, u64, u64) {
    let s = worker.stats();
    (
        s.results,
        s.tombstones,
        s.skipped_unchanged,
        s.skipped_stale,
    )
}

/// A worker in event mode whose state starts empty and is restored
/// from `store` (checkpoints at every batch).
async fn event_worker(
    store: &ObjectStore,
    chain: &Arc<Chain>,
    dir: &std::path::Path,
) -> PartitionWorker {
    let state = PartitionState::for_assignment(
        dir,
        1 << 20,
        "t",
        0,
        CheckpointPolicy {
            every: Duration::ZERO,
        },
    )
    .unwrap();
    let mut worker = worker(store, None, chain).with_state(state);
    worker.resume(0).await.unwrap();
    worker
}

#[tokio::test]
async fn event_mode_skips_unchanged_and_stale_events_and_records_every_one() {
    let (_runtime, chain) = chain_of(&["echo"]);
    let chain = Arc::new(chain.unwrap());
    let store = ObjectStore::memory();
    let dir = tempfile::tempdir().unwrap();
    let mut first = event_worker(&store, &chain, dir.path()).await;
    first
        .process(vec![
            revision(0, "a", 1, "x"),
            revision(1, "b", 1, "y"),
            revision(2, "c", 1, "z"),
            // The same document twice in one call: both computed.
            revision(3, "a", 2, "x"),
        ])
        .await
        .unwrap();
    first.finish().await.unwrap();
    assert_eq!(event_counts(&first), (4, 0, 0, 0));

    // A new worker restores the state from the checkpoint and results.
    let mut second = event_worker(&store, &chain, dir.path()).await;
    second
        .process(vec![
            revision(4, "a", 3, "x"),   // same body: unchanged
            revision(5, "b", 2, "y2"),  // new body: computed
            revision(6, "c", 0, "old"), // older revision: stale
            delete(7, "c", 2),          // tombstone
            revision(8, "c", 3, "z"),   // re-created after a delete: computed
            message(9, "{oops"),        // dead letter
        ])
        .await
        .unwrap();
    second.finish().await.unwrap();
    assert_eq!(event_counts(&second), (2, 1, 1, 1));
    assert_eq!(second.stats().dead_letters, 1);

    // Every offset has exactly one line (results, skips) or dead letter.
    let mut offsets = Vec::new();
    for key in store.list("p/results/").await.unwrap() {
        let raw = zstd::decode_all(store.get(&key).await.unwrap().unwrap().as_slice()).unwrap();
        for line in raw.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let line: serde_json::Value = serde_json::from_slice(line).unwrap();
            offsets.push(line["position"]["offset"].as_i64().unwrap());
        }
    }
    offsets.sort();
    assert_eq!(offsets, [0, 1, 2, 3, 4, 5, 6, 7, 8]);

    // Rebuilt from the results alone (no checkpoints): the same verdicts.
    for key in store.list("p/checkpoints/").await.unwrap() {
        store.delete(&key).await.unwrap();
    }
    let mut third = event_worker(&store, &chain, dir.path()).await;
    third
        .process(vec![
            revision(10, "a", 4, "x"),
            revision(11, "b", 3, "y2"),
            revision(12, "c", 2, "z"),
            revision(13, "c", 4, "z"),
        ])
        .await
        .unwrap();
    assert_eq!(event_counts(&third), (0, 0, 3, 1));
}

/// Events of one document in one call are judged as they would be in
/// separate calls: after a tombstone or a skip as unchanged, a later event
/// of the document in the same call is compared with that outcome. (A late
/// older revision after a delete or an unchanged revision used to be
/// computed, and became the document's latest line; a second delete wrote
/// a second tombstone.)
#[tokio::test]
async fn events_of_a_document_in_one_call_are_judged_as_in_separate_calls() {
    let (_runtime, chain) = chain_of(&["echo"]);
    let chain = Arc::new(chain.unwrap());
    for (case, (second_call, expected)) in [
        (
            vec![delete(1, "a", 12), revision(2, "a", 11, "y")],
            (0, 1, 0, 1),
        ),
        (
            vec![revision(1, "a", 12, "x"), revision(2, "a", 11, "y")],
            (0, 0, 1, 1),
        ),
        (vec![delete(1, "a", 12), delete(2, "a", 13)], (0, 1, 1, 0)),
    ]
    .into_iter()
    .enumerate()
    {
        let store = ObjectStore::memory();
        let dir = tempfile::tempdir().unwrap();
        let mut first = event_worker(&store, &chain, dir.path()).await;
        first
            .process(vec![revision(0, "a", 10, "x")])
            .await
            .unwrap();
        first.finish().await.unwrap();
        let mut second = event_worker(&store, &chain, dir.path()).await;
        second.process(second_call).await.unwrap();
        assert_eq!(event_counts(&second), expected, "case {case}");
    }
}

/// A resumed worker in event mode: a local run's (state kept in `dir`)
/// or a Kafka host's (state restored into a fresh store).
async fn started(
    store: &ObjectStore,
    chain: &Arc<Chain>,
    dir: &std::path::Path,
    local: bool,
) -> PartitionWorker {
    if !local {
        return event_worker(store, chain, dir).await;
    }
    let state = PartitionState::local(dir, 1 << 20, "t", 0).unwrap();
    let mut worker = worker(store, None, chain).with_state(state);
    worker.resume(0).await.unwrap();
    worker
}

/// A batch that was never written leaves no trace in the state: after a
/// crash before the flush, its documents are computed again. Both kinds
/// of state: a Kafka host's (restored from checkpoints and results) and
/// a local run's (kept on disk between runs).
#[tokio::test]
async fn state_never_runs_ahead_of_the_written_results() {
    let (_runtime, chain) = chain_of(&["echo"]);
    let chain = Arc::new(chain.unwrap());
    for local in [false, true] {
        let store = ObjectStore::memory();
        let dir = tempfile::tempdir().unwrap();
        let mut crashed = started(&store, &chain, dir.path(), local).await;
        crashed.process(vec![upsert(0, "a", "x")]).await.unwrap();
        crashed.flush().await.unwrap();
        crashed.process(vec![upsert(1, "b", "y")]).await.unwrap();
        drop(crashed); // no flush: offset 1 was never written

        let mut next = started(&store, &chain, dir.path(), local).await;
        next.process(vec![upsert(1, "b", "y"), upsert(2, "a", "x")])
            .await
            .unwrap();
        assert_eq!(
            event_counts(&next),
            (1, 0, 1, 0),
            "local: {local}: b computed, a unchanged"
        );
    }
}

/// A local run killed after writing results (its state commits not yet
/// synced: lost), then a run of another file: the shared state catches up
/// with every file's results, so a document the killed run changed is not
/// compared with what it was before. (It used to catch up with the new
/// file's results only, and skip a revert as unchanged.)
#[tokio::test]
async fn a_local_run_catches_up_with_a_killed_run_of_another_file() {
    let (_runtime, chain) = chain_of(&["echo"]);
    let chain = Arc::new(chain.unwrap());
    let store = ObjectStore::memory();
    let dir = tempfile::tempdir().unwrap();
    let local_run = |file: &'static str| {
        let (store, chain, dir) = (store.clone(), chain.clone(), dir.path().to_owned());
        async move {
            let sink = Sink::new("p", store.clone(), DeadLetterSink::Store(store));
            let state = PartitionState::local(&dir, 1 << 20, file, 0).unwrap();
            let mut worker = PartitionWorker::new(
                chain.start_worker().unwrap(),
                Arc::new(sink),
                DecodeConfig::default(),
                BatchingConfig::default(),
                file,
                0,
            )
            .with_state(state);
            worker.resume(0).await.unwrap();
            worker
        }
    };
    let mut a = local_run("a.jsonl").await;
    a.process(vec![revision(0, "x", 1, "h1")]).await.unwrap();
    a.finish().await.unwrap();
    drop(a);
    let mut b = local_run("b.jsonl").await;
    // What a kill leaves: the store as of its last sync (b's start), with
    // b's results written.
    let synced = std::fs::read(dir.path().join("state.redb")).unwrap();
    b.process(vec![revision(0, "x", 2, "h2")]).await.unwrap();
    b.flush().await.unwrap();
    drop(b);
    std::fs::write(dir.path().join("state.redb"), synced).unwrap();
    let mut c = local_run("c.jsonl").await;
    c.process(vec![revision(0, "x", 3, "h1")]).await.unwrap();
    assert_eq!(event_counts(&c), (1, 0, 0, 0), "x differs from b's h2");
}

/// A worker that cannot start a newly published chain yet (here: a
/// granted directory not there yet) goes on with the old one and tries the
/// new one again before its next batch. (It used to stay on the old chain
/// until another one was published, while its host reported the new one.)
#[tokio::test]
async fn a_published_chain_that_cannot_start_yet_is_tried_again() {
    let (runtime, old) = chain_of(&["echo"]);
    let old = Arc::new(old.unwrap());
    let later = tempfile::tempdir().unwrap();
    let models = later.path().join("models");
    let echo = &old.stages()[0];
    let stage = crate::chain::Stage {
        name: echo.name.clone(),
        plugin: echo.plugin.clone(),
        config_json: r#"{"tag":"new"}"#.into(),
        limits: echo.limits.clone(),
        grants: crate::runtime::Grants {
            read_only_dirs: vec![(models.clone(), "/models".into())],
            ..crate::runtime::Grants::default()
        },
        retries: echo.retries,
        batch_size: echo.batch_size,
        grants_identity: None,
        cache: false,
    };
    let new = Arc::new(Chain::new(vec![stage]).unwrap());
    let (publish, published) = tokio::sync::watch::channel(old.clone());
    let store = ObjectStore::memory();
    let mut worker = worker(&store, None, &old).with_live_chain(published);
    worker.process(vec![upsert(0, "a", "x")]).await.unwrap();
    let behind = || {
        crate::telemetry::metrics::metrics()
            .partitions_behind_chain
            .get()
    };
    // Relative to the gauge before: it is the process's, shared by tests.
    let before = behind();
    publish.send_replace(new.clone());
    worker.process(vec![upsert(1, "b", "y")]).await.unwrap();
    assert_eq!(
        behind(),
        before + 1,
        "the partition on the old chain is not counted"
    );
    std::fs::create_dir(&models).unwrap();
    worker.process(vec![upsert(2, "c", "z")]).await.unwrap();
    assert_eq!(behind(), before);
    worker.finish().await.unwrap();
    drop(runtime);
    let mut chains = Vec::new();
    for key in store.list("p/results/").await.unwrap() {
        let raw = zstd::decode_all(store.get(&key).await.unwrap().unwrap().as_slice()).unwrap();
        for line in raw.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let line: serde_json::Value = serde_json::from_slice(line).unwrap();
            chains.push(line["chain"].as_str().unwrap().to_owned());
        }
    }
    let (old, new) = (old.identity().to_string(), new.identity().to_string());
    assert_eq!(chains, [old.clone(), old, new]);
}

/// Bodies stored by reference are fetched together, not one round trip
/// after another: the fake S3 server below answers none of the GETs until
/// all of them have arrived, so fetching one at a time never finishes.
/// Each reference still gets its own answer, in its record's place.
#[tokio::test]
async fn bodies_by_reference_are_fetched_together() {
    use tokio::io::AsyncWriteExt;
    const BODIES: usize = 4;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let all_arrived = Arc::new(tokio::sync::Barrier::new(BODIES));
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let all_arrived = all_arrived.clone();
            tokio::spawn(async move {
                crate::test_support::read_request(&mut socket).await;
                all_arrived.wait().await;
                let body = "<Error><Code>NoSuchKey</Code></Error>";
                let response = format!(
                    "HTTP/1.1 404 Not Found\r\ncontent-type: application/xml\r\n\
                     content-length: {}\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(response.as_bytes()).await.unwrap();
            });
        }
    });
    let sha256 = format!("sha256:{}", "0".repeat(64));
    let by_reference = |n: usize| {
        message(
            n as i64,
            &format!(
                r#"{{"id":"d{n}","op":"upsert","revision":1,"timestamp":"2024-01-01T00:00:00Z","body_ref":{{"uri":"s3://bodies/k{n}","sha256":"{sha256}"}}}}"#
            ),
        )
    };
    // Records with nothing to fetch between them: an inline body, a delete.
    let messages = vec![
        by_reference(0),
        upsert(1, "inline", "text"),
        by_reference(2),
        delete(3, "gone", 1),
        by_reference(4),
        by_reference(5),
    ];
    let decoded: Vec<_> = messages
        .into_iter()
        .map(|mut message| {
            let event = message.payload.decode(1 << 20);
            assert!(event.is_ok(), "{event:?}");
            (message, event)
        })
        .collect();
    let bodies = BodyStore::new(crate::test_support::s3_client_at(address).await);
    let fetched = tokio::time::timeout(
        Duration::from_secs(30),
        fetch_bodies(&bodies, &decoded, 1 << 20),
    )
    .await
    .expect("the GETs were sent one at a time: the server answers when all have arrived");
    let missing: Vec<Option<String>> = fetched
        .into_iter()
        .map(|result| match result {
            None => None,
            Some(Err(BodyError::Missing(uri))) => Some(uri),
            other => panic!("expected a missing body or nothing, got {other:?}"),
        })
        .collect();
    let expected: Vec<Option<String>> = [Some(0), None, Some(2), None, Some(4), Some(5)]
        .into_iter()
        .map(|n| n.map(|n| format!("s3://bodies/k{n}")))
        .collect();
    assert_eq!(missing, expected);
}
