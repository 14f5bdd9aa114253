//! Unit tests of the sink: keys, batches written in turn, and resuming.

use super::*;
use crate::event::Operation;
use crate::state::Skip;

#[test]
fn key_ranges_are_read_back_from_keys() {
    let sink = Sink::new(
        "p",
        ObjectStore::local("/x"),
        DeadLetterSink::Store(ObjectStore::local("/x")),
    );
    let key = sink.results_key("t", 3, 7, 42);
    assert_eq!(
        key,
        "p/results/t/3/00000000000000000007-00000000000000000042.jsonl.zst"
    );
    assert_eq!(key_range(&key), Some((7, 42)));
    assert_eq!(
        key_range(&sink.dead_letters_key("t", 3, 7, 42)),
        Some((7, 42))
    );
    assert_eq!(key_range("p/results/t/3/garbage"), None);
}

/// The line of a stale event at `position`.
fn stale(position: &Position) -> SkipLine<'_> {
    SkipLine {
        position,
        id: "d",
        revision: 1,
        op: Operation::Upsert,
        content_hash: None,
        chain: None,
        skipped: Skip::Stale,
    }
}

fn position(offset: i64) -> Position {
    Position {
        topic: "t".into(),
        partition: 0,
        offset,
    }
}

/// Objects of consecutive batches hold their own lines only: the batch
/// buffer is kept for the next batch, but emptied.
#[tokio::test]
async fn consecutive_batches_write_their_own_lines_at_the_configured_level() {
    let store = ObjectStore::memory();
    let sink =
        Sink::new("p", store.clone(), DeadLetterSink::Store(store.clone())).with_zstd_level(-3);
    let mut batch = PartitionBatch::new("t", 0);
    let mut buffer = ResultsBuffer::default();
    for range in [0..3, 3..5] {
        let mut expected = Vec::new();
        for offset in range.clone() {
            batch.push_skip(&stale(&position(offset)));
            expected.extend(serde_json::to_vec(&stale(&position(offset))).unwrap());
            expected.push(b'\n');
        }
        let sealed = batch.seal(std::mem::take(&mut buffer)).unwrap();
        let written = sink.write(sealed, None).await.unwrap();
        buffer = written.buffer;
        let flushed = written.flushed;
        assert_eq!(
            (flushed.first_offset, flushed.last_offset),
            (range.start, range.end - 1)
        );
        let bytes = store.get(&flushed.results_key).await.unwrap().unwrap();
        assert_eq!(zstd::decode_all(bytes.as_slice()).unwrap(), expected);
    }
    assert!(batch.seal(buffer).is_none(), "nothing left to write");
}

#[tokio::test]
async fn resume_adopts_written_ranges_and_deletes_orphaned_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::local(dir.path());
    let sink = Sink::new("p", store.clone(), DeadLetterSink::Store(store.clone()));
    for (first, last) in [(0, 9), (10, 19), (20, 29)] {
        store
            .put(&sink.results_key("t", 0, first, last), Vec::new())
            .await
            .unwrap();
        store
            .put(&sink.dead_letters_key("t", 0, first, last), Vec::new())
            .await
            .unwrap();
    }
    // Dead letters of a range whose results object was never written.
    store
        .put(&sink.dead_letters_key("t", 0, 30, 35), Vec::new())
        .await
        .unwrap();
    assert_eq!(
        sink.resume_point("t", 0, 10, None).await.unwrap(),
        [(10, 19), (20, 29)]
    );
    assert_eq!(sink.resume_point("t", 0, 30, None).await.unwrap(), []);
    let left = store.list("p/dead-letters/").await.unwrap();
    assert_eq!(left.len(), 3, "only the orphan is gone: {left:?}");
    assert_eq!(sink.resume_point("t", 1, 0, None).await.unwrap(), []);
}

