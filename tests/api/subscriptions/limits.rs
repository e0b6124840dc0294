//! Goal: keep-alive works, and one connection or one token cannot hold
//! unbounded resources. Method: exceed each limit by one.
use protodesk_credits::auth::Claims;
use protodesk_credits::graphql::SUBSCRIPTIONS_PER_CONNECTION_MAX;
use protodesk_credits::http::WS_CONNECTIONS_PER_SUBJECT_MAX;

use crate::helpers::mint;

use super::*;

async fn ping_is_answered_with_pong(app: TestApp) {
    app.create_workspace("ws-ping").await;
    let mut client = app.ws(&app.token("agent", Some("ws-ping"))).await;

    client.send(json!({ "type": "ping" })).await;

    assert_eq!(client.next_raw().await["type"], "pong");
}

async fn subscriptions_per_connection_are_limited(app: TestApp) {
    app.create_workspace("ws-many-subs").await;
    let mut client = app.ws(&app.token("agent", Some("ws-many-subs"))).await;
    for index in 0..SUBSCRIPTIONS_PER_CONNECTION_MAX {
        client.subscribe_balance(&format!("s{index}"), None, None).await;
        assert_eq!(client.next_event().await["kind"], "SNAPSHOT");
    }

    client.subscribe_balance("one-too-many", None, None).await;
    let refused = client.next_message().await;
    client.send(json!({ "id": "s0", "type": "complete" })).await;
    // The slot frees when the server has dropped the completed stream;
    // retry (each refused attempt frees its slot at once) for up to 5 s.
    let mut accepted = json!(null);
    for attempt in 0..50 {
        let id = format!("after-{attempt}");
        client.subscribe_balance(&id, None, None).await;
        let mut message = client.next_message().await;
        while message["id"] != id.as_str() {
            message = client.next_message().await;
        }
        if message["payload"]["data"]["balanceChanged"]["kind"] == "SNAPSHOT" {
            accepted = message;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let code = refused["payload"]["errors"][0]["extensions"]["code"].clone();
    let code = if code.is_null() {
        refused["payload"][0]["extensions"]["code"].clone()
    } else {
        code
    };
    assert_eq!(code, "LIMIT_EXCEEDED", "{refused}");
    assert_eq!(
        accepted["payload"]["data"]["balanceChanged"]["kind"], "SNAPSHOT",
        "a freed slot is reusable"
    );
}

/// A token for `sub` in ws-conns, distinct for each `n`.
fn fresh_token(sub: &str, n: i64) -> String {
    mint(Claims {
        sub: sub.to_owned(),
        workspace_id: Some("ws-conns".to_owned()),
        role: "agent".to_owned(),
        exp: chrono::Utc::now().timestamp() + 600 + n,
        iss: None,
        aud: None,
    })
}

async fn connections_per_subject_are_limited(app: TestApp) {
    app.create_workspace("ws-conns").await;
    // A fresh token for each connection: the count is per subject.
    let mut open = Vec::new();
    for n in 0..WS_CONNECTIONS_PER_SUBJECT_MAX {
        open.push(app.ws(&fresh_token("agent-a", n as i64)).await);
    }
    let token = fresh_token("agent-a", 1_000);
    // Another subject of the same workspace is counted apart.
    let other = app
        .ws_connect(json!({ "Authorization": fresh_token("agent-b", 0) }))
        .await;
    assert!(
        matches!(other, Init::Acked(_)),
        "another subject is not limited by agent-a's count"
    );

    let refused = app
        .ws_connect(json!({ "Authorization": format!("Bearer {token}") }))
        .await;
    open.pop().unwrap().close().await;
    // The count drops when the server sees the close; retry for up to 5 s.
    let mut accepted = false;
    for _ in 0..50 {
        if let Init::Acked(_) = app
            .ws_connect(json!({ "Authorization": format!("Bearer {token}") }))
            .await
        {
            accepted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    match refused {
        Init::Closed(_, reason) => assert!(reason.contains("LIMIT_EXCEEDED"), "{reason}"),
        Init::Acked(_) => panic!("one connection too many was accepted"),
    }
    assert!(accepted, "a freed slot is reusable");
}

/// A token inside the leeway (exp 54 s ago, accepted for 6 s more):
/// the connection is acknowledged, delivers, and is closed with 4403
/// when the token expires: not before its `exp` plus the leeway (a server
/// ignoring the leeway, or closing at once, fails), and not long after.
async fn a_subscription_ends_when_its_token_expires(app: TestApp) {
    app.create_workspace("ws-conns").await;
    let exp = chrono::Utc::now().timestamp() - 54;
    let token = mint(Claims {
        sub: "agent-expiring".to_owned(),
        workspace_id: Some("ws-conns".to_owned()),
        role: "agent".to_owned(),
        exp,
        iss: None,
        aud: None,
    });
    let mut client = app.ws(&token).await;
    client.subscribe_balance("live", None, None).await;
    assert_eq!(client.next_event().await["kind"], "SNAPSHOT");

    let (code, reason) = client.closed().await;
    let closed_at = chrono::Utc::now();

    assert_eq!(code, 4403, "{reason}");
    assert!(reason.starts_with("UNAUTHENTICATED"), "{reason}");
    // The expiry is a whole second; the server's timer only ever fires
    // late on a busy machine, so the lower bound is tight and the upper
    // one has room.
    let expires = exp + protodesk_credits::auth::CLOCK_SKEW_LEEWAY_SECONDS as i64;
    let early_ms = (expires * 1000) - closed_at.timestamp_millis();
    assert!(early_ms <= 250, "closed {early_ms} ms before the token expired");
    assert!(
        -early_ms < 10_000,
        "closed {} ms after the token expired",
        -early_ms
    );
}

both_backends!(
    ping_is_answered_with_pong,
    subscriptions_per_connection_are_limited,
    connections_per_subject_are_limited,
    a_subscription_ends_when_its_token_expires,
);
