//! Goal: when PostgreSQL goes away under load, requests fail with
//! SERVICE_UNAVAILABLE (never an internal error), `/readyz` says not
//! ready, and when it comes back the service recovers by itself, with no
//! charge lost or doubled.
//! Method: the app reaches PostgreSQL through a TCP proxy in the test.
//! Under 8 concurrent spenders the proxy cuts every connection and refuses
//! new ones for a while, then lets them through again. Each spender retries
//! a key until it is answered CHARGED or DUPLICATE; in the end every key
//! is exactly one SPEND row and the invariant holds.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::helpers::{Backend, Options, TestApp, postgres_url};

/// Waits (up to 30 s) until `condition` holds; panics naming `what`.
async fn wait_until(what: &str, condition: impl AsyncFn() -> bool) {
    for _ in 0..3_000 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("waited 30 s for {what}");
}

/// A TCP proxy to PostgreSQL that can cut every connection.
struct Proxy {
    /// The `TEST_DATABASE_URL` with the proxy in place of the server.
    url: String,
    open: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// A proxy to the PostgreSQL server of `TEST_DATABASE_URL`.
    async fn start() -> Proxy {
        let mut url = reqwest::Url::parse(&postgres_url()).expect("TEST_DATABASE_URL is a URL");
        let target = format!(
            "{}:{}",
            url.host_str().expect("TEST_DATABASE_URL names a host"),
            url.port().unwrap_or(5432)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(port)).unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (accept_open, accept_links) = (open.clone(), links.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if !accept_open.load(Ordering::SeqCst) {
                    // Refused: closed at once, like a database that is down.
                    continue;
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                accept_links.lock().await.push(link);
            }
        });
        Proxy {
            url: url.to_string(),
            open,
            links,
            accept,
        }
    }

    /// Drops every connection and refuses new ones.
    async fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for link in self.links.lock().await.drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn ready_status(app: &TestApp) -> u16 {
    app.http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits (up to 15 s) until `/readyz` answers `status`.
async fn wait_ready_status(app: &TestApp, status: u16) {
    for _ in 0..150 {
        if ready_status(app).await == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/readyz never answered {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_unavailable_then_recovers_without_lost_or_doubled_charges() {
    let proxy = Proxy::start().await;
    let app = TestApp::spawn_with(
        Backend::Postgres,
        Options {
            database_url: Some(proxy.url.clone()),
            acquire_timeout: Some(Duration::from_millis(500)),
            ..Options::default()
        },
    )
    .await;
    app.create_workspace("ws-outage").await;
    let service = app.token("service", Some("ws-outage"));
    let stop = Arc::new(AtomicBool::new(false));
    let codes: Arc<Mutex<Vec<String>>> = Arc::default();
    let answered = Arc::new(AtomicUsize::new(0));
    let spenders: Vec<_> = (0..8)
        .map(|client| {
            let (app, service, stop, codes) = (app.clone(), service.clone(), stop.clone(), codes.clone());
            let answered = answered.clone();
            tokio::spawn(async move {
                let mut keys = 0;
                while !stop.load(Ordering::SeqCst) && keys < 30 {
                    let key = format!("outage-{client}-{keys}");
                    // Retry this key until it has a final answer.
                    loop {
                        let answer = app.spend(&service, "TRIAGE", &key, None).await;
                        if answer.body["errors"].is_array() {
                            codes.lock().await.push(answer.code());
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        let outcome = answer.body["data"]["spendCredit"]["outcome"].as_str().unwrap();
                        assert!(matches!(outcome, "CHARGED" | "DUPLICATE"), "{key}: {outcome}");
                        answered.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    keys += 1;
                }
                keys
            })
        })
        .collect();

    // Cut while the spenders are busy: some spends answered already.
    wait_until("8 spends answered before the cut", async || {
        answered.load(Ordering::SeqCst) >= 8
    })
    .await;
    proxy.cut().await;
    wait_ready_status(&app, 503).await;
    // Every spender meets the outage at least about once.
    wait_until("8 refusals during the outage", async || {
        codes.lock().await.len() >= 8
    })
    .await;
    let during: Vec<String> = codes.lock().await.clone();
    let before_restore = answered.load(Ordering::SeqCst);
    proxy.restore();
    wait_ready_status(&app, 200).await;
    wait_until("8 spends answered after the restore", async || {
        answered.load(Ordering::SeqCst) >= before_restore + 8
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut keys = 0;
    for spender in spenders {
        keys += spender.await.unwrap();
    }

    assert!(!during.is_empty(), "requests failed during the outage");
    let all: Vec<String> = codes.lock().await.clone();
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(
        distinct,
        HashSet::from([&"SERVICE_UNAVAILABLE".to_owned()]),
        "every failure is SERVICE_UNAVAILABLE"
    );
    let rows = app.ledger_rows("ws-outage").await;
    let spends = rows.iter().filter(|(kind, _)| kind == "SPEND").count();
    assert_eq!(spends, keys, "each key answered is exactly one SPEND row");
    let answer = app
        .gql(Some(&service), "{ wallet { balance { total } } }", json!({}))
        .await;
    assert_eq!(answer.data()["wallet"]["balance"]["total"], 300 - keys as i64);
    app.verify_ledger().await;
    app.teardown().await;
}
