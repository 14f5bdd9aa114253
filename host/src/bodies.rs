//! Bodies stored by reference: documents too large for a Kafka message
//! travel as an `s3://` URI plus their sha256 (see `docs/change-event.md`).
//! `weir ingest` uploads them ([`BodyStore::upload`]) under a
//! content-addressed key, so the same body is stored once; the host fetches
//! and verifies them ([`BodyStore::fetch`]) before the chain runs.

use std::sync::Arc;

use aws_sdk_s3::Client;
use tokio::sync::OnceCell;

use crate::config::S3Settings;
use crate::digest::Digest;
use crate::event::BodyRef;
use crate::storage::{Bounded, ObjectStore, StorageError, parse_s3_uri};

/// Why a referenced body cannot be used. The `Display` text is the
/// dead-letter reason.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The URI is not `s3://bucket/key`.
    #[error("body_ref.uri `{0}` is not an s3://bucket/key URI")]
    BadUri(String),
    /// No object at the URI.
    #[error("the body at {0} does not exist")]
    Missing(String),
    /// The object is larger than the pipeline accepts; it was not read.
    #[error("the body at {uri} is {size} bytes, over the configured max_body_bytes of {max}")]
    TooLarge {
        /// The URI.
        uri: String,
        /// The object's size.
        size: u64,
        /// `decode.max_body_bytes`.
        max: usize,
    },
    /// The object's sha256 is not the one the event promised.
    #[error("the body at {uri} has sha256 {actual}, but the event says {expected}")]
    Mismatch {
        /// The URI.
        uri: String,
        /// What the event says.
        expected: String,
        /// What the object hashes to.
        actual: Digest,
    },
    /// The store refused the read for a reason of the reference's (no such
    /// bucket, a malformed request). Refusals of the host's own credentials
    /// never get here: the store retries them.
    #[error("cannot read the body: {0}")]
    Storage(#[from] StorageError),
}

/// Reads and writes bodies in S3 with one client (clones share it).
#[derive(Debug, Clone)]
pub struct BodyStore {
    connection: Arc<Connection>,
}

/// The S3 client, made when first needed if the pipeline has no other use
/// for S3: a file run with a local output then loads no AWS configuration
/// (which may wait for the instance metadata service) unless one of its
/// events has its body by reference.
#[derive(Debug)]
enum Connection {
    Ready(Client),
    Lazy {
        settings: S3Settings,
        client: OnceCell<Client>,
    },
}

impl BodyStore {
    /// A body store using `client` (the pipeline's S3 connection).
    pub fn new(client: Client) -> Self {
        BodyStore {
            connection: Arc::new(Connection::Ready(client)),
        }
    }

    /// A body store that connects with `settings` (and the standard
    /// credential chain) when it first fetches a body.
    pub fn when_needed(settings: S3Settings) -> Self {
        BodyStore {
            connection: Arc::new(Connection::Lazy {
                settings,
                client: OnceCell::new(),
            }),
        }
    }

    async fn client(&self) -> &Client {
        match &*self.connection {
            Connection::Ready(client) => client,
            Connection::Lazy { settings, client } => {
                client
                    .get_or_init(|| crate::storage::s3_client(settings))
                    .await
            }
        }
    }

    /// Fetch the body a reference points to, if it is at most `max_bytes`
    /// long (a larger one is not downloaded), and check its digest; returns
    /// the body and its sha256 (which callers need: the body is hashed
    /// once).
    pub async fn fetch(
        &self,
        body_ref: &BodyRef,
        max_bytes: usize,
    ) -> Result<(Vec<u8>, Digest), BodyError> {
        let (bucket, key) =
            parse_s3_uri(&body_ref.uri).ok_or_else(|| BodyError::BadUri(body_ref.uri.clone()))?;
        let store = ObjectStore::s3(self.client().await.clone(), bucket, "");
        let limit = u64::try_from(max_bytes).unwrap_or(u64::MAX);
        let bytes = match store.get_at_most(key, limit).await? {
            None => return Err(BodyError::Missing(body_ref.uri.clone())),
            Some(Bounded::TooLarge(size)) => {
                return Err(BodyError::TooLarge {
                    uri: body_ref.uri.clone(),
                    size,
                    max: max_bytes,
                });
            }
            Some(Bounded::Read(bytes)) => bytes,
        };
        let actual = Digest::of(&bytes);
        if Digest::parse(&body_ref.sha256) != Some(actual) {
            return Err(BodyError::Mismatch {
                uri: body_ref.uri.clone(),
                expected: body_ref.sha256.clone(),
                actual,
            });
        }
        Ok((bytes, actual))
    }

    /// Store `body` under `<prefix>/<sha256>` in `bucket` and return the
    /// reference to put in the event.
    pub async fn upload(
        &self,
        bucket: &str,
        prefix: &str,
        body: Vec<u8>,
    ) -> Result<BodyRef, StorageError> {
        let digest = Digest::of(&body);
        let size = body.len() as u64;
        let store = ObjectStore::s3(self.client().await.clone(), bucket, prefix);
        store.put(&digest.hex(), body).await?;
        Ok(BodyRef {
            uri: store.describe(&digest.hex()),
            sha256: digest.to_string(),
            size: Some(size),
        })
    }
}
