//! The deployment material under `deploy/`: `scripts/validate-deploy.sh`
//! accepts it as it is, rejects a copy with a misspelled field and names the
//! file, and the pipeline file shipped in the Kubernetes ConfigMap is one
//! this host accepts.
//!
//! The script installs its pinned validators from PyPI into
//! `target/deploy-venv` on first use (needs `python3` with `venv`), then
//! runs offline.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is in the workspace root")
        .to_owned()
}

fn manifests() -> PathBuf {
    workspace().join("deploy/kubernetes")
}

/// Run the validation script on `paths` (none: its defaults); whether it
/// succeeded, and everything it printed.
fn validate(paths: &[&Path]) -> Result<(bool, String)> {
    let script = workspace().join("scripts/validate-deploy.sh");
    let output = Command::new("bash")
        .arg(&script)
        .args(paths)
        .output()
        .with_context(|| format!("run {}", script.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), text))
}

/// A copy of deploy/kubernetes's manifests in a temporary directory, with
/// `from` (which must occur exactly once) replaced by `to` in `file`.
fn broken_copy(file: &str, from: &str, to: &str) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("weir-deploy-").tempdir()?;
    for entry in std::fs::read_dir(manifests())? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name()))?;
        }
    }
    let path = dir.path().join(file);
    let text = std::fs::read_to_string(&path)?;
    ensure!(
        text.matches(from).count() == 1,
        "{file} should contain `{from}` exactly once"
    );
    std::fs::write(&path, text.replace(from, to))?;
    Ok(dir)
}

/// The script fails on `dir`, with a FAIL line naming `file` and `field`.
fn rejected(dir: &Path, file: &str, field: &str) -> Result<()> {
    let (ok, output) = validate(&[dir])?;
    ensure!(!ok, "the script accepted a broken {file}:\n{output}");
    ensure!(
        output
            .lines()
            .any(|line| line.starts_with("FAIL") && line.contains(file) && line.contains(field)),
        "no FAIL line names {file} and `{field}`:\n{output}"
    );
    Ok(())
}

#[test]
fn the_deployment_material_validates() -> Result<()> {
    let (ok, output) = validate(&[])?;
    ensure!(ok, "scripts/validate-deploy.sh failed:\n{output}");
    for checked in [
        "deployment.yaml: Deployment/weir",
        "configmap.yaml: ConfigMap/weir-pipeline",
        "keda-scaledobject.yaml: ScaledObject/weir",
        "kustomization.yaml",
        "deploy/Dockerfile",
        "weir-dashboard.json",
    ] {
        ensure!(
            output.contains(checked),
            "the script did not report {checked}:\n{output}"
        );
    }
    Ok(())
}

#[test]
fn a_misspelled_deployment_field_is_rejected() -> Result<()> {
    let dir = broken_copy(
        "deployment.yaml",
        "terminationGracePeriodSeconds: 120",
        "terminationGracePeriodSecond: 120",
    )?;
    rejected(
        dir.path(),
        "deployment.yaml",
        "terminationGracePeriodSecond",
    )
}

#[test]
fn a_misspelled_keda_trigger_field_is_rejected() -> Result<()> {
    // A field of the trigger itself (KEDA's CRD schema)...
    let dir = broken_copy("keda-scaledobject.yaml", "- type: kafka", "- tpye: kafka")?;
    rejected(dir.path(), "keda-scaledobject.yaml", "tpye")?;
    // ...and a key of the Kafka trigger's metadata, which KEDA itself would
    // ignore (falling back to the default threshold).
    let dir = broken_copy(
        "keda-scaledobject.yaml",
        "lagThreshold: \"5000\"",
        "lagTreshold: \"5000\"",
    )?;
    rejected(dir.path(), "keda-scaledobject.yaml", "lagTreshold")
}

#[test]
fn keda_must_watch_the_pipelines_consumer_group() -> Result<()> {
    let dir = broken_copy(
        "keda-scaledobject.yaml",
        "consumerGroup: weir-wiki",
        "consumerGroup: weir-other",
    )?;
    rejected(dir.path(), "keda-scaledobject.yaml", "consumerGroup")
}

/// The `key: |` block scalar of a YAML mapping, without its indentation.
fn block_scalar(yaml: &str, key: &str) -> Result<String> {
    let wanted = format!("{key}: |");
    let mut lines = yaml.lines();
    let header = lines
        .find(|line| line.trim_start() == wanted)
        .with_context(|| format!("no `{key}: |` block"))?;
    let key_indent = header.len() - header.trim_start().len();
    let body: Vec<&str> = lines
        .take_while(|line| {
            line.trim().is_empty() || line.len() - line.trim_start().len() > key_indent
        })
        .collect();
    let indent = body
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .context("empty block")?;
    Ok(body
        .iter()
        .map(|line| line.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `text` with every `${NAME}` replaced by a value (the pod's environment
/// provides them; the script checks that it does).
fn with_environment_values(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push_str("value");
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_configmaps_pipeline_file_is_accepted_by_the_host() -> Result<()> {
    let configmap = std::fs::read_to_string(manifests().join("configmap.yaml"))?;
    let text = block_scalar(&configmap, "pipeline.toml")?;
    ensure!(
        text.contains("plugin_dir = \"/opt/weir/plugins\""),
        "the pipeline should load the image's bundled plugins"
    );
    // The image has the bundled plugins in /opt/weir/plugins; here they are
    // where the build installed them.
    let text = text.replace(
        "\"/opt/weir/plugins\"",
        &format!("'{}'", weir_tests::plugin_dir().display()),
    );
    let text = with_environment_values(&text);
    match weir::config::parse(&text, Path::new("/etc/weir")) {
        Ok(pipeline) => {
            ensure!(
                matches!(pipeline.source, weir::config::Source::Kafka(_)),
                "the deployed pipeline should read from Kafka"
            );
            Ok(())
        }
        Err(problems) => bail!(
            "deploy/kubernetes/configmap.yaml's pipeline.toml is refused:\n{}",
            problems
                .iter()
                .map(|p| format!("  - {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}
