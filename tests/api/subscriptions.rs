//! Goal: the balance subscription delivers a snapshot, then every committed
//! change once and in ledger order; reconnecting with `afterSequence`
//! replays what was missed; tokens are checked at connection_init and at
//! subscribe. Method: a real graphql-transport-ws client against the
//! running server.

use chrono::Duration;
use serde_json::json;

use crate::both_backends;
use crate::helpers::TestApp;
use crate::helpers::ws::Init;

async fn a_subscriber_gets_a_snapshot_then_every_change_in_order(app: TestApp) {
    app.set_trial_credits(10).await;
    app.create_workspace("ws-live").await;
    let agent = app.token("agent", Some("ws-live"));
    let admin = app.token("admin", Some("ws-live"));
    let service = app.token("service", Some("ws-live"));
    let mut client = app.ws(&agent).await;
    client.subscribe_balance("1", None, None).await;
    let snapshot = client.next_event().await;
    app.spend_ok(&service, "TRIAGE", "l1").await;
    app.top_up(&admin, None, "PACK_100", "pay-live").await.data();
    app.gql(
        Some(&admin),
        "mutation { setLowBalanceThreshold(input: {threshold: 109}) { wallet { lowBalanceThreshold } } }",
        json!({}),
    )
    .await
    .data();
    app.spend_ok(&service, "SIDEKICK", "l2").await;

    assert_eq!(
        snapshot,
        json!({ "kind": "SNAPSHOT", "sequence": 1, "transactionId": null, "delta": 0,
        "balance": { "total": 10, "allocation": 0, "purchased": 0, "bonus": 10 } })
    );
    let spend = client.next_event().await;
    assert_eq!(
        (
            spend["kind"].clone(),
            spend["sequence"].clone(),
            spend["delta"].clone()
        ),
        (json!("SPEND"), json!(2), json!(-1))
    );
    assert_eq!(spend["balance"]["total"], 9);
    let top_up = client.next_event().await;
    assert_eq!(
        (top_up["kind"].clone(), top_up["sequence"].clone()),
        (json!("TOP_UP"), json!(3))
    );
    assert_eq!(
        top_up["balance"],
        json!({ "total": 109, "allocation": 0, "purchased": 100, "bonus": 9 })
    );
    let second_spend = client.next_event().await;
    assert_eq!(
        (second_spend["kind"].clone(), second_spend["sequence"].clone()),
        (json!("SPEND"), json!(4))
    );
    let low = client.next_event().await;
    assert_eq!(
        (low["kind"].clone(), low["sequence"].clone()),
        (json!("LOW_BALANCE"), json!(4))
    );
    assert_eq!(low["balance"]["total"], 108);
}

async fn grants_and_expiries_arrive_too(app: TestApp) {
    app.create_workspace("ws-expiry").await;
    let agent = app.token("agent", Some("ws-expiry"));
    let mut client = app.ws(&agent).await;
    client.subscribe_balance("s", None, None).await;
    client.next_event().await;

    app.clock.advance(Duration::days(7));
    app.ledger.roll_over_periods(app.clock_now()).await.unwrap();
    app.change_plan(&app.token("admin", Some("ws-expiry")), None, "PRO", None)
        .await
        .data();

    let expired = client.next_event().await;
    assert_eq!(
        (expired["kind"].clone(), expired["delta"].clone()),
        (json!("EXPIRE"), json!(-300))
    );
    let granted = client.next_event().await;
    assert_eq!(
        (granted["kind"].clone(), granted["delta"].clone()),
        (json!("GRANT"), json!(1000))
    );
    assert_eq!(granted["balance"]["allocation"], 1000);
}

async fn reconnecting_with_after_sequence_replays_what_was_missed(app: TestApp) {
    app.create_workspace("ws-replay").await;
    let service = app.token("service", Some("ws-replay"));
    for key in ["m1", "m2", "m3"] {
        app.spend_ok(&service, "TRIAGE", key).await;
    }
    let mut client = app.ws(&service).await;

    client.subscribe_balance("r", None, Some(2)).await;

    let first = client.next_event().await;
    let second = client.next_event().await;
    assert_eq!(
        (first["sequence"].clone(), first["balance"]["total"].clone()),
        (json!(3), json!(298))
    );
    assert_eq!(
        (second["sequence"].clone(), second["balance"]["total"].clone()),
        (json!(4), json!(297))
    );
    app.spend_ok(&service, "TRIAGE", "m4").await;
    let live = client.next_event().await;
    assert_eq!(live["sequence"], 5);
}

