//! The plugin registry: published plugin versions, and each pipeline's
//! active versions, in one object store (a local directory, or an S3
//! bucket and prefix).
//!
//! Layout:
//! ```text
//! plugins/{name}/{version}/component.wasm
//! plugins/{name}/{version}/manifest.json
//! pipelines/{pipeline}/active.json
//! pipelines/{pipeline}/hosts/{host}.json     (what each running host runs)
//! ```
//!
//! Invariants:
//! - a published version never changes: the component is written before
//!   the manifest, each only where nothing is yet, so a manifest always
//!   names a complete component; publishing the same bytes again changes
//!   nothing, other bytes under the same `name@version` are refused;
//! - a version is loaded only after its bytes match the manifest's sha256
//!   and the host's [`Trust`] accepts the manifest;
//! - a pipeline's active versions change only by compare-and-swap on the
//!   object's version, so concurrent activations never lose one another.

mod active;
mod manifest;
mod status;

pub use active::{ActivePlugin, ActiveVersions, Change};
pub use manifest::{
    KeyError, Manifest, ManifestSignature, Trust, Untrusted, signing_key_from_pem,
    verifying_key_from_pem,
};
pub use status::{HostStatus, Refusal};

use ed25519_dalek::SigningKey;

use crate::digest::Digest;
use crate::runtime::{Runtime, RuntimeError};
use crate::storage::{Changed, ETag, ObjectStore, Precondition, StorageError};

/// The WIT world every plugin implements (`wit/plugin.wit`).
pub const WORLD: &str = "weir:plugin/transform-plugin@0.1.0";

/// How often a compare-and-swap of the active versions is tried before
/// giving up (each retry follows another writer's change).
const CAS_ATTEMPTS: usize = 5;

/// Which version of a plugin a stage runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRef {
    /// Exactly this version.
    Exact(String),
    /// The pipeline's active version.
    Active,
}

impl VersionRef {
    /// `name@version` or `name@active` split into the name and the
    /// reference; `None` without an `@`.
    pub fn parse(reference: &str) -> Option<(&str, VersionRef)> {
        let (name, version) = reference.split_once('@')?;
        let version = match version {
            "active" => VersionRef::Active,
            exact => VersionRef::Exact(exact.to_owned()),
        };
        Some((name, version))
    }
}

/// Problems with the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The store failed.
    #[error("the plugin registry: {0}")]
    Storage(#[from] StorageError),
    /// The bytes are not a plugin this host can load.
    #[error(transparent)]
    NotAPlugin(#[from] RuntimeError),
    /// The component describes itself otherwise than the publisher said.
    #[error("the component says it is {actual}, not {expected}")]
    NotWhatWasSaid {
        /// What the publisher said.
        expected: String,
        /// What the component says.
        actual: String,
    },
    /// Other bytes are already published under this name and version.
    #[error(
        "{label} is already published with other bytes (sha256 {existing}); a published version never changes: publish a new version"
    )]
    Republished {
        /// `name@version`.
        label: String,
        /// The published component's sha256.
        existing: Digest,
    },
    /// No such version.
    #[error("{0} is not in the registry")]
    NotFound(String),
    /// A manifest or an active-versions object that does not parse.
    #[error("{key} in the registry is not valid: {source}")]
    Corrupt {
        /// The object.
        key: String,
        /// Why.
        source: serde_json::Error,
    },
    /// The component's bytes are not the ones the manifest names.
    #[error("{label}: the component's sha256 is {actual}, its manifest says {expected}")]
    DigestMismatch {
        /// `name@version`.
        label: String,
        /// From the manifest.
        expected: Digest,
        /// Of the bytes.
        actual: Digest,
    },
    /// The host does not trust the version.
    #[error("{label} is refused: {reason}")]
    Untrusted {
        /// `name@version`.
        label: String,
        /// Why.
        reason: Untrusted,
    },
    /// The pipeline has no active version of a plugin.
    #[error(
        "pipeline `{pipeline}` has no active version of {name} (activate one with `weir plugin activate`)"
    )]
    NotActive {
        /// The pipeline.
        pipeline: String,
        /// The plugin.
        name: String,
    },
    /// Nothing to roll back to.
    #[error("pipeline `{pipeline}` has no earlier version of {name} to roll back to")]
    NoEarlierVersion {
        /// The pipeline.
        pipeline: String,
        /// The plugin.
        name: String,
    },
    /// Other writers kept changing the active versions.
    #[error("the active versions of `{0}` kept changing under other writers; try again")]
    Contended(String),
}

/// What the publisher says a component is (`None`: whatever it describes
/// itself as).
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected<'a> {
    /// Its name.
    pub name: Option<&'a str>,
    /// Its version.
    pub version: Option<&'a str>,
}

/// What publishing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// The version is new.
    New(Manifest),
    /// The same bytes were already published under this version.
    AlreadyThere(Manifest),
}

/// A registry in an object store.
#[derive(Debug, Clone)]
pub struct Registry {
    store: ObjectStore,
}

fn component_key(name: &str, version: &str) -> String {
    format!("plugins/{name}/{version}/component.wasm")
}

