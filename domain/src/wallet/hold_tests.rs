//! Holds by the wallet's rules: pinned in burn-down order, seen by spends
//! only as `available`, captured, released and expired exactly.

use chrono::{DateTime, Duration, Utc};

use super::tests::{at, pro_wallet};
use super::*;
use crate::budget::{BudgetMode, BudgetTarget, BudgetWindow};
use crate::catalogue::{Action, LedgerKind};
use crate::hold::HoldState;
use crate::spend::{SpendAnswer, SpendDecision};

/// The wallet tests' PRO wallet in its January period, with 100
/// allocation credits (grant 1, expiring with the period on Feb 1), a bonus
/// of 5 expiring Jan 15 (grant 2), a pack of 50 (grant 3); no pending
/// downgrade, no threshold.
fn wallet() -> Wallet {
    let mut state = pro_wallet();
    state.grants[0].granted = 100;
    state.head.pending_plan = None;
    state.head.threshold = None;
    Wallet::new(state)
}

fn entry(key: &str) -> Entry {
    Entry {
        kind: LedgerKind::Spend,
        action: Some(Action::AutoResolve),
        reference: Some("ticket-1".to_owned()),
        actor: "worker".to_owned(),
        key: Some(KeyBinding {
            key: key.to_owned(),
            fingerprint: format!("fp:{key}"),
        }),
        reverses: None,
        agent_id: Some("agent-1".to_owned()),
        hold: None,
    }
}

/// Reserves `credits` at `now` for an hour; the new hold's id.
fn reserve(wallet: &mut Wallet, key: &str, credits: i64, now: DateTime<Utc>) -> Option<i64> {
    let taking = Taking::Hold {
        expires_at: now + Duration::hours(1),
    };
    let spent = wallet.take::<()>(None, entry(key), credits, taking, now);
    let row = spent.row?;
    assert!(matches!(
        spent.answer,
        SpendAnswer::Fresh(SpendDecision::Charge(_))
    ));
    wallet_row_hold(wallet, row)
}

fn wallet_row_hold(wallet: &Wallet, row: usize) -> Option<i64> {
    let row = &wallet.rows[row];
    assert_eq!(row.entry.kind, LedgerKind::Hold);
    assert_eq!(row.amount, 0);
    row.entry.hold
}

/// The invariant with holds: the balance is the grants' sum, `held` the
/// live holds' and the grants' pins, and nothing is below zero.
fn check(wallet: &Wallet) {
    let state = &wallet.state;
    let grants: i64 = state.grants.iter().map(|grant| grant.remaining).sum();
    let pinned: i64 = state.grants.iter().map(|grant| grant.held).sum();
    let holds: i64 = state
        .holds
        .iter()
        .filter(|hold| hold.is_held())
        .map(|hold| hold.credits)
        .sum();
    assert_eq!(state.head.balance, grants);
    assert_eq!(state.head.held, pinned);
    assert_eq!(state.head.held, holds);
    assert!(
        state
            .grants
            .iter()
            .all(|grant| grant.held >= 0 && grant.free() >= 0)
    );
    let ledger: i64 = wallet.rows.iter().map(|row| row.amount).sum();
    assert_eq!(wallet.original.head.balance + ledger, state.head.balance);
}

#[test]
fn a_hold_pins_credits_in_burn_down_order_and_spends_see_only_the_rest() {
    let mut wallet = wallet();
    let now = at(1, 10);
    let id = reserve(&mut wallet, "h1", 75, now).expect("held");
    let hold = wallet.holds().iter().find(|hold| hold.id == id).unwrap();
    // The bonus expiring Jan 15 first, then the allocation.
    assert_eq!(hold.pins, vec![(2, 5), (1, 70)]);
    let balance = wallet.balance();
    assert_eq!((balance.total, balance.held, balance.available()), (155, 75, 80));
    check(&wallet);
    // 80 are left: a hold of 80 fits, then nothing does.
    assert!(reserve(&mut wallet, "h2", 80, now).is_some());
    assert_eq!(reserve(&mut wallet, "h3", 1, now), None);
    let spent = wallet.spend::<()>(None, entry("s1"), 1, now);
    assert_eq!(
        spent.answer,
        SpendAnswer::Fresh(SpendDecision::Insufficient { available: 0 })
    );
    check(&wallet);
}