async fn tokens_are_checked_at_connection_init_and_at_subscribe(app: TestApp) {
    app.create_workspace("ws-sub-a").await;
    app.create_workspace("ws-sub-b").await;

    for payload in [
        json!({}),
        json!({ "Authorization": "Bearer not-a-token" }),
        json!({ "token": "x.y.z" }),
    ] {
        match app.ws_connect(payload.clone()).await {
            Init::Closed(code, reason) => {
                assert_eq!(code, 4403, "{payload}");
                assert!(reason.contains("UNAUTHENTICATED"), "{payload}: {reason}");
            }
            Init::Acked(_) => panic!("{payload} was accepted"),
        }
    }
    let token_field = app
        .ws_connect(json!({ "token": app.token("agent", Some("ws-sub-a")) }))
        .await;
    assert!(
        matches!(token_field, Init::Acked(_)),
        "the token field is accepted"
    );
    let mut client = app.ws(&app.token("agent", Some("ws-sub-a"))).await;
    client.subscribe_balance("foreign", Some("ws-sub-b"), None).await;
    let refused = client.next_message().await;
    // async-graphql answers a refused subscribe with a `next` carrying errors.
    let code = match refused["type"].as_str() {
        Some("error") => refused["payload"][0]["extensions"]["code"].clone(),
        _ => refused["payload"]["errors"][0]["extensions"]["code"].clone(),
    };
    assert_eq!(code, "NOT_FOUND", "{refused}");
    assert!(refused["payload"]["data"].is_null() || refused["type"] == "error");
}

both_backends!(
    a_subscriber_gets_a_snapshot_then_every_change_in_order,
    grants_and_expiries_arrive_too,
    reconnecting_with_after_sequence_replays_what_was_missed,
    tokens_are_checked_at_connection_init_and_at_subscribe,
);

mod instances {
    //! PostgreSQL: a change committed on one instance reaches a subscriber
    //! connected to another, through NOTIFY, with the rows read from the ledger.
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_spend_on_instance_a_reaches_a_subscriber_on_instance_b() {
        let a = TestApp::spawn(crate::helpers::Backend::Postgres).await;
        let b = a.spawn_sibling().await;
        a.create_workspace("ws-fan").await;
        let service = a.token("service", Some("ws-fan"));
        let mut client = b.ws(&a.token("agent", Some("ws-fan"))).await;
        client.subscribe_balance("x", None, None).await;
        assert_eq!(client.next_event().await["kind"], "SNAPSHOT");
        // B's relay (and A's) listen before the spend is committed on A.
        crate::helpers::wait_for_listeners(a.pg_schema.as_deref().unwrap(), 2).await;

        a.spend_ok(&service, "TRIAGE", "fan-1").await;
        a.spend_ok(&service, "TRIAGE", "fan-2").await;

        let first = client.next_event().await;
        let second = client.next_event().await;
        assert_eq!(
            (first["kind"].clone(), first["sequence"].clone()),
            (json!("SPEND"), json!(2))
        );
        assert_eq!(
            (second["sequence"].clone(), second["balance"]["total"].clone()),
            (json!(3), json!(298))
        );
        a.verify_ledger().await;
        a.teardown().await;
    }

    /// The sweep's rows reach other instances too (its NOTIFY is written
    /// apart from the single writes' and the group commit's).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_renewal_swept_on_instance_a_reaches_a_subscriber_on_instance_b() {
        let a = TestApp::spawn(crate::helpers::Backend::Postgres).await;
        let b = a.spawn_sibling().await;
        a.set_trial_credits(0).await;
        a.create_workspace("ws-swept").await;
        a.change_plan(&a.token("admin", Some("ws-swept")), None, "PRO", None)
            .await
            .data();
        let mut client = b.ws(&a.token("agent", Some("ws-swept"))).await;
        client.subscribe_balance("x", None, None).await;
        assert_eq!(client.next_event().await["kind"], "SNAPSHOT");
        crate::helpers::wait_for_listeners(a.pg_schema.as_deref().unwrap(), 2).await;
        let now = crate::helpers::start_time() + Duration::days(40);
        a.clock.set(now);

