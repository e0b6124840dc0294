//! `kill -9` with holds in flight: after the restart every hold is either
//! stored (and then captured or released once) or was never answered
//! HELD; nothing lost, nothing doubled. The real binary, both backends.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::server::RealServer;
use crate::helpers::{drop_schema, postgres_database};

const CLIENTS: usize = 16;
const HOLDS_PER_CLIENT: usize = 6;

/// A request's answer, or `None` when the connection failed.
async fn send(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> Option<Value> {
    let response = http
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .ok()?;
    response.json::<Value>().await.ok()
}

const RESERVE: &str = "mutation($k: String!) { reserveCredits(input: {action: AUTO_RESOLVE, credits: 1, holdKey: $k, ttlSeconds: 600}) { outcome hold { id } } }";
const CAPTURE: &str =
    "mutation($h: ID!) { captureHold(input: {holdId: $h}) { replayed transaction { id } } }";
const RELEASE: &str =
    "mutation($h: ID!) { releaseHold(input: {holdId: $h, reason: \"never ran\"}) { hold { state } } }";

/// Reserves `key`, then captures (even clients) or releases (odd) it.
/// Records what was answered; false once the server stops answering.
async fn hold_then_end(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    client: usize,
    key: &str,
    held: &Mutex<HashMap<String, String>>,
) -> bool {
    let Some(answer) = send(http, base, token, RESERVE, json!({ "k": key })).await else {
        return false;
    };
    let payload = &answer["data"]["reserveCredits"];
    assert!(
        payload["outcome"] == "HELD" || payload["outcome"] == "DUPLICATE",
        "{key}: {answer}"
    );
    let id = payload["hold"]["id"].as_str().unwrap().to_owned();
    held.lock().unwrap().insert(key.to_owned(), id.clone());
    let (query, field) = if client.is_multiple_of(2) {
        (CAPTURE, "captureHold")
    } else {
        (RELEASE, "releaseHold")
    };
    let Some(answer) = send(http, base, token, query, json!({ "h": id })).await else {
        return false;
    };
    assert!(answer["data"][field].is_object(), "{key}: {answer}");
    true
}

async fn a_kill_mid_holds(database: Option<(String, String)>) {
    let mut server = RealServer::start(database.as_ref()).await;
    assert_eq!(server.create_acme().await, 300);
    let token = server.mint(&["--role", "service", "--workspace", "acme"]);
    let held: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (base, token, held) = (server.base.clone(), token.clone(), held.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0..HOLDS_PER_CLIENT {
                    let key = format!("hold-{client}-{i}");
                    if !hold_then_end(&http, &base, &token, client, &key, &held).await {
                        return;
                    }
                }
            })
        })
        .collect();
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while held.lock().unwrap().len() < 30 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "30 holds were not answered within 60 s");
    server.stop();
    for client in clients {
        client.await.unwrap();
    }
    let answered = held.lock().unwrap().clone();
    assert!(answered.len() < CLIENTS * HOLDS_PER_CLIENT, "killed mid-load");

    server.spawn().await;
    server.verify();
    // Every hold answered HELD is stored under its key, with its id.
    let listed = server
        .post(
            &token,
            "{ wallet { holds(first: 100) { nodes { id key state } } } }",
        )
        .await;
    let stored: HashMap<String, (String, String)> = listed["data"]["wallet"]["holds"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hold| {
            (
                hold["key"].as_str().unwrap().to_owned(),
                (
                    hold["id"].as_str().unwrap().to_owned(),
                    hold["state"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    for (key, id) in &answered {
        assert_eq!(
            stored.get(key).map(|(stored, _)| stored),
            Some(id),
            "{key} was answered HELD"
        );
    }
    // Clients finish what got no answer: every key ends with one hold,
    // captured or released once.
    let http = reqwest::Client::new();
    for client in 0..CLIENTS {
        for i in 0..HOLDS_PER_CLIENT {
            let key = format!("hold-{client}-{i}");
            let (_, state) = stored.get(&key).cloned().unwrap_or_default();
            if state == "CAPTURED" || state == "RELEASED" {
                continue;
            }
            let done = Mutex::new(HashMap::new());
            assert!(hold_then_end(&http, &server.base, &token, client, &key, &done).await);
        }
    }
    let listed = server
        .post(
            &token,
            "{ wallet { balance { total held } holds(first: 100) { nodes { key state } } } }",
        )
        .await;
    let wallet = &listed["data"]["wallet"];
    let nodes = wallet["holds"]["nodes"].as_array().unwrap();
    let keys: HashSet<&str> = nodes.iter().map(|hold| hold["key"].as_str().unwrap()).collect();
    assert_eq!(nodes.len(), CLIENTS * HOLDS_PER_CLIENT, "one hold per key");
    assert_eq!(keys.len(), nodes.len());
    let captured = nodes.iter().filter(|hold| hold["state"] == "CAPTURED").count();
    assert_eq!(captured, CLIENTS * HOLDS_PER_CLIENT / 2);
    assert_eq!(wallet["balance"]["held"], 0);
    assert_eq!(wallet["balance"]["total"], 300 - captured as i64);
    server.verify();
    server.stop();
    if let Some((_, schema)) = &database {
        drop_schema(schema).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_kill_9_with_holds_in_flight_loses_and_doubles_nothing() {
    a_kill_mid_holds(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_kill_9_with_holds_in_flight_loses_and_doubles_nothing() {
    a_kill_mid_holds(Some(postgres_database("hold_crash"))).await;
}
