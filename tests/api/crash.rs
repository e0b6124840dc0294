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

async fn spend(http: &reqwest::Client, base: &str, token: &str, key: &str) -> Option<String> {
    let answer: serde_json::Value = http
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": SPEND, "variables": { "k": key } }))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    answer["data"]["spendCredit"]["outcome"]
        .as_str()
        .map(str::to_owned)
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
    let base = server.base.clone();
    let spenders: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (base, token, charged) = (base.clone(), token.clone(), charged.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0..KEYS_PER_CLIENT {
                    let key = format!("crash-{client}-{i}");
                    match spend(&http, &base, &token, &key).await {
                        Some(outcome) => {
                            assert_eq!(outcome, "CHARGED", "{key}");
                            charged.lock().unwrap().push(key);
                        }
                        // The server died under this request.
                        None => return,
                    }
                }
            })
        })
        .collect();
    // Kill once some spends are answered and others are in flight.
    for _ in 0..500 {
        if charged.lock().unwrap().len() >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.stop();
    for spender in spenders {
        spender.await.unwrap();
    }
    let answered: Vec<String> = charged.lock().unwrap().clone();
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
            let outcome = spend(&http, &server.base, &token, &key).await.unwrap();
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