        let report = a.ledger.roll_over_periods(now).await.unwrap();

        assert_eq!(report.wallets_changed, 1);
        let expired = client.next_event().await;
        let granted = client.next_event().await;
        assert_eq!(
            (expired["kind"].clone(), expired["sequence"].clone()),
            (json!("EXPIRE"), json!(2))
        );
        assert_eq!(
            (
                granted["kind"].clone(),
                granted["sequence"].clone(),
                granted["balance"]["total"].clone()
            ),
            (json!("GRANT"), json!(3), json!(1000))
        );
        a.verify_ledger().await;
        a.teardown().await;
    }
}

mod limits {
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
    /// once the token expires.
    async fn a_subscription_ends_when_its_token_expires(app: TestApp) {
        app.create_workspace("ws-conns").await;
        let token = mint(Claims {
            sub: "agent-expiring".to_owned(),
            workspace_id: Some("ws-conns".to_owned()),
            role: "agent".to_owned(),
            exp: chrono::Utc::now().timestamp() - 54,
            iss: None,
            aud: None,
        });
        let mut client = app.ws(&token).await;
        client.subscribe_balance("live", None, None).await;
        assert_eq!(client.next_event().await["kind"], "SNAPSHOT");

        let started = std::time::Instant::now();
        let (code, reason) = client.closed().await;

        assert_eq!(code, 4403, "{reason}");
        assert!(reason.starts_with("UNAUTHENTICATED"), "{reason}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    both_backends!(
        ping_is_answered_with_pong,
        subscriptions_per_connection_are_limited,
        connections_per_subject_are_limited,
        a_subscription_ends_when_its_token_expires,
    );
}

mod slow_consumer {
    //! Goal: a subscriber that stops reading holds a bounded amount of
    //! memory (one event in its channel; the shared bus is a fixed ring),
    //! and when it reads again it gets every change, in order, ending at
    //! the right balance; more than 1,000 rows behind, it gets one fresh
    //! snapshot instead. Method: a bus of 8 events, a stream polled once
    //! (its snapshot), left unpolled while 60 spends commit, then drained;
    //! then left while 1,001 more commit.
    use futures_util::StreamExt;
    use protodesk_credits::auth::{Caller, Operation, authorize};
    use protodesk_credits::domain::catalogue::LedgerKind;
    use protodesk_credits::domain::catalogue::Role;
    use protodesk_credits::domain::ids::WorkspaceId;
    use protodesk_credits::service::{BalanceChange, ChangeKind, REPLAY_ROWS_MAX};

    use super::*;
    use crate::helpers::{Backend, Options};

    /// The stream's next item, within 10 s.
    async fn next<S>(stream: &mut S) -> BalanceChange
    where
        S: futures_util::Stream<Item = protodesk_credits::error::AppResult<BalanceChange>> + Unpin,
    {
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .expect("the stream keeps up")
            .expect("the stream is open")
            .unwrap()
    }

