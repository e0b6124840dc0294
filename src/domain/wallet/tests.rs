//! The state machine's rules, one change at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::TimeZone;

use super::*;
use crate::domain::ceiling::BALANCE_MAX;
use crate::domain::spend::{SpendAnswer, SpendDecision};

fn at(month: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, month, day, 0, 0, 0).single().unwrap()
}

fn grant(id: i64, source: GrantSource, remaining: i64, expires_at: Option<DateTime<Utc>>) -> Grant {
    Grant {
        id,
        source,
        granted: remaining,
        remaining,
        expires_at,
        period_start_at: None,
        purchase: None,
    }
}

/// A PRO wallet in its January period: 100 allocation credits left of
/// 1,000 (grant 1), a bonus of 5 expiring mid-January (grant 2), a
/// pack of 50 (grant 3).
fn pro_wallet() -> WalletState {
    let mut allocation = grant(1, GrantSource::Allocation, 100, Some(at(2, 1)));
    allocation.granted = 1000;
    allocation.period_start_at = Some(at(1, 1));
    WalletState {
        head: Head {
            id: 7,
            workspace_id: "ws".to_owned(),
            balance: 155,
            last_sequence: 9,
            plan: PlanCode::Pro,
            pending_plan: Some(PlanCode::Starter),
            trial_ends_at: None,
            anchor: Some(at(1, 1)),
            period_start: Some(at(1, 1)),
            period_end: Some(at(2, 1)),
            enterprise_allocation: None,
            threshold: Some(100),
            alerted_at: None,
        },
        grants: vec![
            allocation,
            grant(2, GrantSource::Adjustment, 5, Some(at(1, 15))),
            grant(3, GrantSource::Purchase, 50, None),
        ],
    }
}

fn spend(key: &str) -> Entry {
    Entry {
        kind: LedgerKind::Spend,
        action: Some(Action::Triage),
        reference: None,
        actor: "svc".to_owned(),
        key: Some(KeyBinding {
            key: key.to_owned(),
            fingerprint: format!("TRIAGE:{key}"),
        }),
        reverses: None,
    }
}

/// Settling then spending is one change: the expiries and the renewal
/// (a pending downgrade applied) come first, the spend burns the new
/// allocation, and the deltas, new grant, closes and head say exactly
/// that.
#[test]
fn a_renewal_and_a_spend_are_one_change_in_order() {
    let mut wallet = Wallet::new(pro_wallet());
    wallet.settle(
        |plan| if plan == PlanCode::Starter { 300 } else { 1000 },
        at(2, 3),
    );
    let (answer, row) = wallet.spend::<()>(None, spend("k1"), 1);
    assert!(matches!(answer, SpendAnswer::Fresh(SpendDecision::Charge(_))));
    assert_eq!(row, Some(3));
    let change = wallet.finish(at(2, 3));

    let kinds: Vec<(LedgerKind, i64, i64)> = change
        .rows
        .iter()
        .map(|row| (row.entry.kind, row.amount, row.sequence))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (LedgerKind::Expire, -100, 10),
            (LedgerKind::Expire, -5, 11),
            (LedgerKind::Grant, 300, 12),
            (LedgerKind::Spend, -1, 13),
        ]
    );
    assert_eq!(change.closes, vec![1, 2]);
    assert_eq!(change.renewals, 1);
    let [new] = change.new_grants.as_slice() else {
        panic!("one new grant: {:?}", change.new_grants)
    };
    assert!(new.is_new());
    assert_eq!((new.granted, new.remaining), (300, 299), "inserted as it ends");
    assert_eq!(
        change.rows[3].moves,
        vec![(new.id, -1)],
        "the spend burns the new allocation"
    );
    assert!(
        change.deltas.is_empty(),
        "the pack was not touched: {:?}",
        change.deltas
    );
    let head = change.head.expect("the head moved");
    assert_eq!((head.balance, head.last_sequence), (349, 13));
    assert_eq!((head.plan, head.pending_plan), (PlanCode::Starter, None));
    assert_eq!(head.period_end, Some(at(3, 1)));
    assert_eq!(change.sequence_read, 9);
    assert_eq!(change.rows[3].balance.split.purchased, 50);
    assert_eq!(change.rows[3].balance.split.allocation, 299);
}

