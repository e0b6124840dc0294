//! Goal: every answer at `/graphql` (and every refusal anywhere) is in the
//! GraphQL over HTTP shape: JSON errors with a code and a clear message, no
//! Rust type names, the content type the client accepted, and a 413 that
//! closes the connection so a keep-alive client is not left writing into
//! a socket the server stopped reading.
//! Method: raw requests with reqwest against a running app.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Options, TestApp};

struct Raw {
    status: u16,
    content_type: String,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn raw(request: reqwest::RequestBuilder) -> Raw {
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text:?}"));
    Raw {
        status,
        content_type,
        headers,
        body,
    }
}

/// A refusal: one error with a code, and a message that names no Rust type.
fn assert_refusal(answer: &Raw, status: u16, code: &str, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    assert!(
        answer.content_type.starts_with("application/json"),
        "{what}: {}",
        answer.content_type
    );
    assert_eq!(
        answer.body["errors"][0]["extensions"]["code"], code,
        "{what}: {}",
        answer.body
    );
    let message = answer.body["errors"][0]["message"].as_str().unwrap();
    for leak in ["Error(", "InvalidRequest", "UnsupportedBatch", "::", "struct "] {
        assert!(!message.contains(leak), "{what}: {message}");
    }
}

async fn answers_take_the_accepted_media_type(app: TestApp) {
    let url = format!("{}/graphql", app.address);
    let query = json!({ "query": "{ __typename }" });
    for (accept, expected) in [
        (None, "application/json"),
        (Some("application/json"), "application/json"),
        (Some("*/*"), "application/json"),
        (
            Some("application/graphql-response+json"),
            "application/graphql-response+json",
        ),
    ] {
        let mut request = app.http.post(&url).json(&query);
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let answer = raw(request).await;
        assert_eq!(answer.status, 200);
        assert!(
            answer.content_type.starts_with(expected),
            "{accept:?}: {}",
            answer.content_type
        );
        assert_eq!(answer.body["data"]["__typename"], "QueryRoot");
    }
    // A document that does not parse: 200 with errors for application/json,
    // 400 without `data` for application/graphql-response+json.
    let broken = json!({ "query": "{ __typename" });
    let legacy = raw(app
        .http
        .post(&url)
        .json(&broken)
        .header("accept", "application/json"))
    .await;
    assert_eq!(legacy.status, 200);
    assert_eq!(legacy.body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let modern = raw(app
        .http
        .post(&url)
        .json(&broken)
        .header("accept", "application/graphql-response+json"))
    .await;
    assert_eq!(modern.status, 400);
    assert!(modern.body.get("data").is_none(), "{}", modern.body);
    // A field error during execution is still 200 with data.
    let executed = raw(app
        .http
        .post(&url)
        .json(&json!({ "query": "{ wallet { plan } }" }))
        .header("accept", "application/graphql-response+json"))
    .await;
    assert_eq!(executed.status, 200);
    assert_eq!(
        executed.body["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
    let refused = raw(app.http.post(&url).json(&query).header("accept", "text/html")).await;
    assert_refusal(&refused, 406, "BAD_USER_INPUT", "Accept: text/html");
}

async fn malformed_requests_get_graphql_errors(app: TestApp) {
    let url = format!("{}/graphql", app.address);
    for (body, what) in [
        ("{\"query\": \"{ __typename }\"", "truncated JSON"),
        ("null", "null"),
        ("\"{ __typename }\"", "a string"),
        ("[{\"query\": \"{ __typename }\"}]", "a batch"),
        ("{\"variables\": {}}", "no query"),
        (
            "{\"query\": \"{ __typename }\", \"variables\": [1]}",
            "variables as a list",
        ),
    ] {
        let answer = raw(app
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body))
        .await;
        assert_refusal(&answer, 400, "BAD_USER_INPUT", what);
    }
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=X",
    ] {
        let answer = raw(app
            .http
            .post(&url)
            .header("content-type", content_type)
            .body("--X\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{\r\n--X--"))
        .await;
        assert_refusal(&answer, 415, "BAD_USER_INPUT", content_type);
    }
    let bad_variables = raw(app
        .http
        .get(format!("{url}?query=%7B__typename%7D&variables=%7Bnope")))
    .await;
    assert_refusal(&bad_variables, 400, "BAD_USER_INPUT", "GET variables");
    let mutation = raw(app.http.get(format!(
        "{url}?query=mutation%7BcreateWorkspace(input:%7BworkspaceId:%22x%22,name:%22x%22%7D)%7Bwallet%7Bplan%7D%7D%7D"
    )))
    .await;
    assert_refusal(&mutation, 405, "BAD_USER_INPUT", "GET mutation");
    assert_eq!(mutation.headers["allow"], "POST");
    let get = raw(app.http.get(format!("{url}?query=%7B__typename%7D"))).await;
    assert_eq!(get.body["data"]["__typename"], "QueryRoot");
}

async fn router_refusals_are_json(app: TestApp) {
    let not_found = raw(app.http.get(format!("{}/nope", app.address))).await;
    assert_refusal(&not_found, 404, "NOT_FOUND", "404");
    let not_allowed = raw(app.http.delete(format!("{}/graphql", app.address))).await;
    assert_refusal(&not_allowed, 405, "BAD_USER_INPUT", "405");
    // Over the limit: 413 as JSON, and the connection is closed.
    let big = format!("{{\"query\": \"{}\"}}", "x".repeat(300 * 1024));
    let too_large = raw(app
        .http
        .post(format!("{}/graphql", app.address))
        .header("content-type", "application/json")
        .body(big))
    .await;
    assert_refusal(&too_large, 413, "BAD_USER_INPUT", "413");
    assert_eq!(too_large.headers["connection"], "close");
    let upgrade_without_protocol = raw(app
        .http
        .get(format!("{}/graphql", app.address))
        .header("connection", "upgrade")
        .header("upgrade", "websocket"))
    .await;
    assert_refusal(
        &upgrade_without_protocol,
        400,
        "BAD_USER_INPUT",
        "WebSocket protocol",
    );
    // The same client goes on (a fresh connection after the close).
    let after = app.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(after.data()["__typename"], "QueryRoot");
}

/// After a 413 on a keep-alive socket, the server closes it rather than
/// reading the rest of the body as a next request: a raw socket sees the
/// answer and then end of stream.
async fn a_413_closes_the_keep_alive_socket(app: TestApp) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let body = "x".repeat(300 * 1024);
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: keep-alive\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    // The server may answer before the body is sent; write what it takes.
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        socket.write_all(body.as_bytes()),
    )
    .await;
    let mut answer = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), socket.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection after a 413")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(answer.contains("\"code\":\"BAD_USER_INPUT\""), "{answer}");
}

