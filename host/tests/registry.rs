//! The plugin registry in a real S3 server, through the `weir plugin`
//! commands: signed publishing, refused republishing, activation checks
//! (unsigned, foreign key, unknown version), and a run whose stage names
//! `name@active`, with the version in every output's lineage.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use weir_tests::services::Services;

fn weir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// Write `key`'s private and public PEM files into `dir` as `name.pem` and
/// `name.pub.pem`.
fn write_key(dir: &Path, name: &str, key: &SigningKey) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    std::fs::write(&private, key.to_pkcs8_pem(Default::default()).unwrap()).unwrap();
    std::fs::write(
        &public,
        key.verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap(),
    )
    .unwrap();
    (private, public)
}

struct Setup {
    dir: tempfile::TempDir,
    pipeline: PathBuf,
    services: &'static Services,
}

impl Setup {
    fn weir(&self, args: &[&str]) -> Output {
        Command::new(weir())
            .args(args)
            .arg("-c")
            .arg(&self.pipeline)
            .envs(
                self.services
                    .env()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .env("WEIR_LOG", "warn")
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap()
    }

    /// Run `weir args...`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.weir(args);
        assert!(
            output.status.success(),
            "weir {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Run `weir args...`, which must fail; its stderr.
    fn refused(&self, args: &[&str]) -> String {
        let output = self.weir(args);
        assert!(!output.status.success(), "weir {args:?} succeeded");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_versions_are_published_activated_and_run() {
    let services = Services::shared();
    let bucket = format!("registry-{}", std::process::id());
    services.create_bucket(&bucket).await;
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = write_key(dir.path(), "release", &SigningKey::from_bytes(&[1; 32]));
    let (foreign, _) = write_key(dir.path(), "foreign", &SigningKey::from_bytes(&[2; 32]));
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[pipeline]
name = "signed"
[source.file]
path = "{events}"
[runtime]
compiled_cache_dir = "{compiled}"
[registry]
bucket = "{bucket}"
prefix = "registry"
trusted_keys = ["{public}"]
[[stage]]
name = "echo"
plugin = "echo@active"
[output.local]
dir = "{out}"
[dead_letter.local]
dir = "{out}"
[s3]
region = "us-east-1"
"#,
            events = weir_tests::workspace_root()
                .join("examples/wiki/data/enwiki-sample-events.jsonl")
                .display(),
            compiled = weir_tests::workspace_root()
                .join("target/weir-compiled")
                .display(),
            public = public.display(),
            out = dir.path().join("out").display(),
        ),
    )
    .unwrap();
    let setup = Setup {
        dir,
        pipeline,
        services,
    };
    let plugin = |name: &str| weir_tests::plugin_path(name).display().to_string();
    let key = private.display().to_string();

    // Before anything is active, the run says what to do.
    let stderr = setup.refused(&["run"]);
    assert!(stderr.contains("no active version of echo"), "{stderr}");

    let published = setup.ok(&["plugin", "publish", &plugin("echo"), "--key", &key]);
    assert!(published.contains("published echo@0.1.0") && published.contains("signed"));
    assert!(
        setup
            .ok(&["plugin", "publish", &plugin("echo")])
            .contains("already published")
    );
    // Other bytes under the same version: refused.
    let mut other = std::fs::read(plugin("echo")).unwrap();
    other.extend([0x00, 0x03, 0x01, b'x', b'y']);
    let other_path = setup.dir.path().join("echo-rebuilt.wasm");
    std::fs::write(&other_path, other).unwrap();
    let stderr = setup.refused(&["plugin", "publish", &other_path.display().to_string()]);
    assert!(
        stderr.contains("already published with other bytes"),
        "{stderr}"
    );
    // Not what the publisher said.
    let stderr = setup.refused(&["plugin", "publish", &plugin("echo"), "--version", "9.9.9"]);
    assert!(stderr.contains("not echo@9.9.9"), "{stderr}");

    // Unsigned, or signed by a key the host does not trust: not activated.
    setup.ok(&["plugin", "publish", &plugin("hostile")]);
    let hostile = setup
        .ok(&["plugin", "list"])
        .lines()
        .find(|l| l.starts_with("hostile@"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let stderr = setup.refused(&["plugin", "activate", &hostile]);
    assert!(stderr.contains("not signed"), "{stderr}");
    let score = setup.ok(&[
        "plugin",
        "publish",
        &plugin("score"),
        "--key",
        &foreign.display().to_string(),
    ]);
    let score = score.split_whitespace().nth(1).unwrap().to_owned();
    let stderr = setup.refused(&["plugin", "activate", &score]);
    assert!(stderr.contains("does not trust"), "{stderr}");
    let stderr = setup.refused(&["plugin", "activate", "echo@0.0.1"]);
    assert!(stderr.contains("not in the registry"), "{stderr}");

    let activated = setup.ok(&["plugin", "activate", "echo@0.1.0"]);
    assert_eq!(activated.trim(), "pipeline `signed`: echo (none) -> 0.1.0");
    assert!(setup.ok(&["plugin", "list"]).contains("(active)"));
    let shown = setup.ok(&["plugin", "show", "echo@0.1.0"]);
    assert!(shown.contains("this host would load it"), "{shown}");

    let summary = setup.ok(&["run"]);
    assert!(summary.contains("40 results"), "{summary}");
    let lines = weir_tests::read_jsonl_objects(&setup.dir.path().join("out/signed/results"));
    let upserts: Vec<_> = lines.iter().filter(|l| l["op"] == "upsert").collect();
    assert_eq!(upserts.len(), 40);
    assert!(
        upserts
            .iter()
            .all(|l| l["lineage"][0]["plugin"] == "echo@0.1.0"),
        "{:?}",
        upserts[0]["lineage"]
    );

    let stderr = setup.refused(&["plugin", "rollback", "echo"]);
    assert!(stderr.contains("no earlier version"), "{stderr}");
}
