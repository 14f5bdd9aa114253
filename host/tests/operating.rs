//! Operating a host, against the real broker and S3 server: `/metrics`
//! counts exactly what the host did, `/healthz` and `/readyz` answer as
//! Kubernetes probes expect, and the status page, in a real headless
//! Chromium, shows the running pipeline with numbers that move while
//! records flow. And a host short of address space for its instance pool
//! says which setting to change.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use weir_tests::browser::Browser;
use weir_tests::e2e::{
    PIPELINE, Scenario, http_get, input_with_planted_faults, metric_sum as sum, serial,
};
use weir_tests::services::Services;

fn weir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// Scrape `/metrics` until `done` holds of it (or 120 s passed).
async fn scrape_until(address: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, text) = http_get(address, "/metrics");
        assert_eq!(status, 200, "{text}");
        if done(&text) || Instant::now() >= deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_serves_exact_metrics_probes_and_a_live_status_page() {
    let _serial = serial().await;
    let services = Services::shared();
    let scenario = Scenario::new(
        services,
        "operating",
        2,
        "[telemetry]\nlisten = \"127.0.0.1:0\"\n",
    )
    .await;
    let (input, valid) = input_with_planted_faults(scenario.dir());
    scenario.ingest(&weir(), services, &input);
    let host = scenario.start_host(&weir(), services, 0, "replica-0");
    let address = host.telemetry_address().await;

    // Probes: alive at once; ready once the plugins are loaded and the
    // group gave this host its partitions.
    assert_eq!(http_get(&address, "/healthz").0, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ready = http_get(&address, "/readyz");
    while ready.0 != 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        ready = http_get(&address, "/readyz");
    }
    assert_eq!(ready, (200, "ready\n".to_owned()), "{}", host.log_tail());

    // Every record counted once, in the right place. The lag gauge exists
    // only once measured: before that, a sum of 0 says nothing (and the
    // records may be processed while their objects are still being written).
    let all = (valid + 3) as f64;
    let text = scrape_until(&address, |text| {
        sum(text, "weir_records_in_total", &[]) >= all
            && text.contains("weir_consumer_lag_messages{")
            && sum(text, "weir_consumer_lag_messages", &[]) == 0.0
    })
    .await;
    let pipeline = [("pipeline", PIPELINE)];
    assert_eq!(
        sum(&text, "weir_records_in_total", &pipeline),
        all,
        "{text}"
    );
    assert_eq!(
        sum(&text, "weir_records_out_total", &[("kind", "result")])
            + sum(&text, "weir_records_out_total", &[("kind", "tombstone")]),
        valid as f64,
        "{text}"
    );
    assert_eq!(sum(&text, "weir_records_dead_lettered_total", &[]), 3.0);
    assert_eq!(
        sum(
            &text,
            "weir_records_dead_lettered_total",
            &[("kind", "decode")]
        ),
        2.0,
        "not JSON, and no revision: {text}"
    );
    assert_eq!(sum(&text, "weir_partitions_assigned", &[]), 2.0);
    assert_eq!(sum(&text, "weir_consumer_lag_messages", &[]), 0.0);
    assert_eq!(sum(&text, "weir_ready", &pipeline), 1.0);
    for stage in ["parse", "lang", "score"] {
        let info = [("stage", stage), ("version", "0.1.0")];
        assert_eq!(sum(&text, "weir_plugin_info", &info), 1.0, "{stage}");
        assert!(
            sum(
                &text,
                "weir_stage_duration_seconds_count",
                &[("stage", stage)]
            ) > 0.0,
            "{stage}"
        );
        assert!(sum(&text, "weir_plugin_calls_total", &[("stage", stage)]) > 0.0);
        assert!(
            sum(
                &text,
                "weir_plugin_memory_high_water_bytes",
                &[("stage", stage)]
            ) > 0.0
        );
    }
    // The plugins' own counters: parse counts the pages it parsed.
    assert!(
        sum(
            &text,
            "weir_plugin_counter_total",
            &[("stage", "parse"), ("name", "pages")]
        ) > 0.0,
        "{text}"
    );
    assert!(
        sum(
            &text,
            "weir_s3_request_duration_seconds_count",
            &[("operation", "put")]
        ) > 0.0
    );
    assert!(
        sum(
            &text,
            "weir_object_size_bytes_count",
            &[("kind", "results")]
        ) > 0.0
    );
    assert!(sum(&text, "process_resident_memory_bytes", &pipeline) > 0.0);

    // The status page, in a real browser.
    let browser = Browser::start();
    let mut page = browser.open(&format!("http://{address}/"));
    let shown = page.wait_for_text("pipeline", Duration::from_secs(30), |t| t == PIPELINE);
    assert_eq!(shown, PIPELINE);
    assert_eq!(
        page.wait_for_text("ready", Duration::from_secs(10), |t| t == "ready"),
        "ready"
    );
    let stages = page.eval(
        "[...document.querySelectorAll('#stages tbody tr td:first-child')].map(td => td.textContent)",
    );
    assert_eq!(stages, serde_json::json!(["parse", "lang", "score"]));
    let dead = page.eval("document.querySelectorAll('#dead-letters tbody tr').length");
    assert_eq!(dead, serde_json::json!(3));
    let count = |text: &str| text.replace(',', "").parse::<u64>().unwrap_or(0);
    let before = count(
        &page.wait_for_text("records-in", Duration::from_secs(10), |t| {
            count(t) as f64 == all
        }),
    );
    assert_eq!(before as f64, all);

    // More records: the open page (no reload) follows them.
    let dump = weir_tests::sample_dump();
    scenario.ingest(&weir(), services, &dump);
    let rate = page.wait_for_text("records-in-rate", Duration::from_secs(60), |t| {
        t.parse::<f64>().is_ok_and(|r| r > 0.0)
    });
    assert!(rate.parse::<f64>().unwrap() > 0.0, "rate {rate}");
    // Each stage's mean and p99 plugin time per record are shown.
    let latencies = page.eval(
        "[...document.querySelectorAll('#stages tbody tr')]\
         .map(tr => [tr.children[5].textContent, tr.children[6].textContent])",
    );
    let shown = latencies.as_array().unwrap();
    assert_eq!(shown.len(), 3, "{latencies}");
    assert!(
        shown
            .iter()
            .flat_map(|row| row.as_array().unwrap())
            .all(|cell| {
                let cell = cell.as_str().unwrap();
                cell.ends_with("µs") || cell.ends_with("ms") || cell.ends_with(" s")
            }),
        "{latencies}"
    );
    let after = count(
        &page.wait_for_text("records-in", Duration::from_secs(120), |t| {
            count(t) > before + 200
        }),
    );
    assert!(after > before + 200, "{before} -> {after}");
    let sparkline =
        page.eval("document.querySelector('#spark-in polyline').getAttribute('points')");
    // The chart plots the rate: some point above the baseline (y = 30).
    let above_baseline = sparkline.as_str().is_some_and(|points| {
        points.split(' ').any(|point| {
            point
                .split_once(',')
                .and_then(|(_, y)| y.parse::<f64>().ok())
                .is_some_and(|y| y < 30.0)
        })
    });
    assert!(above_baseline, "{sparkline}");

    let (code, log) = host.terminate();
    assert_eq!(code, Some(0), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_waits_for_the_broker() {
    let _serial = serial().await;
    // A broker of its own, stopped while the host runs.
    let services = Services::start();
    let scenario = Scenario::new(
        &services,
        "readiness",
        1,
        "[telemetry]\nlisten = \"127.0.0.1:0\"\n",
    )
    .await;
    services.create_topic(&scenario.topic, 1).await;
    let host = scenario.start_host(&weir(), &services, 0, "replica-0");
    let address = host.telemetry_address().await;
    // Polls /readyz until `done` holds for its answer (or a minute passes).
    let until = |done: fn(u16, &str) -> bool| {
        let address = address.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let answer = http_get(&address, "/readyz");
                if done(answer.0, &answer.1) || Instant::now() >= deadline {
                    return answer;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let ready = |status: u16, _: &str| status == 200;
    assert_eq!(until(ready).await.0, 200, "{}", host.log_tail());
    services.stop("broker");
    // The group may drop the partitions before the broker check (every few
    // seconds) notices: "partitions not assigned yet" can come first.
    let (status, body) =
        until(|status, body| status == 503 && body.contains("broker not answering")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("broker not answering"), "{body}");
    assert_eq!(http_get(&address, "/healthz").0, 200, "alive all along");
    services.resume("broker");
    assert_eq!(until(ready).await.0, 200, "{}", host.log_tail());
    let (code, log) = host.terminate();
    assert_eq!(code, Some(0), "{log}");
}

/// The plugin instance pool reserves its address space up front: a host
/// whose address space is limited (`ulimit -v`, as batch schedulers set)
/// below what the default pool needs says which setting to lower, and runs
/// once it is lowered.
#[test]
fn a_host_short_of_address_space_names_the_setting_to_lower() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = |name: &str, runtime: &str| {
        let path = dir.path().join(name);
        let text = format!(
            "[pipeline]\nname = \"limited\"\n[source.file]\npath = \"{events}\"\n\
             [runtime]\nplugin_dir = \"{plugins}\"\n{runtime}\n{stages}\
             [output.local]\ndir = \"{out}\"\n[dead_letter.local]\ndir = \"{out}\"\n",
            events = weir_tests::sample_events().display(),
            plugins = weir_tests::plugin_dir().display(),
            stages = weir_tests::e2e::DOCUMENT_STAGES,
            out = dir.path().join("out").display(),
        );
        std::fs::write(&path, text).unwrap();
        path
    };
    // 64 GiB: the default pool (128 instances) reserves about 1 TiB, a pool
    // of the three instances this chain needs about 24 GiB.
    let run = |pipeline: &std::path::Path| {
        std::process::Command::new("bash")
            .args(["-c", "ulimit -v 67108864 && exec \"$0\" run -c \"$1\""])
            .arg(weir())
            .arg(pipeline)
            .env("WEIR_LOG", "warn")
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap()
    };
    let default = run(&pipeline("default.toml", ""));
    let stderr = String::from_utf8_lossy(&default.stderr);
    assert!(!default.status.success(), "{stderr}");
    assert!(
        stderr.contains("pool of 128 plugin instances")
            && stderr.contains("Lower `[runtime] max_instances`")
            && stderr.contains("`ulimit -v`"),
        "{stderr}"
    );
    let lowered = run(&pipeline("lowered.toml", "max_instances = 3"));
    assert!(
        lowered.status.success(),
        "{}",
        String::from_utf8_lossy(&lowered.stderr)
    );
}