    async fn run(backend: Backend) {
        let app = TestApp::spawn_with(
            backend,
            Options {
                event_bus_capacity: Some(8),
                ..Options::default()
            },
        )
        .await;
        app.create_workspace("ws-slow").await;
        let caller = Caller {
            subject: "reader".into(),
            workspace_id: Some(WorkspaceId::parse("w", "ws-slow").unwrap()),
            role: Role::Agent,
        };
        let scope = authorize(&caller, None, Operation::Read).unwrap();
        let stream = app.ledger.balance_stream(scope, None).await.unwrap();
        let mut stream = Box::pin(stream);
        let service = app.token("service", Some("ws-slow"));

        // The first poll takes the snapshot, and registers the stream's
        // place on the bus: everything after it must arrive.
        let first = next(&mut stream).await;
        assert_eq!((first.kind, first.sequence), (ChangeKind::Snapshot, 1));

        // 60 changes into a bus of 8, the stream unpolled: it lags, and
        // must catch up from the ledger with every row, in order.
        for i in 0..60 {
            app.spend_ok(&service, "TRIAGE", &format!("slow-{i}")).await;
        }
        let mut sequences = Vec::new();
        let mut last_total = None;
        while sequences.last() != Some(&61) {
            let change = next(&mut stream).await;
            if change.kind != ChangeKind::LowBalance {
                assert_eq!(change.kind, ChangeKind::Ledger(LedgerKind::Spend), "{change:?}");
                sequences.push(change.sequence);
                last_total = Some(change.balance.total);
            }
        }
        let expected: Vec<i64> = (2..=61).collect();
        assert_eq!(sequences, expected, "no gap and no duplicate after the lag");
        assert_eq!(last_total, Some(240));

        // More than REPLAY_ROWS_MAX rows behind: one fresh snapshot at the
        // head instead of a replay.
        app.top_up(&app.operator(), Some("ws-slow"), "PACK_2500", "pay-slow")
            .await
            .data();
        let behind = REPLAY_ROWS_MAX as usize + 1;
        for chunk in (0..behind).collect::<Vec<_>>().chunks(50) {
            futures_util::future::join_all(chunk.iter().map(|i| {
                let (app, service) = (&app, &service);
                async move { app.spend_ok(service, "SIDEKICK", &format!("far-{i}")).await }
            }))
            .await;
        }
        let head = 62 + behind as i64;
        let mut after = next(&mut stream).await;
        while after.kind == ChangeKind::LowBalance {
            after = next(&mut stream).await;
        }
        assert_eq!(after.kind, ChangeKind::Snapshot, "{after:?}");
        assert_eq!(after.sequence, head);
        assert_eq!(after.balance.total, 240 + 2500 - behind as i64);
        assert_eq!(app.balance_total("ws-slow").await, 240 + 2500 - behind as i64);
        app.verify_ledger().await;
        app.teardown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_a_slow_consumer_stays_bounded_and_ends_with_the_right_balance() {
        run(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_slow_consumer_stays_bounded_and_ends_with_the_right_balance() {
        run(Backend::Postgres).await;
    }
}

mod listener_loss {
    //! Goal (PostgreSQL): when the relay's LISTEN connection is killed
    //! mid-stream, nothing is lost: it listens again and every subscriber
    //! reads what it missed from the ledger. Method: two instances; kill
    //! B's listener with pg_terminate_backend; spend on A while it is down.
    use super::*;
    use crate::helpers::postgres_url;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_killing_the_listener_loses_nothing() {
        let a = TestApp::spawn(crate::helpers::Backend::Postgres).await;
        let b = a.spawn_sibling().await;
        a.create_workspace("ws-kill").await;
        let service = a.token("service", Some("ws-kill"));
        let mut client = b.ws(&a.token("agent", Some("ws-kill"))).await;
        client.subscribe_balance("k", None, None).await;
        assert_eq!(client.next_event().await["kind"], "SNAPSHOT");
        crate::helpers::wait_for_listeners(a.pg_schema.as_deref().unwrap(), 2).await;
        a.spend_ok(&service, "TRIAGE", "before").await;
        assert_eq!(client.next_event().await["sequence"], 2);

        let admin = sea_orm::Database::connect(postgres_url()).await.unwrap();
        let channel = format!("credits_{}", a.pg_schema.clone().unwrap());
        let killed = sea_orm::ConnectionTrait::query_all_raw(
            &admin,
            sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE query LIKE 'LISTEN%{channel}%' AND pid <> pg_backend_pid()"
                ),
            ),
        )
        .await
        .unwrap();
        assert!(!killed.is_empty(), "a listener connection was found and killed");
        a.spend_ok(&service, "TRIAGE", "while-down").await;

        let missed = client.next_event().await;
        assert_eq!(
            (missed["kind"].clone(), missed["sequence"].clone()),
            (json!("SPEND"), json!(3))
        );
        assert_eq!(missed["balance"]["total"], 298);
        a.spend_ok(&service, "TRIAGE", "after").await;
        assert_eq!(client.next_event().await["sequence"], 4);
        a.verify_ledger().await;
        a.teardown().await;
    }
}

mod protocol {
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
}
