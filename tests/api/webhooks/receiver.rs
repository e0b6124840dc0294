//! A webhook receiver for the tests: a real HTTP server on a free port that
//! records every request and answers as scripted, and its own check of the
//! Standard Webhooks signature (written from the specification, not from
//! the service's code).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// This status at once.
    Status(u16),
    /// Nothing for this long, then 200 (a timeout for the sender).
    Hang(Duration),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Shared {
    received: Vec<Received>,
    script: VecDeque<Reply>,
}

/// A running receiver; stops when dropped.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    _stop: Arc<tokio::sync::oneshot::Sender<()>>,
}

async fn receive(State(shared): State<Arc<Mutex<Shared>>>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let reply = {
        let mut shared = shared.lock().unwrap();
        shared.received.push(Received {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            body,
            at: Instant::now(),
        });
        shared.script.pop_front().unwrap_or(Reply::Status(200))
    };
    match reply {
        Reply::Status(status) => StatusCode::from_u16(status).unwrap(),
        Reply::Hang(pause) => {
            tokio::time::sleep(pause).await;
            StatusCode::OK
        }
    }
}

impl Receiver {
    /// Starts on a free port of 127.0.0.1; answers 200 unless scripted.
    pub async fn start() -> Receiver {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let router = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Receiver {
            url,
            shared,
            _stop: Arc::new(stop),
        }
    }

    /// The next requests' answers, in order.
    pub fn script(&self, replies: &[Reply]) {
        self.shared.lock().unwrap().script.extend(replies.iter().copied());
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    /// Waits (up to `within`) until `done` holds for what was received.
    pub async fn wait_for(&self, within: Duration, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received();
            if done(&received) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver's condition did not hold within {within:?}; received: {:#?}",
                received.iter().map(|r| (&r.id, r.json())).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Whether `received` carries a valid signature by `secret`: `whsec_` and
/// base64 key; HMAC-SHA256 over `id.timestamp.body`; any `v1,` entry of the
/// space-separated header may match; the timestamp within five minutes.
pub fn signature_is_valid(secret: &str, received: &Received) -> bool {
    let Some(encoded) = secret.strip_prefix("whsec_") else {
        return false;
    };
    let Ok(key) = STANDARD.decode(encoded) else {
        return false;
    };
    let Ok(timestamp) = received.timestamp.parse::<i64>() else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - timestamp).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", received.id, received.timestamp, received.body).as_bytes());
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    received
        .signature
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .any(|candidate| candidate == expected)
}
