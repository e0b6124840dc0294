//! Goal: a subscriber that stops reading holds a bounded amount of
//! memory (one event in its channel; the shared bus is a fixed ring),
//! and when it reads again it gets every change, in order, ending at
//! the right balance; more than 1,000 rows behind, it gets one fresh
//! snapshot instead. Method: a bus of 8 events, a stream polled once
//! (its snapshot), left unpolled while 60 spends commit, then drained;
//! then left while 1,001 more commit.
use domain::catalogue::LedgerKind;
use domain::catalogue::Role;
use domain::ids::WorkspaceId;
use futures_util::StreamExt;
use protodesk_credits::auth::{Caller, Operation, authorize};
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

async fn a_slow_consumer_stays_bounded_and_ends_with_the_right_balance(backend: Backend) {
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

both_backends!(each_backend: a_slow_consumer_stays_bounded_and_ends_with_the_right_balance);
