//! A published plugin version's manifest, its signature, and which
//! signatures a host trusts.
//!
//! The signature is Ed25519 over the manifest's canonical bytes: its JSON
//! without the `signature` field, fields in declaration order (as
//! `serde_json` writes this struct). The manifest names the component's
//! sha256, so the signature covers the code. A host that trusts keys loads
//! a version only if one of them verifies its manifest: write access to the
//! registry's bucket is not enough to run code on the hosts.
//!
//! Keys are the PEM files `openssl genpkey -algorithm ed25519` (private,
//! PKCS#8) and `openssl pkey -pubout` (public, SPKI) write.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// What the registry knows of one plugin version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name, as it describes itself.
    pub name: String,
    /// Its version, as it describes itself.
    pub version: String,
    /// sha256 of the component's bytes.
    pub sha256: Digest,
    /// Size of the component in bytes.
    pub size: u64,
    /// The WIT world it implements (`package/world@version`).
    pub world: String,
    /// Media types it accepts.
    pub accepts: Vec<String>,
    /// Media types it produces.
    pub produces: Vec<String>,
    /// When it was published (RFC 3339).
    pub published_at: String,
    /// The `weir` that published it (`weir 0.1.0`).
    pub published_with: String,
    /// The publisher's signature, if it was signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ManifestSignature>,
}

/// An Ed25519 signature of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSignature {
    /// The signer's public key (the 32 key bytes, base64).
    pub key: String,
    /// The signature of the manifest's canonical bytes (base64).
    pub value: String,
}

impl Manifest {
    /// `name@version`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// The bytes the signature covers.
    fn canonical(&self) -> Vec<u8> {
        let unsigned = Manifest {
            signature: None,
            ..self.clone()
        };
        serde_json::to_vec(&unsigned).expect("manifests serialise")
    }

    /// Sign with `key` (replacing any earlier signature).
    pub fn sign(&mut self, key: &SigningKey) {
        let value = key.sign(&self.canonical());
        self.signature = Some(ManifestSignature {
            key: BASE64.encode(key.verifying_key().as_bytes()),
            value: BASE64.encode(value.to_bytes()),
        });
    }
}

/// Why a host refuses a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    /// No signature, and the host requires one.
    #[error("it is not signed, and this host only runs versions signed by a trusted key")]
    Unsigned,
    /// Signed by a key the host does not trust.
    #[error("it is signed by a key this host does not trust ({0})")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error(
        "its signature does not verify: the manifest changed after it was signed, or the signature was not made with the key it names"
    )]
    BadSignature,
}

/// The public keys whose signatures a host accepts. With none, every
/// version is accepted, signed or not (a local or trusted setup).
#[derive(Debug, Clone, Default)]
pub struct Trust {
    keys: Vec<VerifyingKey>,
}

impl Trust {
    /// Trust only versions signed by one of `keys` (none: trust every
    /// version).
    pub fn new(keys: Vec<VerifyingKey>) -> Self {
        Trust { keys }
    }

    /// Whether signatures are required.
    pub fn requires_signatures(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether `manifest` may run here.
    pub fn check(&self, manifest: &Manifest) -> Result<(), Untrusted> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let signature = manifest.signature.as_ref().ok_or(Untrusted::Unsigned)?;
        let key = self
            .keys
            .iter()
            .find(|k| BASE64.encode(k.as_bytes()) == signature.key)
            .ok_or_else(|| Untrusted::UnknownKey(signature.key.clone()))?;
        let value = BASE64
            .decode(&signature.value)
            .ok()
            .and_then(|bytes| ed25519_dalek::Signature::from_slice(&bytes).ok())
            .ok_or(Untrusted::BadSignature)?;
        key.verify(&manifest.canonical(), &value)
            .map_err(|_| Untrusted::BadSignature)
    }
}

/// A key file that does not hold an Ed25519 key.
#[derive(Debug, thiserror::Error)]
#[error("not an Ed25519 {kind} key in PEM ({reason})")]
pub struct KeyError {
    kind: &'static str,
    reason: String,
}

/// A private key from PEM (PKCS#8).
pub fn signing_key_from_pem(pem: &str) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError {
        kind: "private",
        reason: e.to_string(),
    })
}

/// A public key from PEM (SPKI).
pub fn verifying_key_from_pem(pem: &str) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_public_key_pem(pem).map_err(|e| KeyError {
        kind: "public",
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            name: "p".into(),
            version: "1.0.0".into(),
            sha256: Digest::of(b"component"),
            size: 9,
            world: "weir:plugin/transform-plugin@0.1.0".into(),
            accepts: vec!["text/plain".into()],
            produces: vec!["application/json".into()],
            published_at: "2026-12-01T00:00:00Z".into(),
            published_with: "weir 0.1.0".into(),
            signature: None,
        }
    }

    #[test]
    fn only_versions_signed_by_a_trusted_key_pass_when_keys_are_trusted() {
        let ours = SigningKey::from_bytes(&[7; 32]);
        let theirs = SigningKey::from_bytes(&[9; 32]);
        let trust = Trust::new(vec![ours.verifying_key()]);
        let mut signed = manifest();
        signed.sign(&ours);
        assert_eq!(trust.check(&signed), Ok(()));
        assert_eq!(trust.check(&manifest()), Err(Untrusted::Unsigned));
        let mut foreign = manifest();
        foreign.sign(&theirs);
        assert!(matches!(
            trust.check(&foreign),
            Err(Untrusted::UnknownKey(_))
        ));
        // A changed field (here: other code) breaks the signature.
        let mut tampered = signed.clone();
        tampered.sha256 = Digest::of(b"other code");
        assert_eq!(trust.check(&tampered), Err(Untrusted::BadSignature));
        // Without trusted keys, anything goes.
        assert_eq!(Trust::default().check(&tampered), Ok(()));
    }

    #[test]
    fn a_signed_manifest_survives_its_json() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut signed = manifest();
        signed.sign(&key);
        let read: Manifest =
            serde_json::from_slice(&serde_json::to_vec_pretty(&signed).unwrap()).unwrap();
        assert_eq!(Trust::new(vec![key.verifying_key()]).check(&read), Ok(()));
    }

    #[test]
    fn keys_are_read_from_pem() {
        use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
        let key = SigningKey::from_bytes(&[7; 32]);
        let private = key.to_pkcs8_pem(Default::default()).unwrap();
        let public = key
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        assert_eq!(signing_key_from_pem(&private).unwrap(), key);
        assert_eq!(
            verifying_key_from_pem(&public).unwrap(),
            key.verifying_key()
        );
        assert!(signing_key_from_pem(&public).is_err());
    }
}
