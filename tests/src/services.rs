//! The real Kafka-compatible broker and S3 server for end-to-end tests,
//! started through the repository's own `scripts/dev-services.sh` on free
//! loopback ports (never assumed to be running), and helpers to talk to them
//! through the same clients production uses.
//!
//! [`Services::shared`] is one instance per test binary for tests that do
//! not disturb the servers; tests that stop a server start their own with
//! [`Services::start`]. The script's watchdog stops the servers when the
//! test process exits.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

/// A running broker + S3 server pair.
pub struct Services {
    dir: PathBuf,
    /// `host:port` of the broker.
    pub brokers: String,
    /// `http://host:port` of the S3 server.
    pub s3_endpoint: String,
    env: Vec<(String, String)>,
    _temp: Option<tempfile::TempDir>,
}

fn script() -> PathBuf {
    crate::workspace_root().join("scripts/dev-services.sh")
}

impl Services {
    /// The services shared by the tests of this binary.
    pub fn shared() -> &'static Services {
        static SHARED: OnceLock<Services> = OnceLock::new();
        SHARED.get_or_init(Services::start)
    }

    /// Start a fresh, private pair of servers.
    pub fn start() -> Services {
        let temp = tempfile::Builder::new()
            .prefix("weir-services-")
            .tempdir()
            .expect("temp dir");
        let dir = temp.path().to_owned();
        let output = Command::new(script())
            .arg("start")
            .arg(&dir)
            .args(["--watch", &std::process::id().to_string()])
            .output()
            .expect("run scripts/dev-services.sh");
        assert!(
            output.status.success(),
            "scripts/dev-services.sh start failed (run `scripts/dev-services.sh install`?):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let env: Vec<(String, String)> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let get = |key: &str| {
            env.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("dev-services did not report {key}"))
        };
        Services {
            brokers: get("WEIR_KAFKA_BROKERS"),
            s3_endpoint: get("WEIR_S3_ENDPOINT"),
            env,
            dir,
            _temp: Some(temp),
        }
    }

    /// The environment a `weir` process needs to reach these servers.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The directory holding the servers' state and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stop one server (`broker` or `s3`), keeping its data and port.
    pub fn stop(&self, which: &str) {
        self.script(&["stop", which]);
    }

    /// Start a stopped server again, on the same port and data.
    pub fn resume(&self, which: &str) {
        self.script(&["resume", which]);
    }

    fn script(&self, args: &[&str]) {
        let status = Command::new(script())
            .arg(args[0])
            .arg(&self.dir)
            .args(&args[1..])
            .status()
            .expect("run scripts/dev-services.sh");
        assert!(status.success(), "dev-services {args:?} failed");
    }

    /// The process ids of the running servers (broker, S3).
    pub fn pids(&self) -> Vec<u32> {
        ["broker", "s3"]
            .iter()
            .filter_map(|name| std::fs::read_to_string(self.dir.join(format!("{name}.pid"))).ok())
            .filter_map(|pid| pid.trim().parse().ok())
            .collect()
    }

    fn var(&self, key: &str) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("dev-services did not report {key}"))
    }

    /// An S3 client for the server (the tests' own checker; the host under
    /// test builds its client from the environment it is given).
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        let credentials = aws_sdk_s3::config::Credentials::new(
            self.var("AWS_ACCESS_KEY_ID"),
            self.var("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "weir-tests",
        );
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .http_client(weir::storage::http_client())
            .credentials_provider(credentials)
            .region(aws_sdk_s3::config::Region::new(
                self.var("AWS_REGION").to_owned(),
            ))
            .endpoint_url(&self.s3_endpoint)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Create a bucket.
    pub async fn create_bucket(&self, name: &str) {
        self.s3_client()
            .await
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "create bucket {name}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            });
    }

    /// Every object under `prefix` in `bucket`, decompressed and split into
    /// JSON lines, with the key each came from.
    pub async fn read_lines(&self, bucket: &str, prefix: &str) -> Vec<(String, serde_json::Value)> {
        self.read_new_lines(bucket, prefix, &mut BTreeSet::new())
            .await
    }

    /// Like [`Services::read_lines`], but only for the objects whose keys
    /// are not in `known` yet (which it adds): pollers read each object once
    /// instead of every object on every poll.
    pub async fn read_new_lines(
        &self,
        bucket: &str,
        prefix: &str,
        known: &mut BTreeSet<String>,
    ) -> Vec<(String, serde_json::Value)> {
        let store = weir::storage::ObjectStore::s3(self.s3_client().await, bucket, "");
        let mut lines = Vec::new();
        for key in store.list(prefix).await.expect("list objects") {
            if known.contains(&key) {
                continue;
            }
            let Some(raw) = store.get(&key).await.expect("get object") else {
                continue;
            };
            let text = if key.ends_with(".zst") {
                zstd::decode_all(raw.as_slice()).expect("valid zstd")
            } else {
                raw
            };
            for line in String::from_utf8(text).expect("UTF-8 objects").lines() {
                lines.push((key.clone(), serde_json::from_str(line).expect("JSON lines")));
            }
            known.insert(key);
        }
        lines
    }

    /// Create a topic (the broker does not create topics on first use).
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &self.brokers)
                .create()
                .expect("an admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let results = admin
            .create_topics([&topic], &AdminOptions::new())
            .await
            .expect("create topics");
        for result in results {
            result.unwrap_or_else(|(topic, code)| panic!("create topic {topic}: {code}"));
        }
    }

    /// The offsets `group` has committed for each partition of `topic`
    /// (-1 where it has none), read without joining the group.
    pub fn committed_offsets(&self, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", group)
            .create()
            .expect("a consumer");
        let mut list = rdkafka::TopicPartitionList::new();
        for p in 0..partitions {
            list.add_partition(topic, p);
        }
        let committed = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .expect("committed offsets");
        (0..partitions)
            .map(
                |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                    Some(rdkafka::Offset::Offset(o)) => o,
                    _ => -1,
                },
            )
            .collect()
    }

    /// The high watermark (next offset) of each partition of `topic`.
    pub fn high_watermarks(&self, topic: &str, partitions: i32) -> Vec<i64> {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", "weir-tests-watermarks")
            .create()
            .expect("a consumer");
        (0..partitions)
            .map(|p| {
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .expect("watermarks")
                    .1
            })
            .collect()
    }
}

/// Private servers stop with their owner, before their directory (which
/// holds the PID files the script stops them by) is removed. The script's
/// watchdog covers what a destructor cannot: a killed or aborted process.
impl Drop for Services {
    fn drop(&mut self) {
        let stopped = Command::new(script()).arg("stop").arg(&self.dir).status();
        if !stopped.is_ok_and(|s| s.success()) {
            eprintln!(
                "weir-tests: stopping the servers in {} failed",
                self.dir.display()
            );
        }
    }
}
