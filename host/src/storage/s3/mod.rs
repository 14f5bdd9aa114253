//! S3 (or an S3-compatible store) as an object store: key `a/b` is object
//! `<prefix>/a/b` in a bucket.
//!
//! Invariants: transient failures and refusals of the host's own
//! credentials are retried with capped exponential backoff for as long as
//! the caller waits; objects of 16 MiB and more are uploaded in parts; a
//! bounded read never downloads more than its limit.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::{Bounded, Changed, ETag, Precondition, StorageError};
use crate::config::S3Settings;

/// Objects at least this large are uploaded in parts.
const MULTIPART_THRESHOLD: usize = 16 << 20;
/// Size of each part of a multipart upload (S3's minimum is 5 MiB).
const PART_SIZE: usize = 8 << 20;
/// The longest wait to connect to S3 (the SDK's default).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
/// First and largest wait between retries of a transient failure.
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Capped exponential backoff between the attempts of one operation.
struct Backoff {
    /// The next pause.
    wait: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            wait: BACKOFF_START,
        }
    }
}

impl Backoff {
    /// Sleep for the current wait, and double it (up to [`BACKOFF_MAX`]).
    async fn pause(&mut self) {
        tokio::time::sleep(self.wait).await;
        self.wait = (self.wait * 2).min(BACKOFF_MAX);
    }
}

/// The HTTP(S) client of every S3 client: the SDK's own (hyper 1 + rustls)
/// with rustls' `ring` crypto provider. The SDK's default picks aws-lc,
/// whose C build costs a new user minutes on their first `cargo run`; our
/// SDK crates are built without a default client, so every S3 client must
/// be given this one.
pub fn http_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Build an S3 client from the pipeline's `[s3]` settings and the standard
/// AWS credential chain.
pub async fn s3_client(settings: &S3Settings) -> Client {
    Client::from_conf(
        s3_config(
            settings,
            aws_config::defaults(aws_config::BehaviorVersion::latest()),
        )
        .await,
    )
}

/// The client configuration for `settings`, on top of `loader`'s (the
/// standard chain, or a test's static credentials).
pub(crate) async fn s3_config(
    settings: &S3Settings,
    loader: aws_config::ConfigLoader,
) -> aws_sdk_s3::Config {
    let mut loader = loader.http_client(http_client());
    if let Some(region) = &settings.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let shared = loader.load().await;
    let mut builder =
        aws_sdk_s3::config::Builder::from(&shared).force_path_style(settings.path_style);
    if shared.region().is_none() {
        builder = builder.region(aws_config::Region::new("us-east-1"));
    }
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    // The SDK's defaults bound connecting only: a connection that stops
    // answering (a load balancer dropping it silently) would hold its
    // request, and the partition behind it, until the kernel gives up.
    builder = builder.timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(settings.request_timeout)
            .build(),
    );
    if settings.sign_payloads != Some(true) {
        let over_http = settings.sign_payloads == Some(false);
        builder = builder.interceptor(signing::UnsignedPayloads { over_http });
    }
    builder.build()
}

/// What a GET request answered.
enum Got {
    /// The object (boxed: the output is large, the other answers empty).
    Found(Box<aws_sdk_s3::operation::get_object::GetObjectOutput>),
    /// No such key.
    Missing,
    /// 304: the object's ETag is still the one the request named.
    NotModified,
}

/// What a (possibly conditional) read found.
enum Versioned {
    /// The object (or that it is too large) and its ETag.
    Found(Bounded, ETag),
    /// No such key.
    Missing,
    /// Still the version the read named.
    NotModified,
}

/// An S3 bucket and key prefix.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
}

/// Error codes S3 answers when the request's credentials or the client's
/// configuration are the problem: a fault of this host (its keys, its
/// token, its clock, its policy, its `[s3] region`), not of the object asked
/// for.
const HOST_FAULT_CODES: &[&str] = &[
    "AccessDenied",
    "AllAccessDisabled",
    // Signed for another region than the bucket's.
    "AuthorizationHeaderMalformed",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidToken",
    // The bucket is in another region than the client's.
    "PermanentRedirect",
    "RequestTimeTooSkewed",
    "SignatureDoesNotMatch",
    "TokenRefreshRequired",
];

/// Error codes S3 answers, with a 403 or otherwise, when the object asked
/// for is the problem, not this host: an object archived by a lifecycle
/// rule (Glacier, Deep Archive) cannot be read until it is restored, and
/// no retry restores it. A body by reference there is its record's fault.
const OBJECT_FAULT_CODES: &[&str] = &["InvalidObjectState"];

