//! The state machine's rules, one change at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::TimeZone;

use super::*;
use crate::ceiling::BALANCE_MAX;
use crate::spend::{SpendAnswer, SpendDecision};

pub(super) fn at(month: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, month, day, 0, 0, 0).single().unwrap()
}

pub(super) fn grant(
    id: i64,
    source: GrantSource,
    remaining: i64,
    expires_at: Option<DateTime<Utc>>,
) -> Grant {
    Grant {
        id,
        source,
        granted: remaining,
        remaining,
        held: 0,
        expires_at,
        period_start_at: None,
        purchase: None,
    }
}

/// A PRO wallet in its January period: 100 allocation credits left of
/// 1,000 (grant 1), a bonus of 5 expiring mid-January (grant 2), a
/// pack of 50 (grant 3).
pub(super) fn pro_wallet() -> WalletState {
    let mut allocation = grant(1, GrantSource::Allocation, 100, Some(at(2, 1)));
    allocation.granted = 1000;
    allocation.period_start_at = Some(at(1, 1));
    WalletState {
        head: Head {
            id: 7,
            workspace_id: "ws".to_owned(),
            balance: 155,
            held: 0,
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
            time_zone: "UTC".to_owned(),
            budget_version: 0,
            auto_top_up_threshold: None,
            subscription_id: None,
            standing_until: None,
        },
        grants: vec![
            allocation,
            grant(2, GrantSource::Adjustment, 5, Some(at(1, 15))),
            grant(3, GrantSource::Purchase, 50, None),
        ],
        budgets: Vec::new(),
        counters: Vec::new(),
        auto_top_up: None,
        holds: Vec::new(),
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
        agent_id: None,
        hold: None,
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
    let spent = wallet.spend::<()>(None, spend("k1"), 1, at(2, 3));
    assert!(matches!(
        spent.answer,
        SpendAnswer::Fresh(SpendDecision::Charge(_))
    ));
    assert_eq!(spent.row, Some(3));
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
        let spent = wallet.spend::<()>(None, spend(key), 30, at(1, 20));
        assert!(spent.row.is_some());
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
        agent_id: None,
        created_at: at(1, 5),
    };
    let row = wallet
        .reverse(
            &original,
            Entry::by(LedgerKind::Reversal, "op", "mistake".to_owned()),
            at(1, 10),
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

mod budgets {
    use super::*;
    use crate::budget::{Budget, BudgetMode, BudgetTarget, BudgetWindow, Counter};

    fn budget(id: i64, name: &str, applies_to: BudgetTarget, limit: i64, mode: BudgetMode) -> Budget {
        Budget {
            id,
            name: name.to_owned(),
            applies_to,
            agent_id: None,
            action: None,
            window: BudgetWindow::Day,
            limit,
            mode,
            counting_since: at(1, 1),
            created_at: at(1, 1),
            updated_at: at(1, 1),
        }
    }

    fn by(agent: &str, key: &str) -> Entry {
        Entry {
            agent_id: Some(agent.to_owned()),
            ..spend(key)
        }
    }

    fn wallet_with(budgets: Vec<Budget>, counters: Vec<Counter>) -> Wallet {
        let mut wallet = Wallet::new(pro_wallet());
        wallet.load_budgets(budgets, counters);
        wallet
    }

    /// A HARD budget refuses what would go over, before the balance is
    /// looked at, and its window's event comes once; each agent has its
    /// own counter.
    #[test]
    fn a_hard_budget_refuses_past_its_limit_per_agent() {
        let now = at(1, 10) + chrono::Duration::hours(3);
        let mut wallet = wallet_with(
            vec![budget(1, "each", BudgetTarget::EachAgent, 2, BudgetMode::Hard)],
            Vec::new(),
        );
        let outcomes: Vec<bool> = (0..4)
            .map(|n| {
                wallet
                    .spend::<()>(None, by("ana", &format!("a{n}")), 1, now)
                    .row
                    .is_some()
            })
            .collect();
        assert_eq!(outcomes, [true, true, false, false]);
        let refused = wallet.spend::<()>(None, by("ana", "a9"), 1, now);
        let SpendAnswer::OverBudget(usage) = refused.answer else {
            panic!("refused by the budget")
        };
        assert_eq!((usage.used, usage.remaining), (2, 0));
        assert_eq!(usage.agent_id.as_deref(), Some("ana"));
        assert_eq!(usage.resets_at, Some(at(1, 11)));
        assert!(wallet.spend::<()>(None, by("bob", "b1"), 1, now).row.is_some());

        let change = wallet.finish(now);
        assert_eq!(change.rows.len(), 3);
        assert_eq!(change.exhausted.len(), 1, "once per window");
        assert_eq!(change.exhausted[0].agent_id.as_deref(), Some("ana"));
        let mut used: Vec<(String, i64)> = change
            .counters
            .iter()
            .map(|counter| (counter.subject.clone(), counter.used))
            .collect();
        used.sort();
        assert_eq!(used, [("ana".to_owned(), 2), ("bob".to_owned(), 1)]);
    }

    /// BUDGET_EXCEEDED wins over an empty pool; a spend with no agent is
    /// not counted by EACH_AGENT budgets.
    #[test]
    fn budget_exceeded_wins_over_an_empty_pool() {
        let mut state = pro_wallet();
        state.grants.clear();
        state.head.balance = 0;
        let mut wallet = Wallet::new(state);
        wallet.load_budgets(
            vec![budget(1, "none", BudgetTarget::EachAgent, 0, BudgetMode::Hard)],
            Vec::new(),
        );
        let spent = wallet.spend::<()>(None, by("ana", "k"), 1, at(1, 10));
        assert!(matches!(spent.answer, SpendAnswer::OverBudget(_)));
        // Refused with no counter: told once, naming the agent.
        assert_eq!(wallet.exhausted.len(), 1);
        assert_eq!(wallet.exhausted[0].agent_id.as_deref(), Some("ana"));
        assert_eq!(wallet.exhausted[0].subject, None);
        let spent = wallet.spend::<()>(None, spend("k2"), 1, at(1, 10));
        assert!(matches!(
            spent.answer,
            SpendAnswer::Fresh(SpendDecision::Insufficient { .. })
        ));
        let change = wallet.finish(at(1, 10));
        assert!(change.rows.is_empty());
        assert_eq!(change.exhausted.len(), 1, "told, once per budget window");
        assert_eq!(change.exhausted[0].subject, None);
        // An agent without a counter is refused without writing one.
        assert!(change.counters.is_empty());
        // The low-balance alert moves the head; the budget version stays.
        assert_eq!(change.head.map(|head| head.budget_version), Some(0));
    }

    /// A SOFT budget charges and warns once over; a counter of an older
    /// window counts as 0.
    #[test]
    fn soft_budgets_warn_and_windows_roll() {
        let yesterday = Counter {
            budget_id: 1,
            subject: String::new(),
            window_start: at(1, 9),
            used: 50,
            exhausted_at: Some(at(1, 9)),
        };
        let mut wallet = wallet_with(
            vec![budget(1, "soft", BudgetTarget::Workspace, 1, BudgetMode::Soft)],
            vec![yesterday],
        );
        let first = wallet.spend::<()>(None, spend("a"), 1, at(1, 10));
        assert!(first.row.is_some() && first.warnings.is_empty());
        let second = wallet.spend::<()>(None, spend("b"), 1, at(1, 10));
        assert!(second.row.is_some());
        assert_eq!(second.warnings.len(), 1);
        assert_eq!(second.warnings[0].used, 2);
        let change = wallet.finish(at(1, 10));
        assert_eq!(change.counters[0].window_start, at(1, 10));
        assert_eq!(change.counters[0].used, 2);
        assert_eq!(change.exhausted.len(), 1, "a new window exhausts again");
    }

    /// A reversal gives back to windows still current, never below zero,
    /// and not to a budget set after the spend.
    #[test]
    fn a_reversal_gives_back_to_current_windows() {
        let now = at(1, 10) + chrono::Duration::hours(5);
        let counter = |budget_id: i64| Counter {
            budget_id,
            subject: "ana".to_owned(),
            window_start: at(1, 10),
            used: 3,
            exhausted_at: None,
        };
        let mut later = budget(2, "later", BudgetTarget::EachAgent, 9, BudgetMode::Hard);
        later.counting_since = at(1, 10) + chrono::Duration::hours(2);
        let mut wallet = wallet_with(
            vec![
                budget(1, "each", BudgetTarget::EachAgent, 9, BudgetMode::Hard),
                later,
            ],
            vec![counter(1), counter(2)],
        );
        let original = |created_at| Reversed {
            id: 40,
            kind: LedgerKind::Spend,
            action: Some(Action::Triage),
            moves: vec![(3, -1)],
            is_reversed: false,
            agent_id: Some("ana".to_owned()),
            created_at,
        };
        let entry = || Entry::by(LedgerKind::Reversal, "op", "mistake".to_owned());
        wallet
            .reverse(&original(at(1, 10) + chrono::Duration::hours(1)), entry(), now)
            .unwrap();
        let change = wallet.finish(now);
        let used: Vec<(i64, i64)> = change
            .counters
            .iter()
            .map(|counter| (counter.budget_id, counter.used))
            .collect();
        assert_eq!(used, [(1, 2)], "the budget set after the spend did not count it");
        assert_eq!(change.rows[0].entry.agent_id.as_deref(), Some("ana"));

        let mut wallet = wallet_with(
            vec![budget(1, "each", BudgetTarget::EachAgent, 9, BudgetMode::Hard)],
            vec![counter(1)],
        );
        wallet.reverse(&original(at(1, 9)), entry(), now).unwrap();
        assert!(
            wallet.finish(now).counters.is_empty(),
            "yesterday's spend is not given back to today"
        );
    }
}

/// PRO with automatic top-up below 150, `max_per_period` requests a period.
fn topping_up(max_per_period: i32) -> Wallet {
    let mut wallet = Wallet::new(pro_wallet());
    wallet.set_auto_top_up(AutoTopUpSettings {
        enabled: true,
        threshold: 150,
        pack: "PACK_100".to_owned(),
        max_per_period,
    });
    wallet
}

fn spend_one(wallet: &mut Wallet, key: &str) {
    let spent = wallet.spend(None::<(&str, ())>, spend(key), 1, at(1, 20));
    assert!(spent.row.is_some(), "{key} charged");
}

fn requested(change: &Change) -> Vec<(String, i64)> {
    change
        .notices
        .iter()
        .filter_map(|notice| match notice {
            Notice::TopUpRequested {
                request_id, balance, ..
            } => Some((request_id.clone(), balance.total)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_change_below_the_threshold_opens_one_request_with_the_id_offered() {
    let mut wallet = topping_up(2);
    assert_eq!(
        wallet.head().auto_top_up_threshold,
        Some(150),
        "mirrored while on"
    );
    assert!(wallet.may_request_top_up());
    // No id offered: nothing opens (the rules draw no randomness).
    for key in ["a", "b", "c", "d", "e", "f"] {
        spend_one(&mut wallet, key);
    }
    wallet.check_auto_top_up(at(1, 20));
    assert_eq!(
        wallet
            .state
            .auto_top_up
            .as_ref()
            .and_then(|auto| auto.open_request_id.clone()),
        None
    );
    wallet.offer_request_id("atr_1".to_owned());
    wallet.check_auto_top_up(at(1, 20));
    wallet.offer_request_id("atr_2".to_owned());
    spend_one(&mut wallet, "g");
    wallet.check_auto_top_up(at(1, 20));
    let change = wallet.finish(at(1, 20));
    assert_eq!(
        requested(&change),
        [("atr_1".to_owned(), 149)],
        "one request, at the balance it was made"
    );
    let auto = change.auto_top_up.expect("the request is written");
    assert_eq!(auto.open_request_id.as_deref(), Some("atr_1"));
    assert_eq!(auto.requests_this_period, 1);
}

#[test]
fn the_period_caps_requests_and_a_new_period_counts_afresh() {
    let mut state = pro_wallet();
    let mut wallet = Wallet::new(state.clone());
    wallet.set_auto_top_up(AutoTopUpSettings {
        enabled: true,
        threshold: 200,
        pack: "PACK_100".to_owned(),
        max_per_period: 2,
    });
    let mut auto = wallet.state.auto_top_up.clone().expect("set");
    auto.requests_this_period = 2;
    auto.period_key = crate::auto_top_up::period_key(state.head.period_start);
    state.auto_top_up = Some(auto.clone());
    state.head.auto_top_up_threshold = Some(200);
    let mut capped = Wallet::new(state.clone());
    capped.offer_request_id("atr_3".to_owned());
    spend_one(&mut capped, "a");
    assert!(
        requested(&capped.finish(at(1, 20))).is_empty(),
        "two this period already"
    );
    auto.period_key = "2025-12-01T00:00:00Z".to_owned();
    state.auto_top_up = Some(auto);
    let mut next = Wallet::new(state);
    next.offer_request_id("atr_4".to_owned());
    spend_one(&mut next, "a");
    let change = next.finish(at(1, 20));
    assert_eq!(requested(&change).len(), 1, "an earlier period's count is none");
    assert_eq!(change.auto_top_up.map(|auto| auto.requests_this_period), Some(1));
}

#[test]
fn the_third_failure_in_a_row_switches_it_off_and_a_payment_forgets_failures() {
    let mut wallet = topping_up(10);
    for key in ["a", "b", "c", "d", "e", "f"] {
        spend_one(&mut wallet, key);
    }
    for (round, paid) in [(1, false), (2, true), (3, false), (4, false)] {
        let id = format!("atr_{round}");
        wallet.offer_request_id(id.clone());
        spend_one(&mut wallet, &format!("k{round}"));
        wallet.check_auto_top_up(at(1, 20));
        assert_eq!(wallet.close_top_up_request("atr_other", paid), Closed::NotOpen);
        let closed = wallet.close_top_up_request(&id, paid);
        assert_eq!(
            closed,
            match (round, paid) {
                (_, true) => Closed::Paid,
                (1, _) => Closed::Failed {
                    failures: 1,
                    disabled: false
                },
                (3, _) => Closed::Failed {
                    failures: 1,
                    disabled: false
                },
                _ => Closed::Failed {
                    failures: 2,
                    disabled: false
                },
            },
            "round {round}"
        );
    }
    wallet.offer_request_id("atr_5".to_owned());
    spend_one(&mut wallet, "k5");
    wallet.check_auto_top_up(at(1, 20));
    assert_eq!(
        wallet.close_top_up_request("atr_5", false),
        Closed::Failed {
            failures: 3,
            disabled: true
        }
    );
    assert_eq!(
        wallet.head().auto_top_up_threshold,
        None,
        "the mirror goes with it"
    );
    assert!(!wallet.may_request_top_up());
    let change = wallet.finish(at(1, 20));
    assert!(
        change
            .notices
            .iter()
            .any(|notice| matches!(notice, Notice::TopUpDisabled { failures: 3, .. }))
    );
}

/// What changes tell other systems (`crate::outbox::events_of_change`),
/// built from real changes: each event's type, data and once-key.
mod told {
    use super::*;
    use crate::event::EventType;
    use crate::outbox::{event_id, events_of_change, runway_low_key, trial_ending_key};

    fn kinds(events: &[crate::event::NewEvent]) -> Vec<EventType> {
        events.iter().map(|event| event.event_type).collect()
    }

    /// A wallet at sequence 9 holding `credits` in one pack, no threshold.
    fn holding(credits: i64) -> WalletState {
        let mut state = pro_wallet();
        state.grants = vec![grant(3, GrantSource::Purchase, credits, None)];
        state.head.balance = credits;
        state.head.threshold = None;
        state
    }

    fn top_up(wallet: &mut Wallet, credits: i64, key: &str) -> usize {
        wallet
            .top_up(
                credits,
                Purchase {
                    pack: "PACK_100".to_owned(),
                    price_cents: 500,
                    currency: "usd".to_owned(),
                },
                Entry {
                    kind: LedgerKind::TopUp,
                    key: Some(KeyBinding {
                        key: key.to_owned(),
                        fingerprint: "PACK_100".to_owned(),
                    }),
                    action: None,
                    ..spend(key)
                },
            )
            .unwrap()
    }

    #[test]
    fn a_top_up_tells_its_pack_reference_and_balance() {
        let mut wallet = Wallet::new(holding(7));
        top_up(&mut wallet, 100, "pay-1");
        let change = wallet.finish(at(1, 10));
        let events = events_of_change(&change, &[71]);
        assert_eq!(kinds(&events), [EventType::TopUpApplied]);
        assert_eq!(
            events[0].data,
            serde_json::json!({
                "transactionId": "71", "sequence": 10, "kind": "TOP_UP", "amount": 100,
                "balance": {"total": 107, "allocation": 0, "purchased": 107, "bonus": 0, "available": 107, "held": 0},
                "pack": "PACK_100", "paymentReference": "pay-1",
            })
        );
        assert_eq!(events[0].workspace_id, "ws");
        assert_eq!(events[0].once_key, None);
    }

    #[test]
    fn reaching_zero_pauses_and_leaving_it_resumes() {
        let mut wallet = Wallet::new(holding(2));
        assert!(wallet.spend::<()>(None, spend("k1"), 1, at(1, 10)).row.is_some());
        assert!(wallet.spend::<()>(None, spend("k2"), 1, at(1, 10)).row.is_some());
        let change = wallet.finish(at(1, 10));
        let events = events_of_change(&change, &[40, 41]);
        assert_eq!(kinds(&events), [EventType::AiPaused]);
        assert_eq!(
            events[0].data,
            serde_json::json!({
                "transactionId": "41", "sequence": 11,
                "balance": {"total": 0, "allocation": 0, "purchased": 0, "bonus": 0, "available": 0, "held": 0},
            })
        );

        // Still above zero: nothing; at zero from the start: resumes.
        let mut wallet = Wallet::new(holding(3));
        assert!(wallet.spend::<()>(None, spend("k1"), 1, at(1, 10)).row.is_some());
        assert!(events_of_change(&wallet.finish(at(1, 10)), &[1]).is_empty());
        let mut wallet = Wallet::new(holding(0));
        top_up(&mut wallet, 5, "pay-2");
        let events = events_of_change(&wallet.finish(at(1, 10)), &[50]);
        assert_eq!(kinds(&events), [EventType::TopUpApplied, EventType::AiResumed]);
        assert_eq!(events[1].data["sequence"], 10);

        // Down to zero and back in one change tells neither.
        let mut wallet = Wallet::new(holding(1));
        assert!(wallet.spend::<()>(None, spend("k1"), 1, at(1, 10)).row.is_some());
        top_up(&mut wallet, 5, "pay-3");
        let events = events_of_change(&wallet.finish(at(1, 10)), &[60, 61]);
        assert_eq!(kinds(&events), [EventType::TopUpApplied]);
    }

    #[test]
    fn a_new_wallet_s_first_grant_neither_resumes_nor_renews() {
        let mut state = holding(0);
        state.head.last_sequence = 0;
        state.grants.clear();
        state.head.period_start = None;
        state.head.period_end = None;
        state.head.anchor = None;
        let mut wallet = Wallet::new(state);
        wallet.grant_trial(300, at(1, 8), "operator").unwrap();
        let change = wallet.finish(at(1, 1));
        assert_eq!(change.rows[0].sequence, 1);
        assert!(
            events_of_change(&change, &[1]).is_empty(),
            "the trial opens the wallet"
        );
    }

    #[test]
    fn a_renewal_tells_its_grant_once() {
        let mut wallet = Wallet::new(pro_wallet());
        wallet.settle(|_| 300, at(2, 3));
        let change = wallet.finish(at(2, 3));
        assert_eq!(change.renewals, 1);
        let events = events_of_change(&change, &[10, 11, 12]);
        let renewed: Vec<_> = events
            .iter()
            .filter(|event| event.event_type == EventType::PeriodRenewed)
            .collect();
        assert_eq!(renewed.len(), 1, "{events:?}");
        assert_eq!(renewed[0].data["kind"], "GRANT");
        assert_eq!(renewed[0].data["amount"], 300);
        assert_eq!(renewed[0].data["transactionId"], "12");
    }

    #[test]
    fn a_budget_used_up_is_told_with_its_once_key() {
        use crate::budget::{Budget, BudgetMode, BudgetTarget, BudgetWindow};
        let now = at(1, 10) + chrono::Duration::hours(3);
        let mut wallet = Wallet::new(pro_wallet());
        wallet.load_budgets(
            vec![Budget {
                id: 4,
                name: "cap".to_owned(),
                applies_to: BudgetTarget::Workspace,
                agent_id: None,
                action: None,
                window: BudgetWindow::Day,
                limit: 1,
                mode: BudgetMode::Hard,
                counting_since: at(1, 1),
                created_at: at(1, 1),
                updated_at: at(1, 1),
            }],
            Vec::new(),
        );
        assert!(wallet.spend::<()>(None, spend("k1"), 1, now).row.is_some());
        assert!(wallet.spend::<()>(None, spend("k2"), 1, now).row.is_none());
        let change = wallet.finish(now);
        let events = events_of_change(&change, &[80]);
        let told: Vec<_> = events
            .iter()
            .filter(|event| event.event_type == EventType::BudgetExceeded)
            .collect();
        assert_eq!(told.len(), 1, "{events:?}");
        assert_eq!(
            told[0].once_key.as_deref(),
            Some(format!("budget_exceeded:4::{}", at(1, 10).timestamp()).as_str()),
            "a workspace budget's subject is empty"
        );
        assert_eq!(told[0].data["budget"], "cap");
    }

    #[test]
    fn up_from_zero_and_back_to_zero_tells_neither() {
        let mut wallet = Wallet::new(holding(0));
        top_up(&mut wallet, 2, "pay-4");
        assert!(wallet.spend::<()>(None, spend("k1"), 2, at(1, 10)).row.is_some());
        let events = events_of_change(&wallet.finish(at(1, 10)), &[90, 91]);
        assert_eq!(kinds(&events), [EventType::TopUpApplied]);
    }

    #[test]
    fn notices_carry_their_times_as_the_events_write_them() {
        let mut change = Wallet::new(pro_wallet()).finish(at(1, 10));
        change.notices.push(Notice::PastDue {
            subscription_id: "sub_1".to_owned(),
            grace_ends_at: at(1, 13),
        });
        let events = events_of_change(&change, &[]);
        assert_eq!(kinds(&events), [EventType::SubscriptionPastDue]);
        assert_eq!(
            events[0].data,
            serde_json::json!({ "subscriptionId": "sub_1", "graceEndsAt": "2026-01-13T00:00:00.000000Z" })
        );
    }

    #[test]
    fn once_keys_and_ids_have_their_documented_shapes() {
        assert_eq!(event_id(7), "evt_7");
        assert_eq!(trial_ending_key("ws-1"), "trial_ending:ws-1");
        assert_eq!(
            runway_low_key("ws-1", at(2, 1)),
            format!("runway_low:ws-1:{}", at(2, 1).timestamp())
        );
    }
}

/// Setting and removing budgets: every change of what a spend reads moves
/// the head's budget version; a removal names a budget that exists.
#[test]
fn setting_and_removing_budgets_move_the_budget_version() {
    use crate::budget::{BudgetInput, BudgetMode, BudgetTarget, BudgetWindow, BudgetWrite};
    let mut wallet = Wallet::new(pro_wallet());
    let version = wallet.head().budget_version;
    let input = BudgetInput {
        name: "cap".to_owned(),
        applies_to: BudgetTarget::Workspace,
        agent_id: None,
        action: None,
        window: BudgetWindow::Day,
        limit: 3,
        mode: BudgetMode::Hard,
    };
    let saved = wallet.set_budget(&[], input, at(1, 10)).unwrap();
    assert_eq!(wallet.head().budget_version, version + 1);
    let mut stored = saved.clone();
    stored.id = 12;
    assert!(!wallet.remove_budget(std::slice::from_ref(&stored), "other"));
    assert_eq!(
        wallet.head().budget_version,
        version + 1,
        "nothing removed, nothing moved"
    );
    assert!(wallet.remove_budget(std::slice::from_ref(&stored), "cap"));
    assert_eq!(wallet.head().budget_version, version + 2);
    let change = wallet.finish(at(1, 10));
    assert_eq!(
        change.budget_writes,
        [
            BudgetWrite::Save {
                budget: saved,
                restart: false
            },
            BudgetWrite::Remove { id: 12 }
        ]
    );
}