/// A spend on a settled wallet moves stored grants only: one delta per
/// grant, summed over the spends, and the alert when the balance first
/// falls below the threshold, after the row that crossed.
#[test]
fn spends_become_deltas_and_one_alert() {
    let mut state = pro_wallet();
    state.grants.remove(1);
    state.head.balance = 150;
    let mut wallet = Wallet::new(state);
    for key in ["a", "b"] {
        let (_, row) = wallet.spend::<()>(None, spend(key), 30);
        assert!(row.is_some());
        wallet.check_low_balance(at(1, 20));
    }
    let change = wallet.finish(at(1, 20));
    assert_eq!(
        change.deltas,
        vec![GrantDelta {
            id: 1,
            remaining: -60,
            granted: 0
        },]
    );
    assert_eq!(change.alerts.len(), 1, "{:?}", change.alerts);
    assert_eq!(
        change.alerts[0].sequence, 11,
        "after the second spend, which crossed 100"
    );
    assert_eq!(
        change.happened,
        vec![Happened::Row(0), Happened::Row(1), Happened::Alert(0)]
    );
    assert!(change.new_grants.is_empty() && change.closes.is_empty());
}

/// An upgrade raises the stored allocation grant: a granted delta
/// beside the remaining one, no new grant.
#[test]
fn an_upgrade_raises_the_stored_allocation() {
    let mut wallet = Wallet::new(pro_wallet());
    wallet
        .change_plan(PlanCode::Business, 3000, "admin", at(1, 10))
        .unwrap();
    let change = wallet.finish(at(1, 10));
    assert_eq!(
        change.deltas,
        vec![GrantDelta {
            id: 1,
            remaining: 2000,
            granted: 2000
        }]
    );
    assert!(change.new_grants.is_empty());
    assert_eq!(change.head.unwrap().plan, PlanCode::Business);
}

/// A refused operation changes nothing: past the ceiling, or a
/// negative adjustment larger than the balance.
#[test]
fn refusals_leave_no_change() {
    let mut wallet = Wallet::new(pro_wallet());
    let pack = Purchase {
        pack: "LARGE".to_owned(),
        price_cents: 1,
        currency: "USD".to_owned(),
    };
    let too_many = BALANCE_MAX - 155 + 1;
    assert!(
        wallet
            .top_up(too_many, pack, Entry::by(LedgerKind::TopUp, "a", "p".to_owned()))
            .is_err()
    );
    assert!(
        wallet
            .adjust(
                -156,
                None,
                Entry::by(LedgerKind::Adjustment, "op", "r".to_owned()),
                at(1, 10)
            )
            .is_err()
    );
    wallet.set_threshold(Some(100));
    assert!(wallet.finish(at(1, 10)).is_empty());
}

/// A spend reversed after its grant expired gives its credits to a new
/// never-expiring bonus grant; the live one gets its own back.
#[test]
fn a_reversal_restores_live_grants_and_replaces_closed_ones() {
    let mut wallet = Wallet::new(pro_wallet());
    let original = Reversed {
        id: 40,
        kind: LedgerKind::Spend,
        action: Some(Action::Triage),
        moves: vec![(99, -2), (3, -1)],
        is_reversed: false,
    };
    let row = wallet
        .reverse(
            &original,
            Entry::by(LedgerKind::Reversal, "op", "mistake".to_owned()),
        )
        .unwrap();
    let change = wallet.finish(at(1, 10));
    let reversal = &change.rows[row];
    assert_eq!(reversal.amount, 3);
    assert_eq!(reversal.entry.reverses, Some(40));
    assert_eq!(reversal.entry.action, Some(Action::Triage));
    assert_eq!(
        change.deltas,
        vec![GrantDelta {
            id: 3,
            remaining: 1,
            granted: 0
        }]
    );
    let [new] = change.new_grants.as_slice() else {
        panic!("one new grant")
    };
    assert_eq!(
        (new.source, new.remaining, new.expires_at),
        (GrantSource::Adjustment, 2, None)
    );
}