/// Why a failed S3 request is worth retrying, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// No response, throttling, or a server-side (5xx) error: S3 may answer
    /// later.
    Transient,
    /// The host's own credentials, permissions or region were refused
    /// (401/403, or one of [`HOST_FAULT_CODES`]): nothing about the
    /// request's object is known, so no record may be blamed for it. It is retried (credentials are refreshed by the
    /// provider chain, policies get fixed) and the partition waits.
    HostFault,
}

/// Whether, and why, an SDK error is worth retrying. A 501 (`Not
/// Implemented`: a store without conditional writes, or without the
/// checksums the SDK sends) is final: no retry makes the store implement
/// it, and the host's own writes stop with the reason.
fn retry_reason<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Option<Retry> {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Some(Retry::Transient)
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or_default();
            if OBJECT_FAULT_CODES.contains(&code) {
                None
            } else if status == 401 || status == 403 || HOST_FAULT_CODES.contains(&code) {
                Some(Retry::HostFault)
            } else if status == 429
                || (status >= 500 && status != 501)
                || matches!(code, "SlowDown" | "Throttling" | "RequestTimeout")
            {
                Some(Retry::Transient)
            } else {
                None
            }
        }
        _ => None,
    }
}

impl S3Store {
    pub(super) fn new(client: Client, bucket: &str, prefix: &str) -> Self {
        S3Store {
            client,
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        }
    }

    pub(super) fn describe(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }
    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    /// Run `attempt` until it succeeds or fails permanently, backing off
    /// between transient failures.
    async fn retrying<T, E, F, Fut>(
        &self,
        operation: &'static str,
        key: &str,
        mut attempt: F,
    ) -> Result<T, StorageError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    {
        let mut backoff = Backoff::default();
        let mut failures = 0u32;
        let label = operation.replace(' ', "_");
        let metrics = crate::telemetry::metrics::metrics();
        let readiness = crate::telemetry::readiness::readiness();
        loop {
            let started = std::time::Instant::now();
            let outcome = attempt().await;
            metrics
                .s3_duration
                .with_label_values(&[label.as_str()])
                .observe(started.elapsed().as_secs_f64());
            if outcome.is_err() {
                metrics.s3_errors.with_label_values(&[label.as_str()]).inc();
            }
            let retry = outcome.as_ref().err().and_then(retry_reason);
            readiness.store_failing(retry.is_some());
            if retry.is_some() {
                metrics
                    .s3_retries
                    .with_label_values(&[label.as_str()])
                    .inc();
            }
            match outcome {
                Ok(value) => {
                    if failures > 0 {
                        tracing::info!(operation, key, failures, "S3 is answering again");
                    }
                    return Ok(value);
                }
                Err(error) if retry == Some(Retry::Transient) => {
                    failures += 1;
                    tracing::warn!(
                        operation, bucket = %self.bucket, key, failures,
                        "S3 request failed, retrying in {:?}: {}",
                        backoff.wait,
                        aws_sdk_s3::error::DisplayErrorContext(&error)
                    );
                    backoff.pause().await;
                }
                Err(error) if retry == Some(Retry::HostFault) => {
                    failures += 1;
                    tracing::error!(
                        operation, bucket = %self.bucket, key, failures,
                        "S3 refused this host's credentials or permissions; waiting for them \
                         to be fixed (nothing is dead-lettered or committed meanwhile), \
                         retrying in {:?}: {}",
                        backoff.wait,
                        aws_sdk_s3::error::DisplayErrorContext(&error)
                    );
                    backoff.pause().await;
                }
                Err(error) => {
                    return Err(StorageError::S3 {
                        operation,
                        bucket: self.bucket.clone(),
                        key: self.full_key(key),
                        message: aws_sdk_s3::error::DisplayErrorContext(&error).to_string(),
                    });
                }
            }
        }
    }

