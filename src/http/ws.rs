//! graphql-transport-ws at `/graphql`: one task per connection, no queue.
//!
//! The protocol (github.com/enisdenjo/graphql-ws, PROTOCOL.md) is served
//! here rather than by async-graphql's `GraphQLWebSocket`, whose executor
//! stays alive for every subscription; subscriptions run through
//! [`Live`] instead. What a connection holds while idle: the socket, its
//! token, and per subscription a balance stream's state.
//!
//! - `connection_init` must come first, within [`WS_INIT_TIMEOUT`], with
//!   the token as `Authorization` (`Bearer <jwt>` or the bare token) or
//!   `token`; a refused one closes the socket with 4403 and a reason that
//!   starts with the error code (UNAUTHENTICATED, LIMIT_EXCEEDED).
//! - The token is verified again at every `subscribe` (an expired token
//!   gets an `error` message with UNAUTHENTICATED), and the connection is
//!   closed with 4403 when the token expires (its `exp` plus the leeway):
//!   a subscription never outlives the token that opened it.
//! - At most [`super::WS_CONNECTIONS_PER_SUBJECT_MAX`] connections per
//!   subject and workspace, however many tokens were minted for them.
//! - `ping` is answered with `pong`; the server pings every keep-alive
//!   interval and closes (4408) a connection that has sent nothing since
//!   the previous ping.
//! - A message that is not the protocol's closes the socket with 4400, a
//!   `subscribe` before the ack with 4401, a reused live id with 4409, a
//!   second `connection_init` with 4429.
//! - Sending waits at most [`WS_SEND_TIMEOUT`] for a client that does not
//!   read; while it waits, its subscriptions are not polled (they catch up
//!   from the ledger afterwards), so nothing queues up on the server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::Data;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_stream::StreamMap;

use super::{authenticate_token, bearer_token};
use crate::auth::TokenVerifier;
use crate::error::AppError;
use crate::graphql::{
    Authentication, Live, SUBSCRIPTIONS_PER_CONNECTION_MAX, SubscriptionSlots, TrustedDocuments,
};

/// The only WebSocket subprotocol served.
pub const WS_PROTOCOL: &str = "graphql-transport-ws";
/// How long a new connection has to send `connection_init`.
pub const WS_INIT_TIMEOUT: Duration = Duration::from_secs(10);
pub use crate::config::WS_KEEPALIVE_DEFAULT;
/// Longest wait for a client to take one message.
pub const WS_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest operation id accepted.
pub const WS_ID_MAX_BYTES: usize = 128;
/// Most operations running at once on one connection (live subscriptions
/// are limited further, to [`SUBSCRIPTIONS_PER_CONNECTION_MAX`]).
pub const WS_OPERATIONS_MAX: usize = 2 * SUBSCRIPTIONS_PER_CONNECTION_MAX;

/// What every connection shares.
#[derive(Clone)]
pub struct WsShared {
    pub live: Live,
    pub verifier: Arc<TokenVerifier>,
    /// Open connections per subject and workspace.
    pub connections: Arc<Mutex<HashMap<String, usize>>>,
    pub keepalive: Duration,
    /// The trusted-documents manifest and policy.
    pub trusted: TrustedDocuments,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Ping {},
    Pong {},
    Subscribe {
        id: String,
        payload: Box<SubscribePayload>,
    },
    Complete {
        id: String,
    },
}

/// A `subscribe` message's payload: a request, whose document is its
/// `query` or a trusted document's `documentId`.
#[derive(Deserialize)]
struct SubscribePayload {
    #[serde(flatten)]
    request: async_graphql::Request,
    #[serde(rename = "documentId", default)]
    document_id: Option<String>,
}

/// What to do after a message.
enum Flow {
    Continue,
    /// Close the socket with this code and reason.
    Close(u16, String),
    /// The client is gone.
    Stop,
}

