//! The S3 store against a fake server on a local socket: bodies cut off
//! mid-stream, objects over the limit, lost answers to completed uploads,
//! refused credentials.

use super::*;
use crate::storage::ObjectStore;

/// `sent` (which may be shorter).
fn ok(length: usize, sent: &[u8]) -> Vec<u8> {
    [
        format!("HTTP/1.1 200 OK\r\ncontent-length: {length}\r\n\r\n").as_bytes(),
        sent,
    ]
    .concat()
}

/// A store whose S3 endpoint is an HTTP server on a real socket that
/// reads its `n`-th request (from 0) and answers with the bytes
/// `respond(n)`; then the socket closes (or, with `hold`, stays open).
async fn fake_s3(
    respond: impl Fn(usize) -> Vec<u8> + Send + 'static,
    requests: usize,
    hold: bool,
) -> (ObjectStore, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncWriteExt;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let mut open = Vec::new();
        for n in 0..requests {
            let (mut socket, _) = listener.accept().await.unwrap();
            crate::test_support::read_request(&mut socket).await;
            socket.write_all(&respond(n)).await.unwrap();
            if hold {
                open.push(socket);
            } else {
                socket.shutdown().await.unwrap();
            }
        }
    });
    (
        ObjectStore::s3(
            crate::test_support::s3_client_at(address).await,
            "bucket",
            "",
        ),
        server,
    )
}

/// A GET whose body breaks off mid-stream is retried, not failed: the
/// first request gets half a body, the second all of it.
#[tokio::test]
async fn a_body_cut_off_mid_stream_is_fetched_again() {
    let body = b"0123456789".repeat(10);
    let served = body.clone();
    let (store, server) = fake_s3(
        move |n| {
            let sent = if n == 0 { &served[..10] } else { &served[..] };
            ok(served.len(), sent)
        },
        2,
        false,
    )
    .await;
    let retries = || {
        crate::telemetry::metrics::metrics()
            .s3_retries
            .with_label_values(&["get"])
            .get()
    };
    let before = retries();
    let got = store.get("key").await.unwrap();
    assert_eq!(got.as_deref(), Some(&body[..]));
    assert!(retries() > before, "the broken read was not counted");
    server.await.unwrap();
}

/// An object over the limit is not downloaded: its size comes from the
/// response headers. The server declares a gigabyte, sends ten bytes
/// and keeps the connection open, so reading the body would never end.
#[tokio::test]
async fn an_object_over_the_limit_is_not_downloaded() {
    let (store, server) = fake_s3(|_| ok(1 << 30, b"0123456789"), 1, true).await;
    let got = tokio::time::timeout(Duration::from_secs(20), store.get_at_most("key", 1 << 20))
        .await
        .expect("the body is not read");
    assert_eq!(got.unwrap(), Some(Bounded::TooLarge(1 << 30)));
    server.abort();
}

/// A completion whose response was lost is retried and finds the upload
/// gone; the object is there at its size, so the put succeeded. (The
/// server answers the retry, then the lookup; it was never asked the
/// first time, which changes nothing for the client.)
#[tokio::test]
async fn a_completed_upload_whose_answer_was_lost_is_found() {
    let no_such_upload = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>\
        <Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message>\
        </Error>";
    let respond = move |n| match n {
        0 => [
            format!(
                "HTTP/1.1 404 Not Found\r\ncontent-type: application/xml\r\n\
                 content-length: {}\r\n\r\n",
                no_such_upload.len()
            )
            .as_bytes(),
            no_such_upload.as_bytes(),
        ]
        .concat(),
        _ => ok(20 << 20, b""),
    };
    let parts = vec![CompletedPart::builder().part_number(1).e_tag("e").build()];
    let (store, server) = fake_s3(respond, 2, false).await;
    let ObjectStore::S3(s3) = &store else {
        unreachable!("fake_s3 makes an S3 store")
    };
    s3.complete_upload("key", "upload", parts.clone(), 20 << 20)
        .await
        .expect("the object is there: the upload was completed");
    server.await.unwrap();
    // The same answers for an object of another size: a real failure.
    let (store, server) = fake_s3(respond, 2, false).await;
    let ObjectStore::S3(s3) = &store else {
        unreachable!("fake_s3 makes an S3 store")
    };
    let refused = s3.complete_upload("key", "upload", parts, 1).await;
    assert!(
        matches!(refused, Err(StorageError::S3 { .. })),
        "{refused:?}"
    );
    server.await.unwrap();
}

