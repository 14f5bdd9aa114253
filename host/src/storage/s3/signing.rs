//! Whether upload bodies are signed. SigV4 can sign a request's body (a
//! SHA-256 over every byte uploaded) or mark it `UNSIGNED-PAYLOAD`. Over
//! HTTPS, TLS guards the body in transit (and the bodies of `PutObject` and
//! `UploadPart`, weir's uploads, also carry the SDK's CRC32 checksum in a
//! signed header), so signing it is a second full pass over every result
//! and cache pack for little. Over plain HTTP the signature is the only
//! guard against a body altered on the way, so it stays: the rule of the
//! AWS SDK for Java's `AWS4UnsignedPayloadSigner`.
//!
//! The scheme is read from each request's own URI, so an endpoint from
//! anywhere (`[s3] endpoint`, `AWS_ENDPOINT_URL_S3`, a profile) is judged
//! by where the request really goes.
//!
//! Invariant: only requests with a body are touched; a request whose
//! payload signing another part of the SDK already chose (streaming
//! uploads with checksum trailers) keeps that choice.

use aws_runtime::auth::PayloadSigningOverride;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;

/// Marks upload bodies `UNSIGNED-PAYLOAD`: over HTTPS only, or everywhere.
#[derive(Debug)]
pub(crate) struct UnsignedPayloads {
    /// Over plain HTTP too (`[s3] sign_payloads = false`).
    pub(crate) over_http: bool,
}

impl UnsignedPayloads {
    /// Whether a body sent to `uri` goes unsigned.
    fn unsigned(&self, uri: &str) -> bool {
        self.over_http
            || uri
                .get(..8)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    }
}

impl Intercept for UnsignedPayloads {
    fn name(&self) -> &'static str {
        "UnsignedPayloads"
    }

    // After every `modify_before_signing` hook (the checksum interceptor
    // adds its header and chooses its streaming modes there), before the
    // signer reads the bag.
    fn read_before_signing(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let has_body = request
            .body()
            .bytes()
            .is_some_and(|bytes| !bytes.is_empty());
        if has_body
            && self.unsigned(request.uri())
            && cfg.load::<PayloadSigningOverride>().is_none()
        {
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
    fn bodies_go_unsigned_over_https_and_over_http_only_when_asked() {
        let by_scheme = UnsignedPayloads { over_http: false };
        assert!(by_scheme.unsigned("https://s3.us-east-1.amazonaws.com/b/k"));
        assert!(by_scheme.unsigned("HTTPS://minio.internal/b/k"));
        assert!(!by_scheme.unsigned("http://127.0.0.1:9000/b/k"));
        let everywhere = UnsignedPayloads { over_http: true };
        assert!(everywhere.unsigned("http://127.0.0.1:9000/b/k"));
    }
}
