//! Tests of the test harness itself: the HTTP response parser must handle every framing a
//! server may choose, or a framing change in the server would show up as confusing failures
//! elsewhere; and the check every server's log gets for secrets must find them.

mod common;

use common::parse_response;

#[test]
fn parses_content_length_chunked_and_close_delimited_bodies() {
    let sized = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\nok\nextra")
        .expect("sized");
    assert_eq!((sized.status, sized.body.as_slice()), (200, &b"ok\n"[..]));
    assert_eq!(sized.header("x-a"), Some("b"));
    assert_eq!(sized.header("CONTENT-length"), Some("3"));

    let chunked = parse_response(
        b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n\
          4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nTrailer: x\r\n\r\n",
    )
    .expect("chunked");
    assert_eq!(chunked.status, 400);
    assert_eq!(chunked.json(), serde_json::json!({"a":1}));

    let closed = parse_response(b"HTTP/1.0 404 Not Found\r\n\r\nnot found").expect("closed");
    assert_eq!(
        (closed.status, closed.text()),
        (404, "not found".to_owned())
    );

    assert!(parse_response(b"garbage\r\n\r\n").is_err());
    assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
}

#[test]
fn a_secret_or_a_token_signature_in_a_log_is_found() {
    // Every server's log is checked for these when the server is dropped.
    assert_eq!(common::leaked_secret("INFO nothing to see"), None);
    common::secret("hunter2-password");
    assert_eq!(
        common::leaked_secret("WARN login with hunter2-password failed").as_deref(),
        Some("hunter2-")
    );
    let signature = common::DOCS_TOKEN.rsplit('.').next().unwrap();
    assert!(common::leaked_secret(&format!("DEBUG bad signature {signature}")).is_some());
}
