//! The registry over a local directory and the in-memory store, with real
//! plugin components.

use ed25519_dalek::SigningKey;

use super::*;
use crate::runtime::RuntimeOptions;
use crate::test_support::plugin_path;

fn runtime() -> Runtime {
    Runtime::new(&RuntimeOptions::default()).expect("engine starts")
}

fn component(name: &str) -> Vec<u8> {
    std::fs::read(plugin_path(name)).expect("plugins are built by the build script")
}

fn echo_label(runtime: &Runtime) -> (String, String) {
    let plugin = runtime.load("echo", &component("echo")).unwrap();
    (plugin.info().name.clone(), plugin.info().version.clone())
}

#[tokio::test]
async fn a_version_is_published_once_and_never_changes() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(ObjectStore::local(dir.path()));
    let runtime = runtime();
    let (name, version) = echo_label(&runtime);

    let Published::New(manifest) = registry
        .publish(&runtime, component("echo"), Expected::default(), None)
        .await
        .unwrap()
    else {
        panic!("a first publish is new");
    };
    assert_eq!(
        (manifest.name.as_str(), manifest.world.as_str()),
        (name.as_str(), WORLD)
    );
    assert_eq!(manifest.sha256, Digest::of(&component("echo")));
    assert_eq!(registry.manifest(&name, &version).await.unwrap(), manifest);
    assert_eq!(
        registry.list().await.unwrap(),
        std::slice::from_ref(&manifest)
    );

    // The same bytes again: nothing changes.
    let again = registry
        .publish(
            &runtime,
            component("echo"),
            Expected {
                name: Some(&manifest.name),
                version: Some(&manifest.version),
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(again, Published::AlreadyThere(manifest.clone()));

    // Other bytes under the same name and version (the same code with a
    // custom section added): refused, nothing written.
    let mut other = component("echo");
    other.extend([0x00, 0x03, 0x01, b'x', b'y']);
    let refused = registry
        .publish(&runtime, other, Expected::default(), None)
        .await;
    assert!(
        matches!(refused, Err(RegistryError::Republished { .. })),
        "{refused:?}"
    );
    assert_eq!(registry.list().await.unwrap(), [manifest]);
}

#[tokio::test]
async fn what_is_not_a_plugin_or_not_what_was_said_is_refused() {
    let registry = Registry::new(ObjectStore::memory());
    let runtime = runtime();
    let not_wasm = registry
        .publish(
            &runtime,
            b"not a component".to_vec(),
            Expected::default(),
            None,
        )
        .await;
    assert!(
        matches!(not_wasm, Err(RegistryError::NotAPlugin(_))),
        "{not_wasm:?}"
    );
    let mislabelled = registry
        .publish(
            &runtime,
            component("echo"),
            Expected {
                name: None,
                version: Some("99.0.0"),
            },
            None,
        )
        .await;
    assert!(
        matches!(&mislabelled, Err(RegistryError::NotWhatWasSaid { expected, .. }) if expected == "echo@99.0.0"),
        "{mislabelled:?}"
    );
    assert!(registry.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn hosts_that_trust_keys_fetch_only_signed_untampered_versions() {
    let store = ObjectStore::memory();
    let registry = Registry::new(store.clone());
    let runtime = runtime();
    let key = SigningKey::from_bytes(&[3; 32]);
    let trust = Trust::new(vec![key.verifying_key()]);
    let Published::New(signed) = registry
        .publish(&runtime, component("echo"), Expected::default(), Some(&key))
        .await
        .unwrap()
    else {
        panic!("new");
    };
    let (name, version) = (signed.name.clone(), signed.version.clone());
    let (manifest, bytes) = registry.fetch(&name, &version, &trust).await.unwrap();
    assert_eq!((manifest, bytes), (signed.clone(), component("echo")));

    // Someone with write access swaps the code: the digest gives it away.
    store
        .put(&component_key(&name, &version), component("hostile"))
        .await
        .unwrap();
    let swapped = registry.fetch(&name, &version, &trust).await;
    assert!(
        matches!(swapped, Err(RegistryError::DigestMismatch { .. })),
        "{swapped:?}"
    );
    // ... and the manifest too: the signature gives it away.
    let mut forged = signed.clone();
    forged.sha256 = Digest::of(&component("hostile"));
    store
        .put(
            &manifest_key(&name, &version),
            serde_json::to_vec(&forged).unwrap(),
        )
        .await
        .unwrap();
    let forged = registry.fetch(&name, &version, &trust).await;
    assert!(
        matches!(
            forged,
            Err(RegistryError::Untrusted {
                reason: Untrusted::BadSignature,
                ..
            })
        ),
        "{forged:?}"
    );
    // Without trusted keys the host takes it (and says so in its config).
    assert!(
        registry
            .fetch(&name, &version, &Trust::default())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn activation_and_rollback_move_one_pipelines_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(ObjectStore::local(dir.path()));
    let none = registry.resolve("p", "score", &VersionRef::Active).await;
    assert!(
        matches!(none, Err(RegistryError::NotActive { .. })),
        "{none:?}"
    );
    assert_eq!(
        registry
            .activate("p", "score", "1")
            .await
            .unwrap()
            .to_string(),
        "score (none) -> 1"
    );
    registry.activate("p", "score", "2").await.unwrap();
    registry.activate("q", "score", "9").await.unwrap();
    assert_eq!(
        registry
            .resolve("p", "score", &VersionRef::Active)
            .await
            .unwrap(),
        "2"
    );
    assert_eq!(
        registry.rollback("p", "score").await.unwrap().to_string(),
        "score 2 -> 1"
    );
    let nothing = registry.rollback("p", "score").await;
    assert!(
        matches!(nothing, Err(RegistryError::NoEarlierVersion { .. })),
        "{nothing:?}"
    );
    assert_eq!(
        registry.active("q").await.unwrap().version_of("score"),
        Some("9")
    );
    // The watch: nothing while the object is unchanged, the new versions
    // once it changes.
    let (active, etag) = registry
        .active_if_changed("q", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(active.version_of("score"), Some("9"));
    assert_eq!(
        registry
            .active_if_changed("q", etag.as_ref())
            .await
            .unwrap(),
        None
    );
    registry.activate("q", "score", "10").await.unwrap();
    let (active, _) = registry
        .active_if_changed("q", etag.as_ref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(active.version_of("score"), Some("10"));
    let absent = registry.active_if_changed("r", None).await.unwrap();
    assert_eq!(absent, Some((ActiveVersions::default(), None)));
    assert_eq!(
        registry
            .resolve("p", "score", &VersionRef::Exact("7".into()))
            .await
            .unwrap(),
        "7"
    );
}

#[tokio::test]
async fn concurrent_activations_are_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(ObjectStore::local(dir.path()));
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let registry = registry.clone();
            tokio::spawn(async move {
                registry
                    .activate("p", &format!("plugin{i}"), "1")
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(registry.active("p").await.unwrap().plugins.len(), 4);
}

#[test]
fn version_references_name_a_version_or_the_active_one() {
    assert_eq!(
        VersionRef::parse("score@1.2.0"),
        Some(("score", VersionRef::Exact("1.2.0".into())))
    );
    assert_eq!(
        VersionRef::parse("score@active"),
        Some(("score", VersionRef::Active))
    );
    assert_eq!(VersionRef::parse("score"), None);
}