#[test]
fn a_capture_charges_from_its_pins_and_gives_back_the_rest() {
    let mut wallet = wallet();
    let now = at(1, 10);
    let id = reserve(&mut wallet, "h1", 75, now).unwrap();
    let captured = wallet.capture(id, Some(30), "worker", now).unwrap();
    let row = &wallet.rows[captured.row];
    assert_eq!(row.entry.kind, LedgerKind::Spend);
    assert_eq!(row.entry.hold, Some(id));
    assert_eq!(row.amount, -30);
    assert_eq!(row.moves, vec![(2, -5), (1, -25)]);
    assert_eq!(
        (captured.hold.state, captured.hold.captured),
        (HoldState::Captured, 30)
    );
    let balance = wallet.balance();
    assert_eq!((balance.total, balance.held), (125, 0));
    check(&wallet);
    // Captured once: a second capture or a release finds no live hold.
    assert_eq!(wallet.capture(id, None, "worker", now), Err(HoldRefusal::NotHeld));
    assert_eq!(
        wallet.release(id, "late", "worker", now),
        Err(HoldRefusal::NotHeld)
    );
}

#[test]
fn a_capture_above_the_hold_takes_what_is_available_and_says_what_it_could_not() {
    let mut wallet = wallet();
    let now = at(1, 10);
    let first = reserve(&mut wallet, "h1", 100, now).unwrap();
    let second = reserve(&mut wallet, "h2", 50, now).unwrap();
    // 5 available: asking 110 of a hold of 100 collects 105.
    let captured = wallet.capture(first, Some(110), "worker", now).unwrap();
    assert_eq!((captured.hold.captured, captured.hold.uncollected), (105, 5));
    assert_eq!(wallet.rows[captured.row].amount, -105);
    // The other hold's credits were not touched.
    assert_eq!(wallet.balance().held, 50);
    assert_eq!(wallet.balance().available(), 0);
    check(&wallet);
    let captured = wallet.capture(second, None, "worker", now).unwrap();
    assert_eq!((captured.hold.captured, captured.hold.uncollected), (50, 0));
    assert_eq!(wallet.balance().total, 0);
    check(&wallet);
}

#[test]
fn a_release_gives_credits_and_budget_back() {
    let mut wallet = wallet();
    let now = at(1, 10);
    wallet.load_budgets(
        vec![crate::budget::Budget {
            id: 1,
            name: "daily".to_owned(),
            applies_to: BudgetTarget::Workspace,
            agent_id: None,
            action: None,
            window: BudgetWindow::Day,
            limit: 5,
            mode: BudgetMode::Hard,
            counting_since: at(1, 1),
            created_at: at(1, 1),
            updated_at: at(1, 1),
        }],
        Vec::new(),
    );
    let holds: Vec<i64> = (0..5)
        .map(|n| reserve(&mut wallet, &format!("h{n}"), 1, now).unwrap())
        .collect();
    // A HARD budget of 5 with 5 held refuses the sixth.
    let sixth = wallet.take::<()>(
        None,
        entry("h5"),
        1,
        Taking::Hold {
            expires_at: now + Duration::hours(1),
        },
        now,
    );
    assert!(matches!(sixth.answer, SpendAnswer::OverBudget(_)));
    let row = wallet.release(holds[0], "never started", "worker", now).unwrap();
    assert_eq!(wallet.rows[row].entry.kind, LedgerKind::Release);
    assert_eq!(wallet.rows[row].amount, 0);
    assert_eq!(wallet.balance().held, 4);
    check(&wallet);
    // Released, its budget is free again.
    assert!(reserve(&mut wallet, "h6", 1, now).is_some());
}