/// A range that starts before the committed offset and ends after it
/// (an offset reset, or retention moving the first offset) is adopted,
/// however far back it starts.
#[tokio::test]
async fn a_range_straddling_the_committed_offset_is_adopted() {
    let store = ObjectStore::memory();
    let sink = Sink::new("p", store.clone(), DeadLetterSink::Store(store.clone()));
    for (first, last) in [(0, 9), (10, 19), (20, 99_999), (100_000, 100_009)] {
        store
            .put(&sink.results_key("t", 0, first, last), Vec::new())
            .await
            .unwrap();
    }
    // Dead letters of an unwritten range straddling the offset: orphaned.
    store
        .put(&sink.dead_letters_key("t", 0, 100_005, 100_020), Vec::new())
        .await
        .unwrap();
    assert_eq!(
        sink.resume_point("t", 0, 15, None).await.unwrap(),
        [(10, 19), (20, 99_999), (100_000, 100_009)]
    );
    assert_eq!(
        sink.resume_point("t", 0, 50_000, None).await.unwrap(),
        [(20, 99_999), (100_000, 100_009)]
    );
    assert_eq!(
        sink.resume_point("t", 0, 100_010, None).await.unwrap(),
        [],
        "ranges that end before the offset are history"
    );
    assert!(store.list("p/dead-letters/").await.unwrap().is_empty());
}

/// A host that lost its partition while it looked for orphaned dead
/// letters deletes none: the new owner may have written them under the
/// same key since.
#[tokio::test]
async fn a_host_that_lost_its_lease_deletes_no_orphaned_dead_letters() {
    let store = ObjectStore::memory();
    let sink = |owner: &str| {
        Sink::new("p", store.clone(), DeadLetterSink::Store(store.clone()))
            .with_fencing(owner.into())
    };
    let zombie = sink("zombie");
    let mut lease = zombie.take_lease("t", 0).await.unwrap().unwrap();
    sink("successor").take_lease("t", 0).await.unwrap();
    let orphan = zombie.dead_letters_key("t", 0, 0, 9);
    store.put(&orphan, Vec::new()).await.unwrap();
    let resumed = zombie.resume_point("t", 0, 0, Some(&mut lease)).await;
    assert!(matches!(resumed, Err(SinkError::Fence(_))), "{resumed:?}");
    assert_eq!(store.list("p/dead-letters/").await.unwrap(), [orphan]);
}

/// A writer whose partition is taken over while it writes its dead letters
/// (a Kafka topic waiting for acknowledgements, a slow store) writes no
/// results object after them: the lease is checked again before each
/// write. The fake dead-letter store below lets another host take the
/// lease before it answers the dead letters' PUT.
#[tokio::test]
async fn a_writer_taken_over_during_its_dead_letters_writes_no_results() {
    use tokio::io::AsyncWriteExt;
    let results = ObjectStore::memory();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_letters = ObjectStore::s3(
        crate::test_support::s3_client_at(listener.local_addr().unwrap()).await,
        "dead",
        "",
    );
    let zombie = Sink::new("p", results.clone(), DeadLetterSink::Store(dead_letters))
        .with_fencing("zombie".into());
    let mut lease = zombie.take_lease("t", 0).await.unwrap().unwrap();
    let successor = Sink::new(
        "p",
        results.clone(),
        DeadLetterSink::Store(ObjectStore::memory()),
    )
    .with_fencing("successor".into());
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        crate::test_support::read_request(&mut socket).await;
        successor.take_lease("t", 0).await.unwrap();
        let response = "HTTP/1.1 200 OK\r\netag: \"1\"\r\ncontent-length: 0\r\n\r\n";
        socket.write_all(response.as_bytes()).await.unwrap();
    });

    let mut batch = PartitionBatch::new("t", 0);
    batch.push_dead_letter(&DeadLetter::before_chain(
        position(0),
        crate::dlq::DeadLetterKind::Decode,
        "not JSON".into(),
        None,
        crate::dlq::Payload::from_bytes(b"x"),
    ));
    batch.push_skip(&stale(&position(1)));
    let sealed = batch.seal(ResultsBuffer::default()).unwrap();
    let written = zombie.write(sealed, Some(&mut lease)).await;
    assert!(
        matches!(written, Err(SinkError::Fence(_))),
        "{:?}",
        written.err()
    );
    assert!(
        results.list("p/results/").await.unwrap().is_empty(),
        "the taken-over writer wrote results"
    );
}
