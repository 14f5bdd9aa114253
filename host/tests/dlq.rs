//! `weir dlq list|show|redrive` against the real broker and S3 server:
//! dead letters of a live host listed and filtered, redriven after the
//! fault is fixed (a stage's fuel limit raised), with exact accounting: each
//! redriven once, a second redrive doing nothing, and dead letters that fail
//! again becoming new dead letters that can be redriven later.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use weir_tests::e2e::{PIPELINE, Scenario, input_with_planted_faults, serial};
use weir_tests::services::Services;

fn weir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// Fuel for one `parse` call: enough for a redirect, not for an article.
const TOO_LITTLE_FUEL: &str = "1000000";

fn set_parse_fuel(scenario: &Scenario, fuel: &str) {
    let text = std::fs::read_to_string(&scenario.pipeline).unwrap();
    let text = match text.find("\n[stage.limits]\nfuel = ") {
        Some(_) => {
            let start = text.find("fuel = ").unwrap();
            let end = start + text[start..].find('\n').unwrap();
            format!("{}fuel = {fuel}{}", &text[..start], &text[end..])
        }
        None => text.replacen(
            "plugin = \"parse\"\n",
            &format!("plugin = \"parse\"\n[stage.limits]\nfuel = {fuel}\n"),
            1,
        ),
    };
    std::fs::write(&scenario.pipeline, text).unwrap();
}

/// `weir dlq list --json ...`: one object per dead letter.
fn list(scenario: &Scenario, services: &Services, filters: &[&str]) -> Vec<Value> {
    let mut args = vec!["dlq", "list", "--json"];
    args.extend_from_slice(filters);
    scenario
        .weir(&weir(), services, &args)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn redrive(scenario: &Scenario, services: &Services, filters: &[&str]) -> String {
    let mut args = vec!["dlq", "redrive"];
    args.extend_from_slice(filters);
    scenario.weir(&weir(), services, &args)
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_listed_and_redriven_exactly_once() {
    let _serial = serial().await;
    let services = Services::shared();
    let scenario = Scenario::new(services, "dlq", 2, "").await;
    set_parse_fuel(&scenario, TOO_LITTLE_FUEL);
    let (input, valid) = input_with_planted_faults(scenario.dir());
    scenario.ingest(&weir(), services, &input);
    let host = scenario.start_host(&weir(), services, 0, "replica-0");
    let deadline = Instant::now() + Duration::from_secs(120);
    while scenario.account(services).await.len() < valid + 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let log = host.log();
    let (code, out) = host.terminate();
    assert_eq!(code, Some(0), "{out}");
    // Log lines of a batch name it (the trap is logged inside the chain).
    let trapped = log
        .lines()
        .find(|line| line.contains("batch trapped"))
        .expect("a trap was logged");
    assert!(
        trapped.contains("batch{topic=") && trapped.contains("first_offset="),
        "{trapped}"
    );

    // The three articles ran out of fuel in `parse`; three planted faults
    // failed before the chain.
    let all = list(&scenario, services, &[]);
    assert_eq!(all.len(), 6, "{all:?}");
    let kinds: Vec<&str> = all.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "trap").count(), 3);
    assert_eq!(kinds.iter().filter(|k| **k == "decode").count(), 2);
    assert_eq!(kinds.iter().filter(|k| **k == "body").count(), 1);
    assert!(
        all.iter()
            .all(|l| l["redriven"] == false && l.get("payload").is_none())
    );
    let traps = list(&scenario, services, &["--stage", "parse", "--kind", "trap"]);
    assert_eq!(traps.len(), 3);
    let one = traps[0]["id"].as_str().unwrap();
    assert_eq!(list(&scenario, services, &["--document", one]).len(), 1);
    assert_eq!(
        list(&scenario, services, &["--reason", "FUEL EXHAUSTED"]).len(),
        3
    );
    assert!(list(&scenario, services, &["--since", "2999-01-01T00:00:00Z"]).is_empty());
    let position = format!(
        "{}/{}@{}",
        traps[0]["position"]["topic"].as_str().unwrap(),
        traps[0]["position"]["partition"],
        traps[0]["position"]["offset"]
    );
    let shown = scenario.weir(&weir(), services, &["dlq", "show", &position]);
    assert!(
        shown.contains("\"payload\"") && shown.contains("redriven: no"),
        "{shown}"
    );

    // Before the fix, a redrive fails again: new dead letters, which stay
    // redrivable.
    let out = redrive(&scenario, services, &["--kind", "trap"]);
    assert!(
        out.contains("3 chosen: 0 written as results, 3 dead-lettered again, 0 already"),
        "{out}"
    );
    assert_eq!(list(&scenario, services, &["--kind", "trap"]).len(), 3);

    // The fix: enough fuel. Each article is written once, under redrive/.
    set_parse_fuel(&scenario, "1000000000");
    let out = redrive(&scenario, services, &["--kind", "trap"]);
    assert!(
        out.contains("3 chosen: 3 written as results, 0 dead-lettered again, 0 already"),
        "{out}"
    );
    let redrive_results = format!("{PIPELINE}/redrive/results/");
    let lines = services
        .read_lines(&scenario.bucket, &redrive_results)
        .await;
    let ids: BTreeSet<&str> = lines
        .iter()
        .map(|(_, line)| line["id"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = traps.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, expected);
    assert_eq!(lines.len(), 3, "one result line each: {lines:?}");
    assert!(
        lines
            .iter()
            .all(|(_, line)| line["outputs"].as_array().is_some_and(|o| !o.is_empty()))
    );

    // A second redrive does nothing.
    let out = redrive(&scenario, services, &["--kind", "trap"]);
    assert!(
        out.contains("3 chosen: 0 written as results, 0 dead-lettered again, 3 already"),
        "{out}"
    );
    assert_eq!(
        services
            .read_lines(&scenario.bucket, &redrive_results)
            .await
            .len(),
        3
    );

    // Everything: the redriven ones are left alone, the planted faults fail
    // again (their input is still bad).
    let out = redrive(&scenario, services, &[]);
    assert!(
        out.contains("6 chosen: 0 written as results, 3 dead-lettered again, 3 already"),
        "{out}"
    );
    let after = list(&scenario, services, &[]);
    assert_eq!(after.len(), 6);
    assert_eq!(after.iter().filter(|l| l["redriven"] == true).count(), 3);
}
