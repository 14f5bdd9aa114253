//! Whether request payloads are signed. SigV4 can sign a request's body
//! (a SHA-256 over every byte uploaded) or mark it `UNSIGNED-PAYLOAD`. Over
//! HTTPS, TLS already guards the body in transit, and the SDK's CRC32
//! checksum header (itself signed) guards it end to end, so signing it is
//! a second full pass over every result and cache pack for nothing. Over
//! plain HTTP the signature is the only guard against a body altered on
//! the way, so it stays (the rule of the AWS SDK for Java's
//! `AWS4UnsignedPayloadSigner`).
//!
//! Invariant: only requests with a body are touched; a request whose
//! payload signing another part of the SDK already chose (streaming
//! uploads with checksum trailers) keeps that choice.

use aws_runtime::auth::PayloadSigningOverride;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;

/// Whether to sign payloads when `[s3] sign_payloads` does not say: only
/// over plain HTTP (AWS's own endpoints are HTTPS).
pub(crate) fn signs_by_default(endpoint: Option<&str>) -> bool {
    endpoint.is_some_and(|endpoint| {
        endpoint
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
    })
}

/// Marks the payloads of requests with a body `UNSIGNED-PAYLOAD`.
#[derive(Debug)]
pub(crate) struct UnsignedPayloads;

impl Intercept for UnsignedPayloads {
    fn name(&self) -> &'static str {
        "UnsignedPayloads"
    }

    // After every `modify_before_signing` hook (the checksum interceptor
    // chooses its streaming modes there), before the signer reads the bag.
    fn read_before_signing(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let has_body = context
            .request()
            .body()
            .bytes()
            .is_some_and(|bytes| !bytes.is_empty());
        if has_body && cfg.load::<PayloadSigningOverride>().is_none() {
            cfg.interceptor_state()
                .store_put(PayloadSigningOverride::UnsignedPayload);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_signed_by_default_only_over_plain_http() {
        assert!(signs_by_default(Some("http://127.0.0.1:9000")));
        assert!(signs_by_default(Some("HTTP://minio.internal")));
        assert!(!signs_by_default(Some("https://s3.example.com")));
        assert!(!signs_by_default(None), "AWS's own endpoints are HTTPS");
    }
}
