//! Goal: the graphql-transport-ws rules hold on the server's own
//! protocol loop, and each subscriber's document shapes its events
//! although renderings are shared. Method: raw protocol messages over a
//! real socket; documents with aliases, fragments, directives and
//! variables next to the plain one.
use std::collections::HashMap;
use std::time::Duration as StdDuration;

use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::*;
use crate::helpers::ws::WsClient;
use crate::helpers::{Backend, Options};

fn subscribe(id: &str, query: &str, variables: Value) -> Value {
    json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } })
}

/// Messages until each of `ids` has `count` `next` payloads; the rest
/// (complete, error) are kept too, in order, per id.
async fn gather(client: &mut WsClient, ids: &[&str], count: usize) -> HashMap<String, Vec<Value>> {
    let mut seen: HashMap<String, Vec<Value>> = HashMap::new();
    while ids.iter().any(|id| {
        seen.get(*id).map_or(0, |messages| {
            messages.iter().filter(|m| m["type"] == "next").count()
        }) < count
    }) {
        let message = client.next_message().await;
        let id = message["id"].as_str().unwrap_or_default().to_owned();
        seen.entry(id).or_default().push(message);
    }
    seen
}

async fn misbehaving_clients_are_closed_with_the_protocols_codes(app: TestApp) {
    app.create_workspace("ws-proto").await;
    let token = app.token("agent", Some("ws-proto"));

    let mut early = app.ws_open().await;
    early
        .send(subscribe(
            "1",
            "subscription { balanceChanged { kind } }",
            json!({}),
        ))
        .await;
    let early = early.closed().await;
    let mut garbled = Vec::new();
    for text in ["not json", r#"{"type":"unknown"}"#, r#"{"type":"subscribe"}"#] {
        let mut client = app.ws(&token).await;
        client.send_text(text).await;
        garbled.push(client.closed().await.0);
    }
    let mut twice = app.ws(&token).await;
    twice
        .send(json!({ "type": "connection_init", "payload": { "token": token } }))
        .await;
    let twice = twice.closed().await;
    let mut duplicate = app.ws(&token).await;
    duplicate.subscribe_balance("dup", None, None).await;
    let first = duplicate.next_event().await;
    duplicate.subscribe_balance("dup", None, None).await;
    let duplicate = duplicate.closed().await;

    let url = format!("{}/graphql", app.address.replacen("http", "ws", 1));
    let mut legacy = url.as_str().into_client_request().unwrap();
    legacy
        .headers_mut()
        .insert("sec-websocket-protocol", "graphql-ws".parse().unwrap());
    for request in [url.clone().into_client_request().unwrap(), legacy] {
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 400)
            }
            other => panic!(
                "a WebSocket without graphql-transport-ws was not refused: {:?}",
                other.map(|_| ())
            ),
        }
    }

    assert_eq!(early, (4401, "Unauthorized".into()));
    assert_eq!(garbled, [4400, 4400, 4400]);
    assert_eq!(twice.0, 4429, "{twice:?}");
    assert_eq!(first["kind"], "SNAPSHOT");
    assert_eq!(duplicate, (4409, "Subscriber for dup already exists".into()));
}

