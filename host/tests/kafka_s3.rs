//! End-to-end: `weir ingest` and `weir run` as real processes against a real
//! Kafka-compatible broker (tansu) and a real S3 server (s3s-fs), started by
//! `scripts/dev-services.sh`. Every test uses a fresh topic, group and bucket
//! and checks the exactly-once accounting: every input offset appears once,
//! in a results object or a dead-letter object, never twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use weir_tests::e2e::{PIPELINE, Scenario};
use weir_tests::services::Services;

fn weir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// The chain's outputs per (id, revision, op), from result lines.
fn outputs_by_document(
    lines: impl IntoIterator<Item = Value>,
) -> BTreeMap<(String, u64, String), Value> {
    lines
        .into_iter()
        .map(|l| {
            (
                (
                    l["id"].as_str().unwrap().to_owned(),
                    l["revision"].as_u64().unwrap(),
                    l["op"].as_str().unwrap().to_owned(),
                ),
                l["outputs"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_offset_once_and_the_same_results_as_local_mode() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    let scenario = Scenario::new(services, "once", 4, "").await;
    let (input, valid) = weir_tests::e2e::input_with_planted_faults(scenario.dir());
    let ingested = scenario.ingest(&weir(), services, &input);
    assert!(
        ingested.contains(&format!("{} events", valid + 3)),
        "{ingested}"
    );
    assert!(ingested.contains("2 not valid change events"), "{ingested}");
    assert!(
        ingested.contains("2 bodies sent by reference"),
        "Anarchism and Autism, over 100 KB: {ingested}"
    );

    let host = scenario.start_host(&weir(), services, 0, "replica-0");
    let places = scenario
        .wait_accounted(services, Duration::from_secs(120))
        .await;
    // The running host commits what is durable (asynchronously, confirmed
    // by the broker), not only at shutdown.
    let watermarks = services.high_watermarks(&scenario.topic, scenario.partitions);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut committed = Vec::new();
    while std::time::Instant::now() < deadline {
        committed =
            services.committed_offsets(&scenario.group, &scenario.topic, scenario.partitions);
        if committed == watermarks {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(committed, watermarks, "committed while running");
    let (code, stdout) = host.terminate();
    assert_eq!(code, Some(0), "graceful shutdown exits 0: {stdout}");
    assert!(stdout.contains("dead-lettered"), "{stdout}");
    scenario.assert_exactly_once(services, &places).await;

    // The planted faults, and only they, are dead letters, with reasons.
    let dead = services
        .read_lines(&scenario.bucket, &format!("{PIPELINE}/dead-letters/"))
        .await;
    let reasons: Vec<&str> = dead
        .iter()
        .map(|(_, d)| d["reason"].as_str().unwrap())
        .collect();
    assert_eq!(dead.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("key must be a string")));
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("missing field `revision`"))
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("the body at s3://nowhere/missing"))
    );
    // Positions point at the topic; the big body went by reference and came back.
    let results = services
        .read_lines(&scenario.bucket, &format!("{PIPELINE}/results/"))
        .await;
    let results: Vec<Value> = results.into_iter().map(|(_, l)| l).collect();
    assert!(
        results
            .iter()
            .all(|l| l["position"]["topic"] == scenario.topic)
    );
    let anarchism = results.iter().find(|l| l["id"] == "enwiki:12").unwrap();
    assert!(
        anarchism["outputs"][0]["json"]["text"]
            .as_str()
            .unwrap()
            .len()
            > 50_000
    );
    assert_eq!(anarchism["lineage"].as_array().unwrap().len(), 3);

    // The same documents through the local mode give the same outputs.
    let local = local_outputs(
        &weir_tests::workspace_root().join("examples/wiki/data/enwiki-sample-events.jsonl"),
        scenario.dir(),
    );
    assert_eq!(outputs_by_document(results), local);
}

/// Outputs of the local mode (file in, directory out) for `input`.
fn local_outputs(input: &Path, dir: &Path) -> BTreeMap<(String, u64, String), Value> {
    let out = dir.join("local-out");
    let text = format!(
        r#"
[pipeline]
name = "local"
[source.file]
path = "{input}"
[runtime]
plugin_dir = "{plugins}"
{stages}
[output.local]
dir = "{out}"
[dead_letter.local]
dir = "{out}"
"#,
        input = input.display(),
        plugins = weir_tests::plugin_dir().display(),
        stages = weir_tests::e2e::DOCUMENT_STAGES,
        out = out.display()
    );
    let path = dir.join("local.toml");
    std::fs::write(&path, text).unwrap();
    let status = std::process::Command::new(weir())
        .args(["run", "-c"])
        .arg(&path)
        .env("WEIR_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success());
    outputs_by_document(weir_tests::read_jsonl_objects(&out.join("local/results")))
}

/// Ingest the bundled dump `times` times (206 events each, 4 partitions).
fn ingest_dump(scenario: &Scenario, services: &Services, times: usize) {
    for _ in 0..times {
        scenario.ingest(&weir(), services, &weir_tests::sample_dump());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    // Static group membership: a restarted host takes over its dead
    // predecessor's partitions at once instead of waiting for the group to
    // notice the death (see docs/decisions.md).
    let static_member =
        "\n[source.kafka.properties]\n\"group.instance.id\" = \"${WEIR_INSTANCE_ID}\"\n";
    let scenario = Scenario::new(services, "kill9", 4, static_member).await;
    ingest_dump(&scenario, services, 6);
    // A fixed pseudo-random sequence of kill points after the partitions are
    // assigned (mid-batch, mid-upload, mid-commit), so every run of the test
    // hits the same points.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..10 {
        let host = scenario.start_host(&weir(), services, round, "replica-0");
        assert!(
            host.wait_for_log("partition assigned", Duration::from_secs(60))
                .await,
            "round {round}: no partitions assigned"
        );
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let wait = Duration::from_millis(100 + state % 1200);
        tokio::time::sleep(wait).await;
        host.kill_9();
        let done = scenario.account(services).await.len();
        eprintln!("round {round}: killed {wait:?} after assignment, {done} offsets accounted");
    }
    let host = scenario.start_host(&weir(), services, 10, "replica-0");
    let places = scenario
        .wait_accounted(services, Duration::from_secs(180))
        .await;
    let (code, _) = host.terminate();
    assert_eq!(code, Some(0));
    scenario.assert_exactly_once(services, &places).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_share_the_partitions() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    let scenario = Scenario::new(services, "replicas", 4, "").await;
    ingest_dump(&scenario, services, 3);
    let first = scenario.start_host(&weir(), services, 0, "replica-0");
    // Let the first replica make progress alone, then add the second.
    while scenario.account(services).await.len() < 40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let second = scenario.start_host(&weir(), services, 1, "replica-1");
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (code, first_out) = first.terminate();
    assert_eq!(code, Some(0), "{first_out}");
    let places = scenario
        .wait_accounted(services, Duration::from_secs(180))
        .await;
    let (code, second_out) = second.terminate();
    assert_eq!(code, Some(0), "{second_out}");
    scenario.assert_exactly_once(services, &places).await;
    // Both replicas did work.
    let log = std::fs::read_to_string(scenario.dir().join("host-1.log")).unwrap();
    assert!(
        log.contains("partition assigned"),
        "the second replica got partitions"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_outage_stalls_the_host_without_loss_or_unbounded_memory() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::start();
    let scenario = Scenario::new(&services, "s3down", 4, "").await;
    ingest_dump(&scenario, &services, 3);
    let mut host = scenario.start_host(&weir(), &services, 0, "replica-0");
    while scenario.account(&services).await.len() < 40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    services.stop("s3");
    let mut peak_rss = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            host.is_running(),
            "the host must survive the outage:\n{}",
            host.log_tail()
        );
        peak_rss = peak_rss.max(host.rss_kib());
    }
    services.resume("s3");
    let places = scenario
        .wait_accounted(&services, Duration::from_secs(180))
        .await;
    assert!(host.is_running());
    let (code, _) = host.terminate();
    assert_eq!(code, Some(0));
    scenario.assert_exactly_once(&services, &places).await;
    eprintln!("peak RSS during the 20 s outage: {} MiB", peak_rss / 1024);
    assert!(
        peak_rss < 1024 * 1024,
        "memory stayed bounded: {peak_rss} KiB"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_restart_loses_nothing() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::start();
    let scenario = Scenario::new(&services, "brokerdown", 4, "").await;
    scenario.ingest(&weir(), &services, &weir_tests::sample_dump());
    let mut host = scenario.start_host(&weir(), &services, 0, "replica-0");
    while scenario.account(&services).await.len() < 40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    services.stop("broker");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        host.is_running(),
        "the host waits for the broker:\n{}",
        host.log_tail()
    );
    services.resume("broker");
    // More events after the restart, on the durable broker.
    scenario.ingest(&weir(), &services, &weir_tests::sample_dump());
    let places = scenario
        .wait_accounted(&services, Duration::from_secs(180))
        .await;
    let (code, _) = host.terminate();
    assert_eq!(code, Some(0));
    scenario.assert_exactly_once(&services, &places).await;
    assert_eq!(places.len(), 2 * 206);
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_can_go_to_a_kafka_topic() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    let dead_topic = format!("dead-{}", std::process::id());
    let extra = format!("[dead_letter.kafka]\ntopic = \"{dead_topic}\"\n");
    services.create_topic(&dead_topic, 1).await;
    let scenario = Scenario::new(services, "kafkadlq", 2, &extra).await;
    let (input, valid) = weir_tests::e2e::input_with_planted_faults(scenario.dir());
    // A fourth fault whose dead letter is over the topic's message size
    // limit (1 MB by default): its payload (600 kB) doubles when escaped
    // into the letter. It used to stop the host, at every restart.
    let mut text = std::fs::read_to_string(&input).unwrap();
    text.push_str(r#"{"id":"big","op":"upsert","timestamp":"2024-01-01T00:00:00Z","body":""#);
    text.push_str(&r#"\""#.repeat(300_000));
    text.push_str("\"}\n");
    std::fs::write(&input, text).unwrap();
    scenario.ingest(&weir(), services, &input);
    let host = scenario.start_host(&weir(), services, 0, "replica-0");
    // Results cover the valid events; the four faults go to the topic.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while scenario.account(services).await.len() < valid && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (code, _) = host.terminate();
    assert_eq!(code, Some(0));
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &services.brokers)
        .set("group.id", format!("{dead_topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    rdkafka::consumer::Consumer::subscribe(&consumer, &[dead_topic.as_str()]).unwrap();
    let mut dead = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while dead.len() < 4 && std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            use rdkafka::message::Message;
            let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
            let value: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
            dead.push((key, value));
        }
    }
    assert_eq!(dead.len(), 4, "{dead:?}");
    for (key, value) in &dead {
        let position = &value["position"];
        assert_eq!(
            key,
            &format!(
                "{}/{}@{}",
                position["topic"].as_str().unwrap(),
                position["partition"],
                position["offset"]
            )
        );
        assert!(value["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
    let omitted: Vec<_> = dead
        .iter()
        .filter(|(_, value)| value["payload"].get("omitted").is_some())
        .collect();
    assert_eq!(omitted.len(), 1, "{dead:?}");
    assert_eq!(omitted[0].1["payload"]["omitted"]["bytes"], 600_071);
    let places = scenario.account(services).await;
    assert_eq!(places.len(), valid, "results hold exactly the valid events");
    // `weir dlq list` reads them back from the topic (one per position).
    let listed = scenario.weir(&weir(), services, &["dlq", "list"]);
    assert!(
        listed.contains(&format!(
            "4 dead letters (0 redriven) in Kafka topic {dead_topic}"
        )),
        "{listed}"
    );
    // A replay of the topic keeps its dead letters under its own folder:
    // the live topic still holds the live pipeline's three only (a replay
    // used to add its own there, which `dlq` then took for live ones).
    let replayed = scenario.weir(&weir(), services, &["replay", "--run", "again"]);
    assert!(
        replayed.contains("weir replay again: complete"),
        "{replayed}"
    );
    let (_, end) = rdkafka::consumer::Consumer::fetch_watermarks(
        &consumer,
        &dead_topic,
        0,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(end, 4, "messages on the live dead-letter topic");
    let in_run = scenario.weir(&weir(), services, &["dlq", "list", "--run", "again"]);
    assert!(
        in_run.contains("4 dead letters (0 redriven) in ") && in_run.contains("/runs/again/"),
        "{in_run}"
    );

    // A topic cannot take a message back: after a crash between a range's
    // dead letters and its results object, a record whose second attempt
    // succeeded has both. Plant such a letter (a record with a result
    // line, its own payload): a redrive leaves it alone, where it used to
    // give the record a second result.
    let (&(partition, offset), _) = places
        .iter()
        .find(|(_, place)| place.contains(&"results"))
        .unwrap();
    let mut planted = dead[0].1.clone();
    planted["position"] = serde_json::json!({
        "topic": scenario.topic, "partition": partition, "offset": offset,
    });
    planted["payload"] = serde_json::json!({
        "text": String::from_utf8(read_message(services, &scenario.topic, partition, offset)).unwrap(),
    });
    let key = format!("{}/{partition}@{offset}", scenario.topic);
    produce(services, &dead_topic, &key, &planted);
    let redriven = scenario.weir(&weir(), services, &["dlq", "redrive"]);
    assert!(
        redriven.contains(
            "5 chosen: 0 written as results, 3 dead-lettered again, 0 already redriven, \
             1 with a result already"
        ) && redriven.contains("1 without their payload"),
        "{redriven}"
    );
    let again = services
        .read_lines(&scenario.bucket, &format!("{PIPELINE}/redrive/results/"))
        .await;
    assert!(again.is_empty(), "second results: {again:?}");
}

/// The payload of the message at `topic`/`partition`@`offset`.
fn read_message(services: &Services, topic: &str, partition: i64, offset: i64) -> Vec<u8> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::message::Message as _;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &services.brokers)
        .set("group.id", format!("{topic}-one-message"))
        .create()
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition as i32, rdkafka::Offset::Offset(offset))
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no message at {offset}"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            return message.unwrap().payload().unwrap().to_vec();
        }
    }
}

/// Produce `value` (as JSON) with `key` to `topic`, and wait for the ack.
fn produce(services: &Services, topic: &str, key: &str, value: &Value) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &services.brokers)
        .create()
        .unwrap();
    let payload = serde_json::to_vec(value).unwrap();
    producer
        .send(BaseRecord::to(topic).key(key).payload(&payload))
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn large_objects_are_uploaded_in_parts() {
    let services = Services::shared();
    let bucket = format!("multipart-{}", std::process::id());
    services.create_bucket(&bucket).await;
    let store = weir::storage::ObjectStore::s3(services.s3_client().await, &bucket, "prefix");
    // 20 MiB: over the 16 MiB multipart threshold, three 8 MiB parts.
    let body: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
    store.put("big/object.bin", body.clone()).await.unwrap();
    assert_eq!(store.get("big/object.bin").await.unwrap(), Some(body));
    assert_eq!(store.list("big/").await.unwrap(), ["big/object.bin"]);
    assert_eq!(store.get("big/missing").await.unwrap(), None);
    store.delete("big/object.bin").await.unwrap();
    assert!(store.list("big/").await.unwrap().is_empty());
}

/// A partition revoked under backpressure (its worker's channel full, its
/// messages waiting in its own queue in librdkafka) is fetched again after a
/// rebalance hands it back, and every offset ends in exactly one place: the
/// queue split for the earlier assignment must neither hold the partition
/// nor deliver stale messages to the new one. A slow stage (the `echo` test
/// plugin spending about 0.3 s of CPU per record) and tiny lanes
/// (`max_batch = 1`) keep both partitions backed up nearly all the time, so
/// they are when the rebalances revoke them (the logs show the revoke after
/// 5 records).
#[tokio::test(flavor = "multi_thread")]
async fn a_partition_revoked_under_backpressure_drains_when_handed_back() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    // Incremental (cooperative) rebalancing: a partition that comes back is
    // added to the assignment while the others keep running.
    let cooperative = "\n[source.kafka.properties]\n\
                       \"partition.assignment.strategy\" = \"cooperative-sticky\"\n";
    let scenario = Scenario::new(services, "pause", 2, cooperative).await;
    scenario.use_a_slow_stage(200);
    ingest_dump(&scenario, services, 1);
    let first = scenario.start_host(&weir(), services, 0, "replica-0");
    assert!(
        first
            .wait_for_log("partition assigned", Duration::from_secs(60))
            .await
    );
    // A second replica joins (a partition is revoked from the first) and
    // leaves (it comes back).
    let second = scenario.start_host(&weir(), services, 1, "replica-1");
    assert!(
        second
            .wait_for_log("partition assigned", Duration::from_secs(60))
            .await
    );
    let (code, out) = second.terminate();
    assert_eq!(code, Some(0), "{out}");
    let places = scenario
        .wait_accounted(services, Duration::from_secs(60))
        .await;
    let (code, _) = first.terminate();
    assert_eq!(code, Some(0));
    scenario.assert_exactly_once(services, &places).await;
}