/// An accepted connection's place in the per-subject count.
struct Counted {
    connections: Arc<Mutex<HashMap<String, usize>>>,
    /// The subject and workspace counted.
    key: String,
    token: String,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// One operation's outgoing payloads; `None` once it is complete.
type Operation = BoxStream<'static, Option<Arc<str>>>;

struct Connection {
    shared: WsShared,
    socket: WebSocket,
    /// Set by an accepted `connection_init`.
    accepted: Option<Counted>,
    /// When the accepted token stops being valid (seconds since the
    /// epoch), until `run` has armed its timer with it.
    expires_at: Option<i64>,
    /// The connection's live subscription count, for the resolver.
    session: Arc<Data>,
    operations: StreamMap<String, Operation>,
    /// A ping was sent and nothing has come back since.
    awaiting_pong: bool,
}

/// Serves one upgraded connection until it closes.
pub async fn serve(shared: WsShared, socket: WebSocket) {
    let mut session = Data::default();
    session.insert(SubscriptionSlots::default());
    let mut connection = Connection {
        shared,
        socket,
        accepted: None,
        expires_at: None,
        session: Arc::new(session),
        operations: StreamMap::new(),
        awaiting_pong: false,
    };
    connection.run().await;
}

impl Connection {
    async fn run(&mut self) {
        let timer = tokio::time::sleep(WS_INIT_TIMEOUT.min(self.shared.keepalive));
        tokio::pin!(timer);
        // Armed once connection_init is accepted.
        let expiry = tokio::time::sleep(Duration::MAX / 4);
        tokio::pin!(expiry);
        loop {
            let flow = tokio::select! {
                message = self.socket.recv() => match message {
                    Some(Ok(message)) => {
                        self.awaiting_pong = false;
                        let flow = self.on_message(message).await;
                        if let Some(until) = self.expires_at.take() {
                            expiry.as_mut().reset(instant_of(until));
                        }
                        if self.accepted.is_some() && timer.deadline() < Instant::now() + self.shared.keepalive / 2 {
                            timer.as_mut().reset(Instant::now() + self.shared.keepalive);
                        }
                        flow
                    }
                    Some(Err(_)) | None => Flow::Stop,
                },
                Some((id, payload)) = self.operations.next(), if !self.operations.is_empty() => {
                    let message = match payload {
                        Some(payload) => format!(r#"{{"id":{},"type":"next","payload":{payload}}}"#, json_string(&id)),
                        None => json!({ "id": id, "type": "complete" }).to_string(),
                    };
                    self.send(message).await
                }
                () = &mut expiry, if self.accepted.is_some() => {
                    Flow::Close(4403, "UNAUTHENTICATED: the token has expired".into())
                }
                () = &mut timer => {
                    if self.accepted.is_none() {
                        Flow::Close(4408, "Connection initialisation timeout".into())
                    } else if self.awaiting_pong {
                        Flow::Close(4408, "keep-alive timeout: no answer to the last ping".into())
                    } else {
                        self.awaiting_pong = true;
                        timer.as_mut().reset(Instant::now() + self.shared.keepalive);
                        self.send(json!({ "type": "ping" }).to_string()).await
                    }
                }
            };
            match flow {
                Flow::Continue => {}
                Flow::Stop => return,
                Flow::Close(code, reason) => {
                    let frame = CloseFrame {
                        code,
                        reason: Utf8Bytes::from(close_reason(&reason)),
                    };
                    let _ =
                        tokio::time::timeout(WS_SEND_TIMEOUT, self.socket.send(Message::Close(Some(frame))))
                            .await;
                    return;
                }
            }
        }
    }

    async fn send(&mut self, text: String) -> Flow {
        match tokio::time::timeout(WS_SEND_TIMEOUT, self.socket.send(Message::text(text))).await {
            Ok(Ok(())) => Flow::Continue,
            Ok(Err(_)) | Err(_) => Flow::Stop,
        }
    }

    async fn on_message(&mut self, message: Message) -> Flow {
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => return Flow::Stop,
            // Frame-level pings are answered by the WebSocket layer.
            Message::Ping(_) | Message::Pong(_) => return Flow::Continue,
            Message::Binary(_) => {
                return Flow::Close(4400, "graphql-transport-ws messages are text".into());
            }
        };
        let message = match serde_json::from_str::<ClientMessage>(text.as_str()) {
            Ok(message) => message,
            Err(error) => return Flow::Close(4400, format!("invalid message: {error}")),
        };
        match message {
            ClientMessage::ConnectionInit { payload } => self.on_init(payload.unwrap_or_default()).await,
            ClientMessage::Ping {} => self.send(json!({ "type": "pong" }).to_string()).await,
            ClientMessage::Pong {} => Flow::Continue,
            ClientMessage::Subscribe { id, payload } => self.on_subscribe(id, *payload).await,
            ClientMessage::Complete { id } => {
                self.operations.remove(&id);
                Flow::Continue
            }
        }
    }