fn manifest_key(name: &str, version: &str) -> String {
    format!("plugins/{name}/{version}/manifest.json")
}

fn active_key(pipeline: &str) -> String {
    format!("pipelines/{pipeline}/active.json")
}

fn host_key(pipeline: &str, host: &str) -> String {
    // Host names are free text: keep the key one safe path segment.
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("pipelines/{pipeline}/hosts/{safe}.json")
}

fn parse<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|source| RegistryError::Corrupt {
        key: key.to_owned(),
        source,
    })
}

impl Registry {
    /// The registry in `store`.
    pub fn new(store: ObjectStore) -> Self {
        Registry { store }
    }

    /// Where it is, for messages to people.
    pub fn describe(&self) -> String {
        self.store.describe("")
    }

    /// Publish a component: it must load in `runtime` (a component of the
    /// [`WORLD`] that describes itself), as what the publisher `expected`;
    /// the manifest is signed with `key` when given.
    pub async fn publish(
        &self,
        runtime: &Runtime,
        bytes: Vec<u8>,
        expected: Expected<'_>,
        key: Option<&SigningKey>,
    ) -> Result<Published, RegistryError> {
        let plugin = runtime.load("the component", &bytes)?;
        let info = plugin.info();
        let actual = format!("{}@{}", info.name, info.version);
        let said = format!(
            "{}@{}",
            expected.name.unwrap_or(&info.name),
            expected.version.unwrap_or(&info.version)
        );
        if said != actual {
            return Err(RegistryError::NotWhatWasSaid {
                expected: said,
                actual,
            });
        }
        let mut manifest = Manifest {
            name: info.name.clone(),
            version: info.version.clone(),
            sha256: plugin.digest(),
            size: bytes.len() as u64,
            world: WORLD.to_owned(),
            accepts: info.accepts.clone(),
            produces: info.produces.clone(),
            published_at: jiff::Timestamp::now().to_string(),
            published_with: format!("weir {}", env!("CARGO_PKG_VERSION")),
            signature: None,
        };
        if let Some(key) = key {
            manifest.sign(key);
        }
        if let Some(existing) = self.find(&manifest.name, &manifest.version).await? {
            return self.same_bytes(existing, manifest.sha256);
        }
        let component = component_key(&manifest.name, &manifest.version);
        match self
            .store
            .put_if(&component, bytes, &Precondition::Absent)
            .await
        {
            // A publish that stopped before its manifest left the component.
            Ok(_) | Err(StorageError::PreconditionFailed { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let (stored, _) = self
            .store
            .get_tagged(&component)
            .await?
            .ok_or_else(|| RegistryError::NotFound(manifest.label()))?;
        let stored = Digest::of(&stored);
        if stored != manifest.sha256 {
            return Err(RegistryError::Republished {
                label: manifest.label(),
                existing: stored,
            });
        }
        let key = manifest_key(&manifest.name, &manifest.version);
        let json = serde_json::to_vec_pretty(&manifest).expect("manifests serialise");
        match self.store.put_if(&key, json, &Precondition::Absent).await {
            Ok(_) => Ok(Published::New(manifest)),
            // Another publisher got there first.
            Err(StorageError::PreconditionFailed { .. }) => {
                let existing = self
                    .find(&manifest.name, &manifest.version)
                    .await?
                    .ok_or_else(|| RegistryError::NotFound(manifest.label()))?;
                self.same_bytes(existing, manifest.sha256)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn same_bytes(&self, existing: Manifest, sha256: Digest) -> Result<Published, RegistryError> {
        if existing.sha256 == sha256 {
            Ok(Published::AlreadyThere(existing))
        } else {
            Err(RegistryError::Republished {
                label: existing.label(),
                existing: existing.sha256,
            })
        }
    }

    async fn find(&self, name: &str, version: &str) -> Result<Option<Manifest>, RegistryError> {
        let key = manifest_key(name, version);
        match self.store.get(&key).await? {
            Some(bytes) => Ok(Some(parse(&key, &bytes)?)),
            None => Ok(None),
        }
    }

    /// The manifest of `name@version`.
    pub async fn manifest(&self, name: &str, version: &str) -> Result<Manifest, RegistryError> {
        self.find(name, version)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("{name}@{version}")))
    }

    /// Every published version's manifest, by name and then in publishing
    /// order.
    pub async fn list(&self) -> Result<Vec<Manifest>, RegistryError> {
        let mut manifests = Vec::new();
        for key in self.store.list("plugins/").await? {
            if key.ends_with("/manifest.json")
                && let Some(bytes) = self.store.get(&key).await?
            {
                manifests.push(parse::<Manifest>(&key, &bytes)?);
            }
        }
        manifests.sort_by(|a, b| (&a.name, &a.published_at).cmp(&(&b.name, &b.published_at)));
        Ok(manifests)
    }

    /// The component of `name@version`, checked against its manifest and
    /// `trust`.
    pub async fn fetch(
        &self,
        name: &str,
        version: &str,
        trust: &Trust,
    ) -> Result<(Manifest, Vec<u8>), RegistryError> {
        let manifest = self.manifest(name, version).await?;
        trust
            .check(&manifest)
            .map_err(|reason| RegistryError::Untrusted {
                label: manifest.label(),
                reason,
            })?;
        let bytes = self
            .store
            .get(&component_key(name, version))
            .await?
            .ok_or_else(|| RegistryError::NotFound(manifest.label()))?;
        let actual = Digest::of(&bytes);
        if actual != manifest.sha256 {
            return Err(RegistryError::DigestMismatch {
                label: manifest.label(),
                expected: manifest.sha256,
                actual,
            });
        }
        Ok((manifest, bytes))
    }

    /// The active versions of `pipeline` (none yet: empty).
    pub async fn active(&self, pipeline: &str) -> Result<ActiveVersions, RegistryError> {
        let key = active_key(pipeline);
        match self.store.get(&key).await? {
            Some(bytes) => parse(&key, &bytes),
            None => Ok(ActiveVersions::default()),
        }
    }

    /// The active versions of `pipeline` and their object's version, unless
    /// that is still `known` (`None`: unchanged). One conditional GET: what
    /// a running host pays per watch interval.
    pub async fn active_if_changed(
        &self,
        pipeline: &str,
        known: Option<&ETag>,
    ) -> Result<Option<(ActiveVersions, Option<ETag>)>, RegistryError> {
        let key = active_key(pipeline);
        Ok(match self.store.get_if_changed(&key, known).await? {
            Changed::Unchanged => None,
            Changed::Absent => Some((ActiveVersions::default(), None)),
            Changed::Now(bytes, etag) => Some((parse(&key, &bytes)?, Some(etag))),
        })
    }

    /// The version `reference` names for `pipeline`.
    pub async fn resolve(
        &self,
        pipeline: &str,
        name: &str,
        reference: &VersionRef,
    ) -> Result<String, RegistryError> {
        match reference {
            VersionRef::Exact(version) => Ok(version.clone()),
            VersionRef::Active => self
                .active(pipeline)
                .await?
                .version_of(name)
                .map(str::to_owned)
                .ok_or_else(|| RegistryError::NotActive {
                    pipeline: pipeline.to_owned(),
                    name: name.to_owned(),
                }),
        }
    }

    /// Make `version` the active version of `name` in `pipeline`. The
    /// caller checks the version first (it exists, it is trusted, the chain
    /// type-checks with it).
    pub async fn activate(
        &self,
        pipeline: &str,
        name: &str,
        version: &str,
    ) -> Result<Change, RegistryError> {
        self.change_active(pipeline, |active| Ok(active.activate(name, version)))
            .await
    }

    /// Return `name` to its previous active version in `pipeline`.
    pub async fn rollback(&self, pipeline: &str, name: &str) -> Result<Change, RegistryError> {
        self.change_active(pipeline, |active| {
            active
                .rollback(name)
                .ok_or_else(|| RegistryError::NoEarlierVersion {
                    pipeline: pipeline.to_owned(),
                    name: name.to_owned(),
                })
        })
        .await
    }

    /// Write `status` as its host's report for `pipeline`.
    pub async fn report(&self, pipeline: &str, status: &HostStatus) -> Result<(), RegistryError> {
        let json = serde_json::to_vec_pretty(status).expect("statuses serialise");
        Ok(self
            .store
            .put(&host_key(pipeline, &status.host), json)
            .await?)
    }

    /// Remove `host`'s report (it stopped).
    pub async fn forget(&self, pipeline: &str, host: &str) -> Result<(), RegistryError> {
        Ok(self.store.delete(&host_key(pipeline, host)).await?)
    }

    /// The reports of the hosts of `pipeline`.
    pub async fn statuses(&self, pipeline: &str) -> Result<Vec<HostStatus>, RegistryError> {
        let mut statuses = Vec::new();
        for key in self
            .store
            .list(&format!("pipelines/{pipeline}/hosts/"))
            .await?
        {
            if let Some(bytes) = self.store.get(&key).await? {
                statuses.push(parse::<HostStatus>(&key, &bytes)?);
            }
        }
        Ok(statuses)
    }

    /// Apply `change` to the active versions of `pipeline` by
    /// compare-and-swap, reading them again after another writer's change.
    async fn change_active(
        &self,
        pipeline: &str,
        change: impl Fn(&mut ActiveVersions) -> Result<Change, RegistryError>,
    ) -> Result<Change, RegistryError> {
        let key = active_key(pipeline);
        for _ in 0..CAS_ATTEMPTS {
            let (mut active, precondition) = match self.store.get_tagged(&key).await? {
                Some((bytes, etag)) => (parse(&key, &bytes)?, Precondition::Matches(etag)),
                None => (ActiveVersions::default(), Precondition::Absent),
            };
            let changed = change(&mut active)?;
            let json = serde_json::to_vec_pretty(&active).expect("active versions serialise");
            match self.store.put_if(&key, json, &precondition).await {
                Ok(_) => return Ok(changed),
                Err(StorageError::PreconditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Contended(pipeline.to_owned()))
    }
}

#[cfg(test)]
mod tests;