/// Reads what the server sends until it closes the socket, for at most
/// `within`; `None` if it is still open then.
async fn read_until_closed(
    socket: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(String::from_utf8_lossy(&answer).into_owned()),
            Ok(Ok(read)) => answer.extend_from_slice(&chunk[..read]),
        }
    }
}

/// Slow and idle connections are closed after HTTP_IDLE_TIMEOUT_SECONDS
/// (1 s here), and a request head over 16 KiB is refused with 431.
async fn slow_idle_and_oversized_connections_are_closed(app: TestApp) {
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn_beside(
        &app,
        Options {
            http_idle_timeout: Some(Duration::from_secs(1)),
            ..Options::default()
        },
    )
    .await;
    let address = app.address.trim_start_matches("http://").to_owned();

    // 20 sockets trickling a header a byte every 200 ms, never finishing.
    let mut trickling = Vec::new();
    for _ in 0..20 {
        let address = address.clone();
        trickling.push(tokio::spawn(async move {
            let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
            socket
                .write_all(b"GET /healthz HTTP/1.1\r\nx-slow: ")
                .await
                .unwrap();
            let (mut reader, mut writer) = socket.into_split();
            let trickle = tokio::spawn(async move {
                while writer.write_all(b"a").await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
            let mut byte = [0u8; 1];
            let closed = tokio::time::timeout(Duration::from_secs(5), async {
                use tokio::io::AsyncReadExt;
                while let Ok(read) = reader.read(&mut byte).await {
                    if read == 0 {
                        break;
                    }
                }
            })
            .await
            .is_ok();
            trickle.abort();
            closed
        }));
    }
    for socket in trickling {
        assert!(
            socket.await.unwrap(),
            "a socket trickling its headers stayed open past 5 s"
        );
    }

    // An idle keep-alive socket, after one answer.
    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    idle.write_all(format!("GET /healthz HTTP/1.1\r\nhost: {address}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let answer = read_until_closed(&mut idle, Duration::from_secs(5))
        .await
        .expect("an idle keep-alive socket is closed within 5 s");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A 500 KB Authorization header.
    let mut large = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}",
        "a".repeat(500 * 1024)
    );
    // The server stops reading past its limit; the rest may not be taken.
    let _ = tokio::time::timeout(Duration::from_secs(2), large.write_all(head.as_bytes())).await;
    let answer = read_until_closed(&mut large, Duration::from_secs(5))
        .await
        .expect("the server closes a connection whose head is too large");
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");

    // Meanwhile, and after, the server answers.
    let after = app.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(after.data()["__typename"], "QueryRoot");
}

both_backends!(
    slow_idle_and_oversized_connections_are_closed,
    answers_take_the_accepted_media_type,
    malformed_requests_get_graphql_errors,
    router_refusals_are_json,
    a_413_closes_the_keep_alive_socket,
);