/// The servers a test starts stop when it is done with them, not when the
/// test binary exits (a bench or a long test run would otherwise leave them
/// running), and without waiting for the watchdog; a server that fails to
/// start is reported, never taken for one that answers on its port.
#[test]
fn private_servers_stop_when_dropped() {
    let services = Services::start();
    let pids = services.pids();
    assert_eq!(pids.len(), 2, "a broker and an S3 server");
    // Running, not a zombie waiting to be reaped.
    let alive = |pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|s| !s.trim_start().starts_with('Z'))
        })
    };
    assert!(pids.iter().all(alive));
    // A server that cannot bind its port fails the script at once, with
    // its log, and leaves the running pair's PID files alone. (Before,
    // whatever answered on the port made it look ready: an S3 server given
    // the broker's port left the tests talking to the broker, and hanging.)
    let resumed =
        std::process::Command::new(weir_tests::workspace_root().join("scripts/dev-services.sh"))
            .arg("resume")
            .arg(services.dir())
            .arg("s3")
            .output()
            .unwrap();
    let said = String::from_utf8_lossy(&resumed.stderr);
    assert!(!resumed.status.success(), "{said}");
    assert!(
        said.contains("exited") && said.contains("Address already in use"),
        "{said}"
    );
    assert_eq!(services.pids(), pids);
    drop(services);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pids.iter().any(alive) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let running: Vec<_> = pids.iter().filter(|p| alive(p)).collect();
    assert!(running.is_empty(), "still running: {running:?}");
}

