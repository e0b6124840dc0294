//! Goal: no request of any size or shape crashes the server or holds a
//! runtime thread: documents nested 2,000 and 100,000 levels deep (lists,
//! input objects), fragment spreads that double on 25 and 30 levels,
//! mutually recursive fragments, thousands of directives, and usage
//! ranges at chrono's bounds are each refused within a second, and the
//! same process answers afterwards.
//! Method: the real binary on SQLite: this build's under `cargo test`, and
//! the release binary again in `.ci/run`, the stricter of the two (a debug
//! build's parser gives up on deep nesting before its stack does, so only
//! a release build shows that no request overflows a runtime thread). Each
//! document goes over POST, GET and a WebSocket `subscribe`, each with the
//! answer its size calls for (a GraphQL refusal; 413 past the body limit;
//! 414 past the URI limit); after each, `/healthz` and a catalogue query
//! must answer and the process must not have exited. The usage range runs
//! in-process on both backends.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::both_backends;
use crate::helpers::TestApp;
use crate::helpers::server::RealServer;
use protodesk_credits::http::{REQUEST_BODY_MAX, REQUEST_HEAD_MAX, REQUEST_URI_MAX};

/// The longest a refusal may take.
const REFUSAL_WITHIN: Duration = Duration::from_secs(1);

fn nested_lists(levels: usize) -> String {
    format!(
        "{{ plans(x: {}1{}) {{ code }} }}",
        "[".repeat(levels),
        "]".repeat(levels)
    )
}

fn nested_objects(levels: usize) -> String {
    format!(
        "{{ plans(x: {}1{}) {{ code }} }}",
        "{a: ".repeat(levels),
        "}".repeat(levels)
    )
}

/// `{ ...L0 } fragment L0 { ...L1 ...L1 } … fragment L{levels} { __typename }`
fn doubling_fragments(levels: usize) -> String {
    let mut text = String::from("{ ...L0 }");
    for level in 0..levels {
        text += &format!(
            " fragment L{level} on QueryRoot {{ ...L{next} ...L{next} }}",
            next = level + 1
        );
    }
    text + &format!(" fragment L{levels} on QueryRoot {{ __typename }}")
}

fn hostile_documents() -> Vec<(&'static str, String)> {
    vec![
        ("lists, 2,000 levels", nested_lists(2_000)),
        ("lists, 100,000 levels", nested_lists(100_000)),
        ("input objects, 2,000 levels", nested_objects(2_000)),
        // 50,000 levels: as deep as fits under the body limit.
        ("input objects, 50,000 levels", nested_objects(50_000)),
        (
            "a body over the limit: lists, 200,000 levels",
            nested_lists(200_000),
        ),
        ("fragments doubling on 25 levels", doubling_fragments(25)),
        ("fragments doubling on 30 levels", doubling_fragments(30)),
        (
            "fragments spreading each other",
            "{ ...A } fragment A on QueryRoot { ...B __typename } fragment B on QueryRoot { ...A }"
                .to_owned(),
        ),
        (
            "5,000 directives",
            format!("{{ __typename {} }}", "@skip(if: false) ".repeat(5_000)),
        ),
        (
            "selection sets, 2,000 levels",
            format!("{}{}", "{ a ".repeat(2_000), "}".repeat(2_000)),
        ),
    ]
}

