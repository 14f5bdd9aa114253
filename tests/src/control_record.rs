//! A transaction's commit marker written into a partition over the Kafka
//! protocol itself (a Produce request of one control batch).
//!
//! The test broker (tansu 0.6) stores and serves control batches, but does
//! not take `EndTxn`, so a transactional producer cannot end a transaction
//! on it. A consumer then fetches what a committed transaction leaves in a
//! partition: a control record at the next offset, which librdkafka reads
//! and never hands to the application.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Produce, version 3: the first with record batches (magic 2).
const PRODUCE: i16 = 0;
const PRODUCE_VERSION: i16 = 3;
/// Record batch attributes: transactional, control.
const TRANSACTIONAL: i16 = 0x10;
const CONTROL: i16 = 0x20;
/// Control record key: version 0, type 1 (commit).
const COMMIT_KEY: [u8; 4] = [0, 0, 0, 1];
/// Transaction marker value: version 0, coordinator epoch 0.
const MARKER_VALUE: [u8; 6] = [0; 6];

/// Append a commit marker to `partition` of `topic` on the broker at
/// `broker` (`host:port`); panics unless the broker accepts it.
pub fn append_commit_marker(broker: &str, topic: &str, partition: i32) {
    let batch = commit_marker_batch();
    let mut body = Vec::new();
    put_i16(&mut body, PRODUCE);
    put_i16(&mut body, PRODUCE_VERSION);
    put_i32(&mut body, 1); // correlation id
    put_str(&mut body, "weir-tests");
    put_i16(&mut body, -1); // no transactional id
    put_i16(&mut body, -1); // acks: all
    put_i32(&mut body, 30_000); // timeout, ms
    put_i32(&mut body, 1); // topics
    put_str(&mut body, topic);
    put_i32(&mut body, 1); // partitions
    put_i32(&mut body, partition);
    put_i32(&mut body, len_i32(&batch));
    body.extend_from_slice(&batch);

    let mut stream = TcpStream::connect(broker).expect("connect to the broker");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = Vec::new();
    put_i32(&mut request, len_i32(&body));
    request.extend_from_slice(&body);
    stream
        .write_all(&request)
        .expect("send the Produce request");
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("a Produce response");
    let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
    stream
        .read_exact(&mut response)
        .expect("a Produce response");

    // correlation id, topics (1), topic name, partitions (1), index, error.
    let mut at = 4 + 4;
    let name_len = i16::from_be_bytes([response[at], response[at + 1]]) as usize;
    at += 2 + name_len + 4 + 4;
    let error = i16::from_be_bytes([response[at], response[at + 1]]);
    assert_eq!(error, 0, "the broker refused the commit marker");
}

/// A record batch of one control record: a transaction's commit marker.
fn commit_marker_batch() -> Vec<u8> {
    let mut record = Vec::new();
    record.push(0); // attributes
    put_varint(&mut record, 0); // timestamp delta
    put_varint(&mut record, 0); // offset delta
    put_varint(&mut record, COMMIT_KEY.len() as i64);
    record.extend_from_slice(&COMMIT_KEY);
    put_varint(&mut record, MARKER_VALUE.len() as i64);
    record.extend_from_slice(&MARKER_VALUE);
    put_varint(&mut record, 0); // headers

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // What the checksum covers: from the attributes to the end.
    let mut checked = Vec::new();
    put_i16(&mut checked, TRANSACTIONAL | CONTROL);
    put_i32(&mut checked, 0); // last offset delta
    put_i64(&mut checked, now); // first timestamp
    put_i64(&mut checked, now); // max timestamp
    put_i64(&mut checked, 1); // producer id
    put_i16(&mut checked, 0); // producer epoch
    put_i32(&mut checked, -1); // base sequence
    put_i32(&mut checked, 1); // records
    put_varint(&mut checked, record.len() as i64);
    checked.extend_from_slice(&record);
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &checked) as u32;

    let mut batch = Vec::new();
    put_i64(&mut batch, 0); // base offset (the broker assigns it)
    // Batch length: what follows it (leader epoch 4, magic 1, crc 4).
    put_i32(&mut batch, len_i32(&checked) + 9);
    put_i32(&mut batch, -1); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&crc.to_be_bytes());
    batch.extend_from_slice(&checked);
    batch
}

fn len_i32(bytes: &[u8]) -> i32 {
    i32::try_from(bytes.len()).expect("a small request")
}

fn put_i16(out: &mut Vec<u8>, n: i16) {
    out.extend_from_slice(&n.to_be_bytes());
}

fn put_i32(out: &mut Vec<u8>, n: i32) {
    out.extend_from_slice(&n.to_be_bytes());
}

fn put_i64(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(&n.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_i16(out, i16::try_from(s.len()).expect("a short string"));
    out.extend_from_slice(s.as_bytes());
}

/// A zigzag varint, as records encode their lengths and deltas.
fn put_varint(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_zigzag_encoded() {
        let encoded = |n| {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            out
        };
        assert_eq!(encoded(0), [0]);
        assert_eq!(encoded(-1), [1]);
        assert_eq!(encoded(4), [8]);
        assert_eq!(encoded(300), [0xd8, 0x04]);
    }

    #[test]
    fn batches_are_checked_with_crc_32c() {
        let check = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, b"123456789");
        assert_eq!(check, 0xe306_9283);
    }
}