    async fn on_init(&mut self, payload: Value) -> Flow {
        if self.accepted.is_some() {
            return Flow::Close(4429, "Too many initialisation requests".into());
        }
        let token = ["Authorization", "authorization", "token"]
            .iter()
            .find_map(|field| payload.get(*field).and_then(Value::as_str))
            .map(|value| bearer_token(value).unwrap_or(value).to_owned());
        let Some(token) = token else {
            return Flow::Close(
                4403,
                "UNAUTHENTICATED: connection_init must carry Authorization or token".into(),
            );
        };
        let (caller, until) = match self.shared.verifier.verify_until(&token) {
            Ok(verified) => verified,
            Err(AppError::Unauthenticated(reason)) => {
                return Flow::Close(4403, format!("UNAUTHENTICATED: {reason}"));
            }
            Err(_) => return Flow::Close(4403, "UNAUTHENTICATED".into()),
        };
        // A NUL cannot occur in a verified subject, so the key is unambiguous.
        let workspace = caller.workspace_id.as_ref().map_or("", |id| id.as_str());
        let key = format!("{}\0{workspace}", caller.subject);
        {
            let mut open = self
                .shared
                .connections
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let count = open.entry(key.clone()).or_default();
            if *count >= super::WS_CONNECTIONS_PER_SUBJECT_MAX {
                return Flow::Close(
                    4403,
                    format!(
                        "LIMIT_EXCEEDED: at most {} connections per subject and workspace",
                        super::WS_CONNECTIONS_PER_SUBJECT_MAX
                    ),
                );
            }
            *count += 1;
        }
        self.accepted = Some(Counted {
            connections: self.shared.connections.clone(),
            key,
            token,
        });
        self.expires_at = Some(until);
        self.send(json!({ "type": "connection_ack" }).to_string()).await
    }

    async fn on_subscribe(&mut self, id: String, payload: SubscribePayload) -> Flow {
        let Some(accepted) = &self.accepted else {
            return Flow::Close(4401, "Unauthorized".into());
        };
        if id.is_empty() || id.len() > WS_ID_MAX_BYTES {
            return Flow::Close(4400, format!("an operation id has 1 to {WS_ID_MAX_BYTES} bytes"));
        }
        if self.operations.contains_key(&id) {
            return Flow::Close(4409, format!("Subscriber for {id} already exists"));
        }
        if self.operations.len() >= WS_OPERATIONS_MAX {
            return self
                .error(
                    &id,
                    "LIMIT_EXCEEDED",
                    &format!("at most {WS_OPERATIONS_MAX} operations at once per connection"),
                )
                .await;
        }
        // The token is checked again: it may have expired since the ack.
        let authentication = match authenticate_token(&self.shared.verifier, &accepted.token) {
            Authentication::Caller(caller) => Authentication::Caller(caller),
            Authentication::Refused(reason) => return self.error(&id, "UNAUTHENTICATED", reason).await,
            Authentication::Anonymous => return self.error(&id, "UNAUTHENTICATED", "no token").await,
        };
        let has_query = !payload.request.query.is_empty();
        let request = match (has_query, payload.document_id.as_deref()) {
            (true, Some(_)) => {
                return self
                    .error(
                        &id,
                        "BAD_USER_INPUT",
                        "send either `query` or `documentId`, not both",
                    )
                    .await;
            }
            (_, document_id) => self
                .shared
                .trusted
                .admit(payload.request, document_id, &authentication),
        };
        let request = match request {
            Ok(request) => request,
            Err(refused) => return self.error(&id, refused.code(), &refused.message()).await,
        };
        let operation = self
            .shared
            .live
            .execute(request.data(authentication), self.session.clone())
            .map(Some)
            .chain(stream::once(async { None }));
        self.operations.insert(id, operation.boxed());
        Flow::Continue
    }

    /// An `error` message: the operation `id` did not start.
    async fn error(&mut self, id: &str, code: &str, message: &str) -> Flow {
        let error = json!({ "id": id, "type": "error", "payload": [
            { "message": message, "extensions": { "code": code } }
        ] });
        self.send(error.to_string()).await
    }
}

/// The tokio instant of a time in seconds since the epoch (now, if past).
fn instant_of(epoch_seconds: i64) -> Instant {
    let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX);
    let left = u64::try_from(epoch_seconds.saturating_sub(now)).unwrap_or(0);
    Instant::now() + Duration::from_secs(left)
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// A close frame's reason holds at most 123 bytes.
fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}