    pub(super) async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        if bytes.len() >= MULTIPART_THRESHOLD {
            return self.put_multipart(key, bytes).await;
        }
        let full = self.full_key(key);
        let body = bytes::Bytes::from(bytes);
        self.retrying("put", key, || {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&full)
                .body(ByteStream::from(body.clone()))
                .send()
        })
        .await
        .map(drop)
    }

    async fn put_multipart(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let full = self.full_key(key);
        let created = self
            .retrying("create multipart upload", key, || {
                self.client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&full)
                    .send()
            })
            .await?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let body = bytes::Bytes::from(bytes);
        let mut parts = Vec::new();
        for (index, start) in (0..body.len()).step_by(PART_SIZE).enumerate() {
            let number = i32::try_from(index + 1).expect("fewer than 2^31 parts");
            let chunk = body.slice(start..(start + PART_SIZE).min(body.len()));
            let uploaded = self
                .retrying("upload part", key, || {
                    self.client
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(&full)
                        .upload_id(&upload_id)
                        .part_number(number)
                        .body(ByteStream::from(chunk.clone()))
                        .send()
                })
                .await;
            match uploaded {
                Ok(part) => parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(str::to_owned))
                        .build(),
                ),
                Err(error) => {
                    let _ = self
                        .client
                        .abort_multipart_upload()
                        .bucket(&self.bucket)
                        .key(&full)
                        .upload_id(&upload_id)
                        .send()
                        .await;
                    return Err(error);
                }
            }
        }
        self.complete_upload(key, &upload_id, parts, body.len() as u64)
            .await
    }

    /// Complete the multipart upload `upload_id` of `key`, whose parts hold
    /// `size` bytes. If an attempt completed it but its response was lost,
    /// the retry finds the upload gone (`NoSuchUpload`): then the object is
    /// looked up, and its presence at the right size is success.
    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        size: u64,
    ) -> Result<(), StorageError> {
        let full = self.full_key(key);
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        let upload_found = self
            .retrying("complete multipart upload", key, || async {
                match self
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&full)
                    .upload_id(upload_id)
                    .multipart_upload(completed.clone())
                    .send()
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(SdkError::ServiceError(e)) if e.err().code() == Some("NoSuchUpload") => {
                        Ok(false)
                    }
                    Err(e) => Err(e),
                }
            })
            .await?;
        if upload_found {
            return Ok(());
        }
        let stored = self
            .retrying("head", key, || async {
                match self
                    .client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(&full)
                    .send()
                    .await
                {
                    Ok(head) => Ok(head.content_length()),
                    Err(SdkError::ServiceError(e)) if e.err().is_not_found() => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        if stored.and_then(|length| u64::try_from(length).ok()) == Some(size) {
            tracing::info!(
                key,
                "multipart upload was completed by an attempt whose response was lost"
            );
            return Ok(());
        }
        Err(StorageError::S3 {
            operation: "complete multipart upload",
            bucket: self.bucket.clone(),
            key: full,
            message: format!(
                "the upload is gone (NoSuchUpload) and the object is not there with its {size} bytes"
            ),
        })
    }

    pub(super) async fn get(&self, key: &str, limit: u64) -> Result<Option<Bounded>, StorageError> {
        Ok(self.get_versioned(key, limit).await?.map(|(read, _)| read))
    }

    /// A small object and its ETag, or `None` if there is none.
    pub(super) async fn get_tagged(
        &self,
        key: &str,
    ) -> Result<Option<(Vec<u8>, ETag)>, StorageError> {
        Ok(self
            .get_versioned(key, u64::MAX)
            .await?
            .map(|(read, etag)| (read.whole(), etag)))
    }

    /// The object (at most `limit` bytes of it) and its ETag, or `None`.
    async fn get_versioned(
        &self,
        key: &str,
        limit: u64,
    ) -> Result<Option<(Bounded, ETag)>, StorageError> {
        Ok(match self.get_versioned_unless(key, limit, None).await? {
            Versioned::Found(read, etag) => Some((read, etag)),
            Versioned::Missing => None,
            Versioned::NotModified => unreachable!("an unconditional GET is never a 304"),
        })
    }

    /// A small object and its ETag, unless its ETag is still `known`: a
    /// conditional GET (`If-None-Match`), which costs no body when the
    /// object did not change.
    pub(super) async fn get_if_changed(
        &self,
        key: &str,
        known: Option<&ETag>,
    ) -> Result<Changed, StorageError> {
        Ok(
            match self.get_versioned_unless(key, u64::MAX, known).await? {
                Versioned::Found(read, etag) => Changed::Now(read.whole(), etag),
                Versioned::Missing => Changed::Absent,
                Versioned::NotModified => Changed::Unchanged,
            },
        )
    }

    /// [`S3Store::get_versioned`], or `NotModified` when the object's ETag
    /// is still `unless`.
    async fn get_versioned_unless(
        &self,
        key: &str,
        limit: u64,
        unless: Option<&ETag>,
    ) -> Result<Versioned, StorageError> {
        let full = self.full_key(key);
        let mut backoff = Backoff::default();
        loop {
            let output = match self.get_response(key, &full, unless).await? {
                Got::Found(output) => *output,
                Got::Missing => return Ok(Versioned::Missing),
                Got::NotModified => return Ok(Versioned::NotModified),
            };
            let etag = ETag(output.e_tag().unwrap_or_default().to_owned());
            let size = output.content_length().and_then(|l| u64::try_from(l).ok());
            if let Some(size) = size.filter(|size| *size > limit) {
                return Ok(Versioned::Found(Bounded::TooLarge(size), etag));
            }
            // The attempt's deadline ended with the response's head: the
            // body gets one of its own, or a connection stalled mid-body
            // would hold the partition.
            let deadline = self
                .client
                .config()
                .timeout_config()
                .and_then(|t| t.operation_attempt_timeout())
                .unwrap_or(S3Settings::DEFAULT_REQUEST_TIMEOUT);
            let broken: Box<dyn std::fmt::Display + Send> =
                match tokio::time::timeout(deadline, output.body.collect()).await {
                    Ok(Ok(bytes)) => {
                        // Not `to_vec`: a unique buffer becomes the Vec without a copy.
                        let bytes = Vec::from(bytes.into_bytes());
                        // Without a length header the size is known only now.
                        let read = if bytes.len() as u64 > limit {
                            Bounded::TooLarge(bytes.len() as u64)
                        } else {
                            Bounded::Read(bytes)
                        };
                        return Ok(Versioned::Found(read, etag));
                    }
                    Ok(Err(error)) => Box::new(error),
                    Err(stalled) => Box::new(stalled),
                };
            // The connection broke or stalled while the body was streaming
            // (e.g. the server went away): as transient as a request that
            // failed, and counted and reported as one.
            let metrics = crate::telemetry::metrics::metrics();
            metrics.s3_errors.with_label_values(&["get"]).inc();
            metrics.s3_retries.with_label_values(&["get"]).inc();
            crate::telemetry::readiness::readiness().store_failing(true);
            tracing::warn!(
                operation = "get", bucket = %self.bucket, key,
                "S3 body read failed, retrying in {:?}: {broken}",
                backoff.wait
            );
            backoff.pause().await;
        }
    }

    /// Write `key` only if `precondition` holds (`If-None-Match: *` or
    /// `If-Match: <etag>`); returns the new ETag. A failed precondition (412,
    /// or 409 for a concurrent conditional write) is
    /// [`StorageError::PreconditionFailed`].
    pub(super) async fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        precondition: &Precondition,
    ) -> Result<ETag, StorageError> {
        let full = self.full_key(key);
        let body = bytes::Bytes::from(bytes);
        let (if_match, if_none_match) = match precondition {
            Precondition::Absent => (None, Some("*".to_owned())),
            Precondition::Matches(etag) => (Some(etag.0.clone()), None),
        };
        self.retrying("conditional put", key, || async {
            match self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&full)
                .set_if_match(if_match.clone())
                .set_if_none_match(if_none_match.clone())
                .body(ByteStream::from(body.clone()))
                .send()
                .await
            {
                Ok(output) => Ok(Ok(ETag(output.e_tag().unwrap_or_default().to_owned()))),
                Err(SdkError::ServiceError(e))
                    if matches!(e.raw().status().as_u16(), 409 | 412) =>
                {
                    Ok(Err(StorageError::PreconditionFailed { key: full.clone() }))
                }
                Err(e) => Err(e),
            }
        })
        .await?
    }

    /// The response to a GET of `full` (its body not read yet), or `None`
    /// if there is no such object.
    async fn get_response(
        &self,
        key: &str,
        full: &str,
        unless: Option<&ETag>,
    ) -> Result<Got, StorageError> {
        self.retrying("get", key, || async {
            let mut request = self.client.get_object().bucket(&self.bucket).key(full);
            if let Some(etag) = unless {
                request = request.if_none_match(&etag.0);
            }
            match request.send().await {
                Ok(output) => Ok(Got::Found(Box::new(output))),
                Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => Ok(Got::Missing),
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 304) => {
                    Ok(Got::NotModified)
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Keys under `prefix` after `start_after`: all of them, or only the
    /// first page of at most `max_keys`.
    pub(super) async fn list(
        &self,
        prefix: &str,
        start_after: &str,
        max_keys: Option<i32>,
    ) -> Result<Vec<String>, StorageError> {
        let full_prefix = self.full_key(prefix);
        let full_start_after = (!start_after.is_empty()).then(|| self.full_key(start_after));
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .retrying("list", prefix, || {
                    self.client
                        .list_objects_v2()
                        .bucket(&self.bucket)
                        .prefix(&full_prefix)
                        .set_start_after(full_start_after.clone())
                        .set_continuation_token(token.clone())
                        .set_max_keys(max_keys)
                        .send()
                })
                .await?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .map(|k| k[strip..].to_owned()),
            );
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() || max_keys.is_some() {
                return Ok(keys);
            }
        }
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let full = self.full_key(key);
        self.retrying("delete", key, || {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(&full)
                .send()
        })
        .await
        .map(drop)
    }
}

mod signing;
#[cfg(test)]
mod tests;
