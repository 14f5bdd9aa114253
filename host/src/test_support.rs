//! Helpers for the host's unit tests: real plugin components (installed by
//! the build script), chains of them, source messages, and S3 clients of
//! fake servers on local sockets.

use std::path::PathBuf;
use std::sync::Arc;

use crate::chain::{Chain, Stage};
use crate::runtime::{DocRecord, Grants, Limits, Runtime, RuntimeOptions};
use crate::source::{Position, SourceMessage};

/// The component file of the plugin `name` (`echo`, `hostile`, `parse`, ...).
pub(crate) fn plugin_path(name: &str) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("wasm")
        .join(format!("{name}.wasm"))
}

/// A runtime and a chain of one stage per plugin in `plugins` (stage names
/// are the plugin names). Keep the runtime alive while the chain runs.
pub(crate) fn chain_of(
    plugins: &[&str],
) -> (Runtime, Result<Chain, Vec<crate::chain::ChainError>>) {
    let runtime = Runtime::new(&RuntimeOptions::default()).expect("engine starts");
    let stages = plugins
        .iter()
        .map(|name| Stage {
            name: (*name).to_owned(),
            plugin: Arc::new(runtime.load_file(&plugin_path(name)).expect("plugin loads")),
            config_json: "{}".to_owned(),
            limits: Limits::default(),
            grants: Grants::default(),
            retries: 1,
            batch_size: 16,
            grants_identity: None,
            cache: true,
        })
        .collect();
    let chain = Chain::new(stages);
    (runtime, chain)
}

/// A record of document `d`, revision 1, of `content_type`, with `body`
/// and no metadata: an output as a plugin would emit it.
pub(crate) fn doc(content_type: &str, body: &[u8]) -> DocRecord {
    DocRecord {
        id: "d".into(),
        revision: 1,
        content_type: content_type.into(),
        body: body.to_vec(),
        metadata: Vec::new(),
    }
}

/// A message of topic `t`, partition 0, at `offset`, with `payload`.
pub(crate) fn message(offset: i64, payload: &str) -> SourceMessage {
    SourceMessage {
        position: Position {
            topic: "t".into(),
            partition: 0,
            offset,
        },
        payload: crate::source::Payload::Raw(payload.as_bytes().to_vec()),
    }
}

/// An upsert change event of document `id` with a plain-text body.
pub(crate) fn upsert(offset: i64, id: &str, body: &str) -> SourceMessage {
    revision(offset, id, 1, body)
}

/// An upsert of document `id` at `revision`.
pub(crate) fn revision(offset: i64, id: &str, revision: u64, body: &str) -> SourceMessage {
    message(
        offset,
        &format!(
            r#"{{"id":"{id}","op":"upsert","revision":{revision},"timestamp":"2024-01-01T00:00:00Z","content_type":"text/plain","body":"{body}"}}"#
        ),
    )
}

/// A delete change event of document `id`.
pub(crate) fn delete(offset: i64, id: &str, revision: u64) -> SourceMessage {
    message(
        offset,
        &format!(
            r#"{{"id":"{id}","op":"delete","revision":{revision},"timestamp":"2024-01-01T00:00:00Z"}}"#
        ),
    )
}

/// An S3 client of the server at `address` (a fake one on a local socket)
/// with the pipeline's defaults for an endpoint: path-style addressing,
/// payloads signed over HTTP.
pub(crate) async fn s3_client_at(address: std::net::SocketAddr) -> aws_sdk_s3::Client {
    s3_client_with(&crate::config::S3Settings {
        endpoint: Some(format!("http://{address}")),
        region: Some("us-east-1".into()),
        path_style: true,
        sign_payloads: None,
        ..crate::config::S3Settings::default()
    })
    .await
}

/// The client production builds for `settings`, with static credentials
/// and without the SDK's own retries: a fake server answers a scripted
/// number of requests (the store's retries are what the tests check).
pub(crate) async fn s3_client_with(settings: &crate::config::S3Settings) -> aws_sdk_s3::Client {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "k", "s", None, None, "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled());
    aws_sdk_s3::Client::from_conf(crate::storage::s3_config(settings, loader).await)
}

/// Read one request from `socket`, body included; returns its head,
/// lowercased.
pub(crate) async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut request = Vec::new();
    while !request.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if socket.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        request.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
    let body_length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |length| length.trim().parse().unwrap());
    let mut body = vec![0u8; body_length];
    socket.read_exact(&mut body).await.unwrap();
    head
}

/// A live pipeline reading Kafka topic `t` in group `live-group`, writing
/// to a local directory and dead-lettering to the topic
/// `live-dead-letters`, with `middle` (its stages, a registry) in between.
pub(crate) fn live_kafka_pipeline(middle: &str) -> String {
    format!(
        "[pipeline]\nname = \"live\"\n[source.kafka]\nbrokers = \"b:9092\"\ntopic = \"t\"\n\
         group = \"live-group\"\n{middle}\n[output.local]\ndir = \"out\"\n\
         [dead_letter.kafka]\ntopic = \"live-dead-letters\"\n"
    )
}