/// Too few instances for every partition's chain is a configuration error
/// that `weir validate` (and `weir run`, before consuming) reports with the
/// file, line and key, not a host that dies when partitions are assigned.
#[tokio::test(flavor = "multi_thread")]
async fn too_few_instances_for_the_partitions_is_caught_by_validate() {
    let services = Services::shared();
    let scenario = Scenario::new(services, "instances", 4, "").await;
    services.create_topic(&scenario.topic, 4).await;
    let text = std::fs::read_to_string(&scenario.pipeline).unwrap();
    std::fs::write(
        &scenario.pipeline,
        text.replace("batch_size = 16", "batch_size = 16\nmax_instances = 8"),
    )
    .unwrap();
    for command in ["validate", "run"] {
        let output = std::process::Command::new(weir())
            .args([command, "-c"])
            .arg(&scenario.pipeline)
            .envs(services.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains("pipeline.toml")
                && stderr.contains("`runtime.max_instances`: is 8, but topic")
                && stderr.contains("needs 12 instances"),
            "{command}: {stderr}"
        );
        assert!(stderr.contains("line "), "{command}: {stderr}");
    }
}

/// Fencing against the real S3 server: once a second host takes a
/// partition's lease (conditional writes), every check of the first fails,
/// so a zombie writes nothing more; the new holder's checks pass.
#[tokio::test(flavor = "multi_thread")]
async fn a_newer_lease_fences_the_old_holder_on_real_s3() {
    let services = Services::shared();
    let bucket = format!("fence-{}", std::process::id());
    services.create_bucket(&bucket).await;
    let store = weir::storage::ObjectStore::s3(services.s3_client().await, &bucket, "p");
    let key = "e2e/leases/t/0".to_owned();
    let mut zombie = weir::fence::Lease::take(&store, key.clone(), "host-a")
        .await
        .unwrap();
    zombie.check().await.unwrap();
    let mut owner = weir::fence::Lease::take(&store, key.clone(), "host-b")
        .await
        .unwrap();
    assert_eq!((zombie.epoch(), owner.epoch()), (1, 2));
    let fenced = zombie.check().await;
    assert!(
        matches!(fenced, Err(weir::fence::FenceError::Fenced { .. })),
        "{fenced:?}"
    );
    owner.check().await.unwrap();
    owner.check().await.unwrap();
}