/// The server's process is alive and answers.
async fn still_answers(server: &mut RealServer, client: &reqwest::Client, after: &str) {
    assert!(server.is_running(), "the server exited after {after}");
    let health = client
        .get(format!("{}/healthz", server.base))
        .timeout(REFUSAL_WITHIN)
        .send()
        .await
        .unwrap_or_else(|error| panic!("/healthz after {after}: {error}"));
    assert_eq!(health.status(), 200, "/healthz after {after}");
    let answer: Value = client
        .post(format!("{}/graphql", server.base))
        .json(&json!({ "query": "{ actionCosts { action } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["data"]["actionCosts"].as_array().map(Vec::len),
        Some(3),
        "after {after}"
    );
}

/// The first error's code of an answer's body.
fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

/// The answer to a `subscribe` carrying `query`, or `None` when the server
/// ended the connection instead (a message past its size limit).
async fn over_websocket(base: &str, token: &str, query: &str) -> Option<Value> {
    let url = format!("{}/graphql", base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init =
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    socket.send(Message::text(init.to_string())).await.unwrap();
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": query } });
    let mut sent = false;
    loop {
        let message = tokio::time::timeout(REFUSAL_WITHIN * 5, socket.next())
            .await
            .expect("an answer over the WebSocket");
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_)) | Err(_)) | None => return None,
            Some(Ok(_)) => continue,
        };
        let value: Value = serde_json::from_str(&text).unwrap();
        match value["type"].as_str() {
            Some("connection_ack") if !sent => {
                socket.send(Message::text(subscribe.to_string())).await.unwrap();
                sent = true;
            }
            Some("error") => return Some(json!({ "errors": value["payload"] })),
            Some("next") => return Some(value["payload"].clone()),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_no_document_crashes_or_stalls_the_real_server() {
    let mut server = RealServer::start(None).await;
    let client = reqwest::Client::new();
    server.create_acme().await;
    let token = server.mint(&["--role", "agent", "--workspace", "acme"]);

    for (name, document) in hostile_documents() {
        // POST, no token: the refusal needs none.
        let started = Instant::now();
        let response = client
            .post(format!("{}/graphql", server.base))
            .json(&json!({ "query": document }))
            .send()
            .await
            .unwrap_or_else(|error| panic!("POST {name}: {error}"));
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(
            started.elapsed() < REFUSAL_WITHIN,
            "POST {name} took {:?}",
            started.elapsed()
        );
        // Past the body limit the HTTP layer refuses (413) before GraphQL.
        let over_body_limit = document.len() > REQUEST_BODY_MAX;
        assert_eq!(status == 413, over_body_limit, "POST {name}: {status} {text}");
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("POST {name}: {status} {text}"));
        assert_eq!(code(&body), "BAD_USER_INPUT", "POST {name}: {body}");
        still_answers(&mut server, &client, &format!("POST {name}")).await;

        // GET: the answer depends on the URI's length once encoded: a
        // GraphQL refusal within the URI limit; past it, 414 while the head
        // fits hyper's buffer; past that, hyper's own refusal (431, or the
        // connection closed, as the head's bytes arrive).
        let url =
            reqwest::Url::parse_with_params(&format!("{}/graphql", server.base), &[("query", &document)])
                .unwrap();
        let uri_length = url.path().len() + 1 + url.query().map_or(0, str::len);
        let started = Instant::now();
        let response = client.get(url).send().await;
        assert!(
            started.elapsed() < REFUSAL_WITHIN,
            "GET {name} took {:?}",
            started.elapsed()
        );
        if uri_length <= REQUEST_URI_MAX {
            let response = response.unwrap_or_else(|error| panic!("GET {name}: {error}"));
            let body: Value = response.json().await.unwrap();
            assert_eq!(code(&body), "BAD_USER_INPUT", "GET {name}: {body}");
        } else if uri_length + 1024 < REQUEST_HEAD_MAX {
            let response = response.unwrap_or_else(|error| panic!("GET {name}: {error}"));
            assert_eq!(response.status(), 414, "GET {name} ({uri_length} bytes)");
            let body: Value = response.json().await.unwrap();
            assert_eq!(code(&body), "BAD_USER_INPUT", "GET {name}: {body}");
        } else if let Ok(response) = response {
            assert!(
                [414, 431].contains(&response.status().as_u16()),
                "GET {name} ({uri_length} bytes): {}",
                response.status()
            );
        }
        still_answers(&mut server, &client, &format!("GET {name}")).await;

        let started = Instant::now();
        let answer = over_websocket(&server.base, &token, &document).await;
        assert!(
            started.elapsed() < REFUSAL_WITHIN,
            "WebSocket {name} took {:?}",
            started.elapsed()
        );
        match answer {
            Some(answer) => assert_eq!(code(&answer), "BAD_USER_INPUT", "WebSocket {name}: {answer}"),
            None => assert!(
                document.len() > REQUEST_BODY_MAX,
                "WebSocket {name}: connection ended"
            ),
        }
        still_answers(&mut server, &client, &format!("WebSocket {name}")).await;
    }
}

/// Usage over ranges at chrono's bounds (where bucket arithmetic used to
/// panic) is refused, for every bucket size, and in a transaction filter.
async fn time_inputs_at_chronos_bounds_are_refused(app: TestApp) {
    app.create_workspace("ws-far").await;
    let agent = app.token("agent", Some("ws-far"));
    for bucket in ["DAY", "WEEK", "MONTH"] {
        for (from, to) in [
            ("+262142-12-30T00:00:00Z", "+262142-12-31T23:59:59Z"),
            ("-262143-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
            ("9999-12-31T00:00:00Z", "+10000-01-01T00:00:00Z"),
        ] {
            let answer = app
                .gql(
                    Some(&agent),
                    "query($from: DateTime!, $to: DateTime!, $bucket: UsageBucketSize!) { wallet { usage(from: $from, to: $to, bucket: $bucket) { total } } }",
                    json!({ "from": from, "to": to, "bucket": bucket }),
                )
                .await;
            assert_eq!(
                answer.code(),
                "BAD_USER_INPUT",
                "{bucket} {from}..{to}: {}",
                answer.body
            );
        }
        let last_day = app
            .gql(
                Some(&agent),
                "query($bucket: UsageBucketSize!) { wallet { usage(from: \"9999-12-31T00:00:00Z\", to: \"9999-12-31T23:59:59Z\", bucket: $bucket) { total } } }",
                json!({ "bucket": bucket }),
            )
            .await;
        assert_eq!(last_day.data()["wallet"]["usage"][0]["total"], 0);
    }
    let filtered = app
        .gql(
            Some(&agent),
            "{ wallet { transactions(filter: {from: \"+262142-12-30T00:00:00Z\"}) { edges { node { id } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(filtered.code(), "BAD_USER_INPUT", "{}", filtered.body);
    let costs = app.gql(None, "{ actionCosts { action } }", json!({})).await;
    assert_eq!(costs.data()["actionCosts"].as_array().unwrap().len(), 3);
}

both_backends!(time_inputs_at_chronos_bounds_are_refused);