async fn each_document_shapes_its_events_and_complete_stops_them(app: TestApp) {
    app.set_trial_credits(10).await;
    app.create_workspace("ws-shape").await;
    let agent = app.token("agent", Some("ws-shape"));
    let service = app.token("service", Some("ws-shape"));
    let shaped = "subscription Watch($withBalance: Boolean!) {
        live: balanceChanged { ...Parts left: balance @include(if: $withBalance) { total } } }
        fragment Parts on BalanceChange { what: kind sequence __typename }
        query Other { plans { code } }";
    let mut client = app.ws(&agent).await;
    let mut with_balance = subscribe("with", shaped, json!({ "withBalance": true }));
    with_balance["payload"]["operationName"] = json!("Watch");
    client.send(with_balance).await;
    let mut without = subscribe("without", shaped, json!({ "withBalance": false }));
    without["payload"]["operationName"] = json!("Watch");
    client.send(without).await;
    client.subscribe_balance("plain", None, None).await;
    let snapshots = gather(&mut client, &["with", "without", "plain"], 1).await;
    app.spend_ok(&service, "TRIAGE", "shape-1").await;
    let spent = gather(&mut client, &["with", "without", "plain"], 1).await;
    client.send(json!({ "id": "with", "type": "complete" })).await;
    client.send(json!({ "id": "without", "type": "complete" })).await;
    // Messages are handled in order: once the pong is here, the
    // completes have been.
    client.send(json!({ "type": "ping" })).await;
    while client.next_raw().await["type"] != "pong" {}
    app.spend_ok(&service, "TRIAGE", "shape-2").await;
    let after_complete = client.next_message().await;

    assert_eq!(
        snapshots["with"][0]["payload"],
        json!({ "data": { "live": { "what": "SNAPSHOT", "sequence": 1,
            "__typename": "BalanceChange", "left": { "total": 10 } } } })
    );
    assert_eq!(
        spent["with"][0]["payload"],
        json!({ "data": { "live": { "what": "SPEND", "sequence": 2,
            "__typename": "BalanceChange", "left": { "total": 9 } } } })
    );
    assert_eq!(
        spent["without"][0]["payload"],
        json!({ "data": { "live": { "what": "SPEND", "sequence": 2, "__typename": "BalanceChange" } } })
    );
    assert_eq!(
        spent["plain"][0]["payload"]["data"]["balanceChanged"]["delta"],
        -1
    );
    assert_eq!(
        (
            after_complete["id"].clone(),
            after_complete["payload"]["data"]["balanceChanged"]["sequence"].clone()
        ),
        (json!("plain"), json!(3)),
        "completed subscriptions send nothing more: {after_complete}"
    );
}

async fn queries_and_refused_documents_over_the_socket(app: TestApp) {
    app.create_workspace("ws-docs").await;
    let mut client = app.ws(&app.token("agent", Some("ws-docs"))).await;
    // One operation to its end: its first `next` and the message after it.
    let mut run = async |id: &str, query: &str| {
        client.send(subscribe(id, query, json!({}))).await;
        let first = gather(&mut client, &[id], 1).await;
        (first, client.next_message().await)
    };
    let (query, query_done) = run("q", "{ wallet { balance { total } } }").await;
    let (bad, bad_done) = run("bad", "subscription { balanceChanged { nope } }").await;
    let (two, two_done) = run(
        "two",
        "subscription { a: balanceChanged { kind } b: balanceChanged { kind } }",
    )
    .await;

    assert_eq!(
        query["q"][0]["payload"],
        json!({ "data": { "wallet": { "balance": { "total": 300 } } } })
    );
    assert_eq!(query_done, json!({ "id": "q", "type": "complete" }));
    assert_eq!(
        bad["bad"][0]["payload"]["errors"][0]["extensions"]["code"],
        "BAD_USER_INPUT"
    );
    assert_eq!(bad_done, json!({ "id": "bad", "type": "complete" }));
    let errors = two["two"][0]["payload"]["errors"].to_string();
    assert!(errors.contains("exactly one root field"), "{errors}");
    assert_eq!(two_done, json!({ "id": "two", "type": "complete" }));
}