/// An S3 error response with `status`, `reason` and error `code`.
fn error_response(status: u16, reason: &str, code: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>\
         <Message>{code}</Message></Error>"
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/xml\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A refusal of the host's own credentials or region is the host's fault:
/// the read is retried (and succeeds once the credentials work), never
/// reported as a problem of the object.
#[tokio::test]
async fn refused_credentials_are_retried_not_blamed_on_the_object() {
    for (status, reason, code) in [
        (403, "Forbidden", "AccessDenied"),
        (403, "Forbidden", "SignatureDoesNotMatch"),
        (400, "Bad Request", "ExpiredToken"),
        (400, "Bad Request", "AuthorizationHeaderMalformed"),
        (301, "Moved Permanently", "PermanentRedirect"),
    ] {
        let (store, server) = fake_s3(
            move |n| match n {
                0 => error_response(status, reason, code),
                _ => ok(4, b"body"),
            },
            2,
            false,
        )
        .await;
        let got = tokio::time::timeout(Duration::from_secs(20), store.get_at_most("k", 100))
            .await
            .expect("retried within the backoff");
        assert_eq!(
            got.unwrap(),
            Some(Bounded::Read(b"body".to_vec())),
            "{code}"
        );
        server.await.unwrap();
    }
}

/// What is wrong with the object named (a bucket that does not exist)
/// is reported at once, for the caller to blame the record.
#[tokio::test]
async fn a_missing_bucket_is_reported_at_once() {
    let (store, server) = fake_s3(
        |_| error_response(404, "Not Found", "NoSuchBucket"),
        1,
        false,
    )
    .await;
    let got = store.get_at_most("k", 100).await;
    assert!(matches!(got, Err(StorageError::S3 { .. })), "{got:?}");
    server.await.unwrap();
}

/// Answers no retry can change end at once: an object archived by a
/// lifecycle rule (403 `InvalidObjectState`, not a fault of this host's
/// credentials), and a store that does not implement what was asked (501).
#[tokio::test]
async fn final_answers_are_not_retried() {
    for (status, reason, code) in [
        (403, "Forbidden", "InvalidObjectState"),
        (501, "Not Implemented", "NotImplemented"),
    ] {
        let (store, server) =
            fake_s3(move |_| error_response(status, reason, code), 1, false).await;
        let got = tokio::time::timeout(Duration::from_secs(20), store.get_at_most("k", 100))
            .await
            .unwrap_or_else(|_| panic!("{code} was retried"));
        assert!(matches!(got, Err(StorageError::S3 { .. })), "{got:?}");
        server.await.unwrap();
    }
}

/// A GET through a client with a 1 s `[s3] request_timeout_s`, against a
/// server whose first connection answers `first` and then stalls (held
/// open), and whose second answers the object whole.
async fn get_after_a_stall(first: Vec<u8>) -> Result<Option<Bounded>, StorageError> {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let settings = S3Settings {
        endpoint: Some(format!("http://{}", listener.local_addr().unwrap())),
        region: Some("us-east-1".into()),
        path_style: true,
        request_timeout: Duration::from_secs(1),
        ..S3Settings::default()
    };
    let server = tokio::spawn(async move {
        let (mut stalled, _) = listener.accept().await.unwrap();
        crate::test_support::read_request(&mut stalled).await;
        stalled.write_all(&first).await.unwrap();
        let (mut socket, _) = listener.accept().await.unwrap();
        crate::test_support::read_request(&mut socket).await;
        socket.write_all(&ok(4, b"body")).await.unwrap();
        stalled
    });
    let client = crate::test_support::s3_client_with(&settings).await;
    let store = ObjectStore::s3(client, "bucket", "");
    let got = tokio::time::timeout(Duration::from_secs(30), store.get_at_most("k", 100))
        .await
        .expect("the stalled connection held the read");
    drop(server.await.unwrap());
    got
}

/// A connection that stops answering is given up after `[s3]
/// request_timeout_s` and the request retried, instead of holding its
/// partition: before the response's head, and in the middle of its body.
#[tokio::test]
async fn a_request_without_an_answer_is_retried() {
    for first in [Vec::new(), ok(4, b"bo")] {
        let got = get_after_a_stall(first).await;
        assert!(
            matches!(got, Ok(Some(Bounded::Read(ref body))) if body == b"body"),
            "{got:?}"
        );
    }
}

/// The payload hash a PUT of `settings`' client sends
/// (`x-amz-content-sha256`).
async fn payload_hash_of_a_put(settings: &S3Settings) -> String {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let settings = S3Settings {
        endpoint: Some(format!("http://{}", listener.local_addr().unwrap())),
        ..settings.clone()
    };
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let head = crate::test_support::read_request(&mut socket).await;
        socket.write_all(&ok(0, b"")).await.unwrap();
        head
    });
    let client = crate::test_support::s3_client_with(&settings).await;
    ObjectStore::s3(client, "bucket", "")
        .put("key", b"a body".to_vec())
        .await
        .unwrap();
    let head = server.await.unwrap();
    head.lines()
        .find_map(|line| line.strip_prefix("x-amz-content-sha256:"))
        .expect("SigV4 sends the payload hash")
        .trim()
        .to_owned()
}

/// Over plain HTTP, uploads are signed by default and with
/// `sign_payloads = true`, and go as `UNSIGNED-PAYLOAD` with `false`.
/// (Over HTTPS the default is unsigned: `signing`'s unit test.)
#[tokio::test]
async fn uploads_over_http_are_signed_unless_told_not_to() {
    let default = S3Settings {
        region: Some("us-east-1".into()),
        path_style: true,
        ..S3Settings::default()
    };
    let signed = crate::digest::Digest::of(b"a body").hex();
    assert_eq!(payload_hash_of_a_put(&default).await, signed);
    let told = |sign| S3Settings {
        sign_payloads: Some(sign),
        ..default.clone()
    };
    assert_eq!(payload_hash_of_a_put(&told(true)).await, signed);
    assert_eq!(
        payload_hash_of_a_put(&told(false)).await,
        "unsigned-payload"
    );
}