#[test]
fn settling_expires_due_holds_once_and_tells_it() {
    let mut wallet = wallet();
    let placed = at(1, 10);
    let id = reserve(&mut wallet, "h1", 10, placed).unwrap();
    let kept = reserve(&mut wallet, "h2", 10, placed).unwrap();
    wallet.extend(kept, placed + Duration::hours(5)).unwrap();
    let later = placed + Duration::hours(2);
    wallet.settle(|_| 0, later);
    wallet.settle(|_| 0, later);
    let expired: Vec<&Hold> = wallet
        .holds()
        .iter()
        .filter(|hold| hold.state == HoldState::Expired)
        .collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id, id);
    assert_eq!(wallet.balance().held, 10);
    check(&wallet);
    // A release after the expiry finds nothing to release.
    assert_eq!(
        wallet.release(id, "late", "worker", later),
        Err(HoldRefusal::NotHeld)
    );
    let releases = wallet
        .rows
        .iter()
        .filter(|row| row.entry.kind == LedgerKind::HoldExpired)
        .count();
    assert_eq!(releases, 1);
    let change = wallet.finish(later);
    let events =
        crate::outbox::events_of_change(&change, &(1..=change.rows.len() as i64).collect::<Vec<_>>());
    let told: Vec<_> = events
        .iter()
        .filter(|event| event.event_type == crate::event::EventType::HoldExpired)
        .collect();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].data["credits"], 10);
    assert_eq!(told[0].data["holdKey"], "h1");
}

/// Credits pinned in a grant that expires (the bonus on Jan 15) stay held
/// past its expiry: a capture still charges them; a release lets them
/// expire at once, never back into the wallet.
#[test]
fn pinned_credits_of_an_expired_grant_are_charged_or_expire_with_it() {
    for capture in [true, false] {
        let mut wallet = wallet();
        let id = reserve(&mut wallet, "h1", 3, at(1, 14)).unwrap();
        wallet.extend(id, at(1, 20)).unwrap();
        wallet.settle(|_| 0, at(1, 16));
        // The bonus's free 2 credits expired; its 3 pinned ones wait.
        let bonus = wallet.state.grants.iter().find(|grant| grant.id == 2).unwrap();
        assert_eq!((bonus.remaining, bonus.held), (3, 3));
        assert_eq!(wallet.balance().total, 153);
        check(&wallet);
        if capture {
            let captured = wallet.capture(id, Some(2), "worker", at(1, 16)).unwrap();
            assert_eq!(wallet.rows[captured.row].moves, vec![(2, -2)]);
            assert_eq!(wallet.balance().total, 150);
        } else {
            wallet.release(id, "never started", "worker", at(1, 16)).unwrap();
            let last = wallet.rows.last().unwrap();
            assert_eq!((last.entry.kind, last.amount), (LedgerKind::Expire, -3));
            assert_eq!(wallet.balance().total, 150);
        }
        assert!(wallet.state.grants.iter().all(|grant| grant.id != 2));
        assert!(wallet.closes.contains(&2));
        check(&wallet);
    }
}

/// A period reset while credits are held: the old allocation's free
/// credits expire, the new period's grant comes, the held ones wait.
#[test]
fn a_period_reset_while_held_keeps_the_hold_exact() {
    let mut wallet = wallet();
    wallet.settle(|_| 1000, at(1, 31));
    let id = reserve(&mut wallet, "h1", 50, at(1, 31)).unwrap();
    wallet.extend(id, at(2, 1) + Duration::hours(3)).unwrap();
    wallet.settle(|_| 1000, at(2, 1) + Duration::hours(1));
    // The bonus expired on Jan 15; the 50 are pinned in the allocation,
    // whose other 50 expired at the reset, and the new period's 1,000 came.
    let balance = wallet.balance();
    assert_eq!((balance.total, balance.held), (1100, 50));
    check(&wallet);
    let captured = wallet
        .capture(id, Some(50), "worker", at(2, 1) + Duration::hours(2))
        .unwrap();
    assert_eq!(captured.hold.captured, 50);
    assert_eq!((wallet.balance().total, wallet.balance().held), (1050, 0));
    check(&wallet);
}
