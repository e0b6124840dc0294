//! A graphql-transport-ws client for subscription tests.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::TestApp;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An open, acknowledged graphql-transport-ws connection.
pub struct WsClient {
    socket: Socket,
}

/// How connection_init went.
pub enum Init {
    /// connection_ack received.
    Acked(Box<WsClient>),
    /// The server closed the connection, with this close code and reason.
    Closed(u16, String),
}

impl TestApp {
    /// Opens a graphql-transport-ws WebSocket on /graphql, sending nothing.
    pub async fn ws_open(&self) -> WsClient {
        let url = format!("{}/graphql", self.address.replacen("http", "ws", 1));
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        WsClient { socket }
    }

    /// Opens a WebSocket on /graphql and sends connection_init with `payload`.
    pub async fn ws_connect(&self, payload: Value) -> Init {
        let WsClient { mut socket } = self.ws_open().await;
        socket
            .send(Message::text(
                json!({ "type": "connection_init", "payload": payload }).to_string(),
            ))
            .await
            .unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
                .await
                .expect("an answer to connection_init");
            match message {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).unwrap();
                    if value["type"] == "connection_ack" {
                        return Init::Acked(Box::new(WsClient { socket }));
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((0, String::new()));
                    return Init::Closed(code, reason);
                }
                Some(Ok(_)) => {}
                _ => return Init::Closed(0, "dropped".into()),
            }
        }
    }

    /// An acknowledged connection with `token`.
    pub async fn ws(&self, token: &str) -> WsClient {
        match self
            .ws_connect(json!({ "Authorization": format!("Bearer {token}") }))
            .await
        {
            Init::Acked(client) => *client,
            Init::Closed(code, reason) => panic!("connection refused: {code} {reason}"),
        }
    }
}

impl WsClient {
    /// Starts `balanceChanged` as subscription `id`.
    pub async fn subscribe_balance(&mut self, id: &str, workspace: Option<&str>, after: Option<i64>) {
        let query =
            "subscription($ws: ID, $after: Int) { balanceChanged(workspaceId: $ws, afterSequence: $after) {
            kind sequence transactionId delta balance { total allocation purchased bonus } } }";
        self.socket
            .send(Message::text(
                json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": { "ws": workspace, "after": after } } })
                    .to_string(),
            ))
            .await
            .unwrap();
    }

    /// The next `next`/`error`/`complete` message (pings are answered).
    pub async fn next_message(&mut self) -> Value {
        loop {
            let value = self.next_raw().await;
            match value["type"].as_str() {
                Some("ping") => self.send(json!({ "type": "pong" })).await,
                Some("pong") => {}
                _ => return value,
            }
        }
    }

    /// The next event's `balanceChanged` payload.
    pub async fn next_event(&mut self) -> Value {
        let message = self.next_message().await;
        assert_eq!(message["type"], "next", "{message}");
        assert!(message["payload"].get("errors").is_none(), "{message}");
        message["payload"]["data"]["balanceChanged"].clone()
    }
}

impl WsClient {
    /// Sends a raw graphql-transport-ws message.
    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    /// The next text message of any type, pings included.
    pub async fn next_raw(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("a message within 10 s")
                .expect("the socket is open")
                .unwrap();
            if let Message::Text(text) = message {
                return serde_json::from_str(&text).unwrap();
            }
        }
    }

    /// Waits for the server to close the connection (skipping what comes
    /// before, pings unanswered): its close code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("the server closes within 10 s");
            match message {
                Some(Ok(Message::Close(frame))) => {
                    return frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((0, String::new()));
                }
                Some(Ok(_)) => {}
                _ => return (0, "dropped".into()),
            }
        }
    }

    /// The next text message (`Ok`), or the close code (`Err`); `None` if
    /// the socket ended without a close frame.
    pub async fn next_frame(&mut self) -> Option<Result<Value, u16>> {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Text(text))) => return Some(Ok(serde_json::from_str(&text).unwrap())),
                Some(Ok(Message::Close(frame))) => return Some(Err(frame.map_or(0, |f| u16::from(f.code)))),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text.to_owned())).await.unwrap();
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
