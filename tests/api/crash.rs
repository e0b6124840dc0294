//! Goal: a crash loses nothing that was answered and half-writes nothing.
//! Method: the real server binary under 32 concurrent spenders is killed
//! with SIGKILL mid-load and started again on the same database. Every
//! spend answered CHARGED before the kill is in the ledger; `verify`
//! finds every invariant intact; retrying every key that got no answer
//! gives CHARGED or DUPLICATE, and in the end each key is exactly one
//! SPEND row. On SQLite and PostgreSQL.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protodesk_credits::config::DatabaseConfig;
use protodesk_credits::store;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use crate::helpers::server::RealServer;
use crate::helpers::{drop_schema, postgres_database};

const SPEND: &str =
    "mutation($k: String!) { spendCredit(input: {action: TRIAGE, idempotencyKey: $k}) { outcome } }";
const CLIENTS: usize = 32;
const KEYS_PER_CLIENT: usize = 8;

/// What became of one spend request.
enum Sent {
    /// The server answered with this outcome.
    Outcome(String),
    /// The server answered with an error (under load, this is a failure).
    Error(serde_json::Value),
    /// No answer: the connection failed (the server was killed).
    NoAnswer,
}

async fn spend(http: &reqwest::Client, base: &str, token: &str, key: &str) -> Sent {
    let response = http
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": SPEND, "variables": { "k": key } }))
        .send()
        .await;
    let Ok(response) = response else {
        return Sent::NoAnswer;
    };
    let Ok(answer) = response.json::<serde_json::Value>().await else {
        return Sent::NoAnswer;
    };
    match answer["data"]["spendCredit"]["outcome"].as_str() {
        Some(outcome) => Sent::Outcome(outcome.to_owned()),
        None => Sent::Error(answer),
    }
}

async fn spend_keys(db: &impl ConnectionTrait) -> Vec<String> {
    db.query_all_raw(Statement::from_string(
        db.get_database_backend(),
        "SELECT idempotency_key FROM ledger_entry WHERE kind = 'SPEND' ORDER BY id",
    ))
    .await
    .unwrap()
    .iter()
    .map(|row| row.try_get::<String>("", "idempotency_key").unwrap())
    .collect()
}

async fn crash_mid_load(database: Option<(String, String)>) {
    let mut server = RealServer::start(database.as_ref()).await;
    assert_eq!(server.create_acme().await, 300);
    let token = server.mint(&["--role", "service", "--workspace", "acme"]);
    let charged: Arc<Mutex<Vec<String>>> = Arc::default();
    let errors: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let base = server.base.clone();
    let spenders: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (base, token) = (base.clone(), token.clone());
            let (charged, errors) = (charged.clone(), errors.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0..KEYS_PER_CLIENT {
                    let key = format!("crash-{client}-{i}");
                    match spend(&http, &base, &token, &key).await {
                        Sent::Outcome(outcome) => {
                            assert_eq!(outcome, "CHARGED", "{key}");
                            charged.lock().unwrap().push(key);
                        }
                        // An error answer is not a crash: it is counted, and
                        // the client goes on.
                        Sent::Error(answer) => errors.lock().unwrap().push(answer),
                        // The server died under this request.
                        Sent::NoAnswer => return,
                    }
                }
            })
        })
        .collect();
    // Kill once 40 spends are answered (others are in flight then): wait
    // for that, however long the machine takes.
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while charged.lock().unwrap().len() < 40 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "40 spends were not answered within 60 s");
    server.stop();
    for spender in spenders {
        spender.await.unwrap();
    }
    let answered: Vec<String> = charged.lock().unwrap().clone();
    assert_eq!(
        *errors.lock().unwrap(),
        Vec::<serde_json::Value>::new(),
        "error answers under load"
    );
    assert!(
        answered.len() >= 40 && answered.len() < CLIENTS * KEYS_PER_CLIENT,
        "killed mid-load ({} answered)",
        answered.len()
    );

    server.spawn().await;
    let config = match &database {
        None => DatabaseConfig {
            url: format!(
                "sqlite://{}?mode=rwc",
                server.directory.path().join("protodesk-credits.db").display()
            ),
            schema: None,
            max_connections: 2,
            ..DatabaseConfig::default()
        },
        Some((url, schema)) => DatabaseConfig {
            url: url.clone(),
            schema: Some(schema.clone()),
            max_connections: 2,
            ..DatabaseConfig::default()
        },
    };
    let db = store::connect(&config).await.unwrap();
    let stored: HashSet<String> = spend_keys(&db).await.into_iter().collect();
    for key in &answered {
        assert!(
            stored.contains(key),
            "{key} was answered CHARGED but is not in the ledger"
        );
    }
    let audit = store::verify::audit(&db).await.unwrap();
    assert!(audit.violations.is_empty(), "{:?}", audit.violations);

    // Clients retry what got no answer: each key ends as one SPEND row.
    let http = reqwest::Client::new();
    let mut retried = 0;
    for client in 0..CLIENTS {
        for i in 0..KEYS_PER_CLIENT {
            let key = format!("crash-{client}-{i}");
            if answered.contains(&key) {
                continue;
            }
            let Sent::Outcome(outcome) = spend(&http, &server.base, &token, &key).await else {
                panic!("{key}: no outcome after the restart");
            };
            let expected = if stored.contains(&key) {
                "DUPLICATE"
            } else {
                "CHARGED"
            };
            assert_eq!(outcome, expected, "{key}");
            retried += 1;
        }
    }
    assert!(retried > 0);
    let keys = spend_keys(&db).await;
    let distinct: HashSet<&String> = keys.iter().collect();
    assert_eq!(keys.len(), CLIENTS * KEYS_PER_CLIENT, "one row per key");
    assert_eq!(distinct.len(), keys.len(), "no key charged twice");
    assert!(store::verify::audit(&db).await.unwrap().violations.is_empty());
    server.stop();
    if let Some((_, schema)) = &database {
        drop_schema(schema).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_kill_9_mid_load_loses_and_half_writes_nothing() {
    crash_mid_load(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_kill_9_mid_load_loses_and_half_writes_nothing() {
    crash_mid_load(Some(postgres_database("crash"))).await;
}