/// 200 seeded random messages (`SEED=` replays), each on an acknowledged
/// connection: every one is answered by a protocol message or a close
/// with a 44xx code, never a dropped socket; the server keeps serving.
async fn random_messages_never_break_the_server(app: TestApp) {
    app.create_workspace("ws-fuzz").await;
    let token = app.token("agent", Some("ws-fuzz"));
    let seed = crate::helpers::seed(0x5eed_0004);
    println!("SEED={seed}");
    let mut random = crate::helpers::Random(seed);
    let types = [
        "connection_init",
        "ping",
        "pong",
        "subscribe",
        "complete",
        "next",
        "error",
        "",
        "PING",
    ];
    let queries = [
        json!("subscription { balanceChanged { kind sequence } }"),
        json!("subscription { balanceChanged(afterSequence: -5) { kind } }"),
        json!("subscription { balanceChanged(workspaceId: \"\") { kind } }"),
        json!("{ wallet { balance { total } } }"),
        json!("mutation { spendCredit(input: {action: TRIAGE, idempotencyKey: \"k\"}) { outcome } }"),
        json!("subscription {"),
        json!(42),
        json!(null),
    ];
    let ids = [
        json!("a"),
        json!(""),
        json!(7),
        json!(null),
        json!("x".repeat(200)),
    ];
    let mut outcomes = Vec::new();
    for _ in 0..200 {
        let mut message = json!({ "type": types[random.below(types.len())] });
        if random.below(2) == 0 {
            message["id"] = ids[random.below(ids.len())].clone();
        }
        match random.below(4) {
            0 => message["payload"] = json!({ "query": queries[random.below(queries.len())] }),
            1 => {
                message["payload"] =
                    json!({ "query": queries[random.below(queries.len())], "variables": [1] })
            }
            2 => message["payload"] = json!("text"),
            _ => {}
        }
        let mut client = app.ws(&token).await;
        client.send(message.clone()).await;
        // The answer: a message, or a close; then the server must still
        // answer a ping on the same socket unless it closed it.
        client.send(json!({ "type": "ping" })).await;
        let outcome = loop {
            match tokio::time::timeout(StdDuration::from_secs(10), client.next_frame()).await {
                Ok(Some(Ok(frame))) if frame["type"] == "pong" => break "pong".to_owned(),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(code))) => break format!("close {code}"),
                Ok(None) => break "dropped".to_owned(),
                Err(_) => break "silent".to_owned(),
            }
        };
        assert!(
            outcome == "pong" || outcome.starts_with("close 44"),
            "{message} -> {outcome} (SEED={seed})"
        );
        outcomes.push(outcome);
        client.close().await;
    }
    let mut client = app.ws(&token).await;
    client.subscribe_balance("after", None, None).await;

    assert!(outcomes.iter().any(|o| o == "pong") && outcomes.iter().any(|o| o != "pong"));
    assert_eq!(client.next_event().await["kind"], "SNAPSHOT");
}

both_backends!(
    random_messages_never_break_the_server,
    misbehaving_clients_are_closed_with_the_protocols_codes,
    each_document_shapes_its_events_and_complete_stops_them,
    queries_and_refused_documents_over_the_socket,
);

/// Keep-alive at 1 s: a client that answers pings stays; one that does
/// not, or never sends connection_init, is closed with 4408.
async fn keepalive(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            ws_keepalive: Some(StdDuration::from_secs(1)),
            ..Options::default()
        },
    )
    .await;
    app.create_workspace("ws-alive").await;
    let agent = app.token("agent", Some("ws-alive"));
    let service = app.token("service", Some("ws-alive"));
    let mut answering = app.ws(&agent).await;
    answering.subscribe_balance("1", None, None).await;
    answering.next_event().await;
    let mut silent = app.ws(&agent).await;
    let mut mute = app.ws_open().await;

    // next_message answers pings; nothing else comes for 3.5 s.
    let quiet = tokio::time::timeout(StdDuration::from_millis(3500), answering.next_message()).await;
    app.spend_ok(&service, "TRIAGE", "alive-1").await;
    let event = answering.next_event().await;

    assert!(quiet.is_err(), "only pings in between: {quiet:?}");
    assert_eq!(event["sequence"], 2);
    let (code, reason) = silent.closed().await;
    assert_eq!(code, 4408, "{reason}");
    assert!(reason.contains("keep-alive"), "{reason}");
    assert_eq!(
        mute.closed().await,
        (4408, "Connection initialisation timeout".into())
    );
    app.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keepalive_closes_silent_connections() {
    keepalive(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keepalive_closes_silent_connections() {
    keepalive(Backend::Postgres).await;
}