/// A file run whose pipeline uses S3 for nothing else still fetches bodies
/// stored by reference (connecting when the first one comes), with the
/// pipeline's `[s3]` settings and the standard credentials. It used to
/// dead-letter each of them for "no S3 connection": a gap in the host's
/// configuration, not the record's fault.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_run_fetches_bodies_stored_by_reference() {
    let services = Services::shared();
    let bucket = format!("file-bodies-{}", std::process::id());
    services.create_bucket(&bucket).await;
    let body = "'''Weir''' is a low dam across a river.\n".repeat(100);
    services
        .s3_client()
        .await
        .put_object()
        .bucket(&bucket)
        .key("bodies/weir")
        .body(body.clone().into_bytes().into())
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let event = serde_json::json!({
        "id": "enwiki:1", "op": "upsert", "revision": 1,
        "timestamp": "2026-12-01T00:00:00Z", "content_type": "text/x-wiki",
        "body_ref": {
            "uri": format!("s3://{bucket}/bodies/weir"),
            "sha256": weir::digest::Digest::of(body.as_bytes()).to_string(),
        },
    });
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, format!("{event}\n")).unwrap();
    let out = dir.path().join("out");
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[pipeline]\nname = \"bodies\"\n[source.file]\npath = \"{}\"\n\
             [runtime]\nplugin_dir = \"{}\"\n[[stage]]\nname = \"echo\"\nplugin = \"echo\"\n\
             [output.local]\ndir = \"{out}\"\n[dead_letter.local]\ndir = \"{out}\"\n\
             [s3]\nsign_payloads = false\n",
            events.display(),
            weir_tests::plugin_dir().display(),
            out = out.display(),
        ),
    )
    .unwrap();
    let output = std::process::Command::new(weir())
        .args(["run", "-c"])
        .arg(&pipeline)
        .envs(services.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("WEIR_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("1 results (1 outputs), 0 tombstones, 0 dead-lettered"),
        "{stdout}"
    );
    let results = std::fs::read_dir(out.join("bodies/results/events.jsonl/0"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let line: Value =
        serde_json::from_slice(&zstd::decode_all(std::fs::File::open(results).unwrap()).unwrap())
            .unwrap();
    assert_eq!(line["outputs"][0]["text"], body.as_str());
}

/// With `start = "latest"`, a group's start is committed before its first
/// member consumes: a host killed before its first results object
/// restarts where the group started, and the events that arrived in
/// between are processed (it used to restart at the end as of its restart,
/// and they ended nowhere). Events from before the first start stay
/// skipped, as `latest` says.
#[tokio::test(flavor = "multi_thread")]
async fn a_group_starting_at_latest_keeps_its_start_across_a_crash() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    // No results object before the kill: the batch would wait ten minutes.
    // Static membership: the restarted host takes the partition at once.
    let slow = "[batching]\nmax_records = 1000\nmax_age_ms = 600000\n\
                [source.kafka.properties]\n\"group.instance.id\" = \"${WEIR_INSTANCE_ID}\"\n";
    let scenario = Scenario::new(services, "latest", 1, slow).await;
    let text = std::fs::read_to_string(&scenario.pipeline).unwrap();
    std::fs::write(
        &scenario.pipeline,
        text.replace("max_batch = 64", "max_batch = 64\nstart = \"latest\""),
    )
    .unwrap();
    let events = weir_tests::workspace_root().join("examples/wiki/data/enwiki-sample-events.jsonl");
    scenario.ingest(&weir(), services, &events); // offsets 0..41: before the start
    let host = scenario.start_host(&weir(), services, 0, "replica-0");
    assert!(
        host.wait_for_log("partition assigned", Duration::from_secs(60))
            .await,
        "{}",
        host.log_tail()
    );
    scenario.ingest(&weir(), services, &events); // offsets 41..82
    tokio::time::sleep(Duration::from_secs(3)).await;
    host.kill_9();

    // Restarted with prompt batches: the events after the first start are
    // processed, those before are not.
    let text = std::fs::read_to_string(&scenario.pipeline).unwrap();
    std::fs::write(
        &scenario.pipeline,
        text.replace("max_age_ms = 600000", "max_age_ms = 500"),
    )
    .unwrap();
    let host = scenario.start_host(&weir(), services, 1, "replica-0");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while scenario.account(services).await.len() < 41 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (code, log) = host.terminate();
    assert_eq!(code, Some(0), "{log}");
    let places = scenario.account(services).await;
    let offsets: Vec<i64> = places.keys().map(|(_, offset)| *offset).collect();
    assert_eq!(offsets, (41..82).collect::<Vec<_>>(), "{places:?}");
    assert!(places.values().all(|p| p.len() == 1), "{places:?}");
}
