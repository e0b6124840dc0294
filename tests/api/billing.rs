//! Credits only when paid: plans from Stripe subscriptions through
//! `/webhooks/stripe` (a lifecycle end to end, its batches of events in any
//! order, one event on two instances at once), and payments whose refunds,
//! disputes and amounts arrive in any order. Events are shaped as Stripe's
//! API sends them (`stripe_events`).

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{STRIPE_PRICES, TestApp};
use crate::payments::{acknowledged, checkout, deliver, refunded};
use crate::stripe_events::{self, event};

fn price_of(plan: &str) -> &'static str {
    STRIPE_PRICES
        .iter()
        .find(|(_, code)| *code == plan)
        .map(|(price, _)| *price)
        .expect("a priced plan")
}

fn at(month: u32, day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, month, day, hour, 0, 0).unwrap()
}

/// A subscription event of `sub` at `created` (each argument one field
/// of the object the lifecycle moves).
#[allow(clippy::too_many_arguments)]
fn sub_event(
    id: &str,
    kind: &str,
    created: DateTime<Utc>,
    sub: &str,
    named: Option<&str>,
    plan: &str,
    status: &str,
    period: (DateTime<Utc>, DateTime<Utc>),
    anchor: DateTime<Utc>,
) -> String {
    event(
        id,
        kind,
        created.timestamp(),
        stripe_events::subscription(
            sub,
            named,
            price_of(plan),
            status,
            (period.0.timestamp(), period.1.timestamp()),
            anchor.timestamp(),
        ),
    )
}

/// The ledger as (kind, amount, reference), oldest first.
async fn ledger(app: &TestApp, workspace: &str) -> Vec<(String, i64, String)> {
    let mut rows: Vec<(String, i64, String)> = app
        .transactions(workspace)
        .await
        .iter()
        .map(|row| {
            (
                row["kind"].as_str().unwrap().to_owned(),
                row["amount"].as_i64().unwrap(),
                row["reference"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    rows.reverse();
    rows
}

/// Grant ids in EXPIRE references are the store's: the source only.
fn source_only(rows: Vec<(String, i64, String)>) -> Vec<(String, i64, String)> {
    rows.into_iter()
        .map(|(kind, amount, reference)| {
            let reference = if kind == "EXPIRE" {
                reference.split(':').next().unwrap_or_default().to_owned()
            } else {
                reference
            };
            (kind, amount, reference)
        })
        .collect()
}

async fn wallet(app: &TestApp, workspace: &str) -> Value {
    app.gql(
        Some(&app.operator()),
        "query($ws: ID) { wallet(workspaceId: $ws) { plan pendingPlan balance { total allocation purchased bonus }
           currentPeriod { start end } subscription { id status currentPeriodEnd cancelAtPeriodEnd graceEndsAt } } }",
        json!({ "ws": workspace }),
    )
    .await
    .data()["wallet"]
        .clone()
}

fn rows(expected: &[(&str, i64, &str)]) -> Vec<(String, i64, String)> {
    expected
        .iter()
        .map(|(kind, amount, reference)| ((*kind).to_owned(), *amount, (*reference).to_owned()))
        .collect()
}

async fn outbox_types(app: &TestApp, workspace: &str) -> Vec<String> {
    let db = app.db();
    use sea_orm::ConnectionTrait;
    db.query_all_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        format!("SELECT event_type FROM outbox_event WHERE workspace_id = '{workspace}' ORDER BY id"),
    ))
    .await
    .unwrap()
    .iter()
    .map(|row| row.try_get::<String>("", "event_type").unwrap())
    .filter(|kind| kind.starts_with("credits.plan") || kind.starts_with("credits.subscription"))
    .collect()
}

/// The lifecycle, step by step, each step a batch of events delivered in
/// `order` (a permutation of the batch's indexes, per step).
struct Lifecycle {
    steps: Vec<(DateTime<Utc>, Vec<String>, bool)>,
}

const WS: &str = "ws-sub";
const SUB: &str = "sub_1QLifecycle";

fn lifecycle() -> Lifecycle {
    let t0 = at(1, 31, 10);
    let t1 = at(2, 7, 10);
    let mar = at(3, 7, 10);
    let apr = at(4, 7, 10);
    let may = at(5, 7, 10);
    let past_due_at = apr + Duration::hours(1);
    let ended = past_due_at + Duration::hours(74);
    let again = may + Duration::days(2);
    let steps = vec![
        // Checkout in subscription mode; the subscription (no metadata) in
        // a trial of 7 days: PRO's allocation for the trial's period.
        (
            t0,
            vec![
                event(
                    "evt_1_session",
                    "checkout.session.completed",
                    t0.timestamp(),
                    stripe_events::subscription_session(WS, SUB),
                ),
                sub_event(
                    "evt_1_created",
                    "customer.subscription.created",
                    t0,
                    SUB,
                    None,
                    "PRO",
                    "trialing",
                    (t0, t1),
                    t1,
                ),
            ],
            false,
        ),
        // The trial ends: active, the first paid period.
        (
            t1,
            vec![sub_event(
                "evt_2_active",
                "customer.subscription.updated",
                t1,
                SUB,
                None,
                "PRO",
                "active",
                (t1, mar),
                t1,
            )],
            false,
        ),
        // Upgrade to BUSINESS at once, then a downgrade to STARTER for the
        // next reset.
        (
            at(2, 10, 10),
            vec![sub_event(
                "evt_3_business",
                "customer.subscription.updated",
                at(2, 10, 10),
                SUB,
                None,
                "BUSINESS",
                "active",
                (t1, mar),
                t1,
            )],
            false,
        ),
        (
            at(2, 15, 10),
            vec![sub_event(
                "evt_4_starter",
                "customer.subscription.updated",
                at(2, 15, 10),
                SUB,
                None,
                "STARTER",
                "active",
                (t1, mar),
                t1,
            )],
            false,
        ),
        // The cron renews on STARTER; Stripe's renewal event agrees.
        (
            mar,
            vec![sub_event(
                "evt_5_renewed",
                "customer.subscription.updated",
                mar,
                SUB,
                None,
                "STARTER",
                "active",
                (mar, apr),
                t1,
            )],
            true,
        ),
        // Renewed by the cron; the invoice fails: past due, with grace.
        (
            past_due_at,
            vec![
                // The invoice's own event changes nothing: its subscription's does.
                event(
                    "evt_6_invoice_failed",
                    "invoice.payment_failed",
                    past_due_at.timestamp(),
                    stripe_events::invoice(
                        "in_1QApril",
                        SUB,
                        2999,
                        (apr.timestamp(), may.timestamp()),
                        false,
                    ),
                ),
                sub_event(
                    "evt_6_past_due",
                    "customer.subscription.updated",
                    past_due_at,
                    SUB,
                    None,
                    "STARTER",
                    "past_due",
                    (apr, may),
                    t1,
                ),
                // An older event, delayed by Stripe's retries, arriving
                // after the newer one: it changes nothing.
                sub_event(
                    "evt_5_late",
                    "customer.subscription.updated",
                    mar + Duration::hours(1),
                    SUB,
                    None,
                    "STARTER",
                    "active",
                    (mar, apr),
                    t1,
                ),
            ],
            true,
        ),
        // The grace runs out (the sweep ends the plan); Stripe cancels.
        (ended, vec![], true),
        (
            ended + Duration::hours(1),
            vec![sub_event(
                "evt_8_canceled",
                "customer.subscription.deleted",
                ended + Duration::hours(1),
                SUB,
                None,
                "STARTER",
                "canceled",
                (apr, may),
                t1,
            )],
            false,
        ),
        // A month on, the scheduler renews nothing: no paid plan.
        (may + Duration::days(1), vec![], true),
        // A new subscription (named in its metadata) starts PRO again.
        (
            again,
            vec![sub_event(
                "evt_9_new",
                "customer.subscription.created",
                again,
                "sub_1QAgain",
                Some(WS),
                "PRO",
                "active",
                (again, again + Duration::days(30)),
                again,
            )],
            false,
        ),
    ];
    Lifecycle { steps }
}

/// Runs the lifecycle with each step's batch in the order `shuffle` picks;
/// returns the ledger, the wallet and the plan events at the end.
async fn run_lifecycle(
    app: &TestApp,
    mut shuffle: impl FnMut(usize, &mut Vec<String>),
) -> (Vec<(String, i64, String)>, Value, Vec<String>) {
    app.create_workspace(WS).await;
    let service = app.token("service", Some(WS));
    for (index, (time, mut batch, sweep)) in lifecycle().steps.into_iter().enumerate() {
        app.clock.set(time);
        if sweep {
            app.ledger.roll_over_periods(time).await.unwrap();
        }
        shuffle(index, &mut batch);
        for body in &batch {
            let (status, answer) = deliver(app, body).await;
            assert_eq!(status, 200, "step {index}: {answer}");
        }
        if index == 1 {
            app.spend_ok(&service, "TRIAGE", "used-one").await;
        }
    }
    (
        ledger(app, WS).await,
        wallet(app, WS).await,
        outbox_types(app, WS).await,
    )
}

/// A step's appended rows, the plan after it, the subscription's status.
type Expected = (Vec<(&'static str, i64, &'static str)>, &'static str, Value);
/// An order of each step's batch.
type Order = Box<dyn Fn(usize, &mut Vec<String>) + Send>;

async fn a_subscription_lifecycle_end_to_end(app: TestApp) {
    app.create_workspace(WS).await;
    let service = app.token("service", Some(WS));
    let steps = lifecycle().steps;
    // The trial's own GRANT opens the wallet before the first step.
    let mut seen = ledger(&app, WS).await.len();
    // What each step appends to the ledger, and the wallet after it.
    let expected: Vec<Expected> = vec![
        (
            vec![("GRANT", 1000, "subscription:PRO:2026-01-31")],
            "PRO",
            json!("TRIALING"),
        ),
        (
            vec![
                ("EXPIRE", -300, "TRIAL:1"),
                ("EXPIRE", -1000, "ALLOCATION:2"),
                ("GRANT", 1000, "renewal:PRO:2026-02-07"),
                ("SPEND", -1, ""),
            ],
            "PRO",
            json!("ACTIVE"),
        ),
        (
            vec![("GRANT", 1500, "plan:BUSINESS")],
            "BUSINESS",
            json!("ACTIVE"),
        ),
        (vec![], "BUSINESS", json!("ACTIVE")),
        (
            vec![
                ("EXPIRE", -2499, "ALLOCATION:3"),
                ("GRANT", 250, "renewal:STARTER:2026-03-07"),
            ],
            "STARTER",
            json!("ACTIVE"),
        ),
        (
            vec![
                ("EXPIRE", -250, "ALLOCATION:4"),
                ("GRANT", 250, "renewal:STARTER:2026-04-07"),
            ],
            "STARTER",
            json!("PAST_DUE"),
        ),
        (
            vec![("EXPIRE", -250, "ALLOCATION:5")],
            "STARTER",
            json!("PAST_DUE"),
        ),
        (vec![], "STARTER", json!("CANCELED")),
        (vec![], "STARTER", json!("CANCELED")),
        (
            vec![("GRANT", 1000, "subscription:PRO:2026-05-09")],
            "PRO",
            json!("ACTIVE"),
        ),
    ];
    for (index, ((time, batch, sweep), (mut appended, plan, status))) in
        steps.into_iter().zip(expected).enumerate()
    {
        app.clock.set(time);
        if sweep {
            app.ledger.roll_over_periods(time).await.unwrap();
        }
        for body in &batch {
            let (status, answer) = deliver(&app, body).await;
            assert_eq!(status, 200, "step {index}: {answer}");
        }
        if index == 1 {
            app.spend_ok(&service, "TRIAGE", "used-one").await;
        }
        if index == 5 {
            // A pack bought while past due: it outlives the paid plan.
            deliver(&app, &checkout("evt_pack", WS, "PACK_100", "pi_pack", "paid")).await;
            appended.push(("TOP_UP", 100, "pi_pack"));
        }
        let now = ledger(&app, WS).await;
        let tail = source_only(now[seen..].to_vec());
        let appended_rows = source_only(rows(&appended));
        assert_eq!(tail, appended_rows, "step {index}: the rows it appended");
        seen = now.len();
        let wallet = wallet(&app, WS).await;
        assert_eq!(wallet["plan"], plan, "step {index}: {wallet}");
        assert_eq!(wallet["subscription"]["status"], status, "step {index}: {wallet}");
        match index {
            3 => assert_eq!(wallet["pendingPlan"], "STARTER", "{wallet}"),
            5 => assert!(wallet["subscription"]["graceEndsAt"].is_string(), "{wallet}"),
            6..=8 => {
                assert_eq!(
                    wallet["currentPeriod"],
                    Value::Null,
                    "the paid plan ended: {wallet}"
                );
                assert_eq!(wallet["balance"]["allocation"], 0, "{wallet}");
                assert_eq!(wallet["balance"]["purchased"], 100, "packs stay: {wallet}");
            }
            9 => assert_eq!(wallet["subscription"]["id"], "sub_1QAgain", "{wallet}"),
            _ => {}
        }
    }
    assert_eq!(
        outbox_types(&app, WS).await,
        [
            "credits.plan_changed",
            "credits.plan_changed",
            "credits.plan_changed",
            "credits.subscription_past_due",
            "credits.subscription_ended",
            "credits.plan_changed",
        ]
    );
    // The same events again, however often: nothing more.
    let before = ledger(&app, WS).await;
    for (_, batch, _) in lifecycle().steps {
        for body in &batch {
            let answer = acknowledged(deliver(&app, body).await);
            assert!(
                ["DUPLICATE", "STALE", "IGNORED"].contains(&answer.as_str()),
                "{answer}"
            );
        }
    }
    assert_eq!(ledger(&app, WS).await, before);
    app.verify_ledger().await;
}

/// Each step's batch in a fixed set of orders, and one random order per
/// run (its seed printed): the same ledger, wallet and events as in order.
async fn lifecycle_batches_in_any_order_end_the_same(app: TestApp) {
    let in_order = run_lifecycle(&app, |_, _| {}).await;
    let seed: u64 = crate::helpers::seed(rand_seed());
    println!("lifecycle shuffle seed: {seed} (set SEED to replay)");
    let mut state = seed;
    let orders: Vec<Order> = vec![
        Box::new(|_, batch: &mut Vec<String>| batch.reverse()),
        Box::new(|index, batch: &mut Vec<String>| {
            if index % 2 == 0 {
                batch.reverse();
            }
        }),
    ];
    for (round, order) in orders.into_iter().enumerate() {
        let sibling = TestApp::spawn(app.backend).await;
        let run = run_lifecycle(&sibling, |index, batch| order(index, batch)).await;
        assert_eq!(run, in_order, "fixed order {round}");
        sibling.verify_ledger().await;
        sibling.teardown().await;
    }
    let sibling = TestApp::spawn(app.backend).await;
    let run = run_lifecycle(&sibling, |_, batch| {
        for i in (1..batch.len()).rev() {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let j = (state >> 33) as usize % (i + 1);
            batch.swap(i, j);
        }
    })
    .await;
    assert_eq!(run, in_order, "random order, seed {seed}");
    sibling.verify_ledger().await;
    sibling.teardown().await;
}

/// Every event of the lifecycle delivered at once, after an outage, in
/// order, in fixed orders and in a random one (its seed printed): the same
/// ledger and wallet. The first subscription's periods are over by then,
/// and it ended: it grants nothing in any order; the second starts once.
async fn a_lifecycle_backlog_in_any_order_ends_the_same(app: TestApp) {
    let backlog: Vec<String> = lifecycle()
        .steps
        .into_iter()
        .flat_map(|(_, batch, _)| batch)
        .collect();
    let late = at(5, 9, 11);
    let backend = app.backend;
    let deliver_all = |order: Vec<String>| async move {
        let app = TestApp::spawn(backend).await;
        app.create_workspace(WS).await;
        app.clock.set(late);
        for body in &order {
            let (status, answer) = deliver(&app, body).await;
            assert_eq!(status, 200, "{answer}");
        }
        app.verify_ledger().await;
        let result = (ledger(&app, WS).await, wallet(&app, WS).await);
        app.teardown().await;
        result
    };
    let in_order = deliver_all(backlog.clone()).await;
    assert_eq!(
        in_order.0,
        rows(&[
            ("GRANT", 300, "trial:PRO_TRIAL"),
            ("EXPIRE", -300, &in_order.0[1].2),
            ("GRANT", 1000, "subscription:PRO:2026-05-09"),
        ])
    );
    assert_eq!(in_order.1["subscription"]["id"], "sub_1QAgain");
    let mut reversed = backlog.clone();
    reversed.reverse();
    let mut rotated = backlog.clone();
    rotated.rotate_left(backlog.len() / 2);
    for (round, order) in [reversed, rotated].into_iter().enumerate() {
        assert_eq!(deliver_all(order).await, in_order, "fixed order {round}");
    }
    let seed = crate::helpers::seed(rand_seed());
    println!("backlog shuffle seed: {seed} (set SEED to replay)");
    let mut state = seed;
    let mut shuffled = backlog.clone();
    for i in (1..shuffled.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = (state >> 33) as usize % (i + 1);
        shuffled.swap(i, j);
    }
    assert_eq!(deliver_all(shuffled).await, in_order, "random order, seed {seed}");
}

/// Stripe moves the current period's end (a trial extended): the period
/// and its allocation's expiry follow, and nothing is granted twice.
async fn stripe_moving_the_period_end_moves_the_allocation(app: TestApp) {
    app.set_trial_credits(0).await;
    app.create_workspace("ws-move").await;
    let t0 = app.clock_now();
    let week = t0 + Duration::days(7);
    let fortnight = t0 + Duration::days(14);
    let created = sub_event(
        "evt_m1",
        "customer.subscription.created",
        t0,
        "sub_1QMove",
        Some("ws-move"),
        "PRO",
        "trialing",
        (t0, week),
        week,
    );
    assert_eq!(acknowledged(deliver(&app, &created).await), "APPLIED");
    let extended = sub_event(
        "evt_m2",
        "customer.subscription.updated",
        t0 + Duration::hours(1),
        "sub_1QMove",
        Some("ws-move"),
        "PRO",
        "trialing",
        (t0, fortnight),
        fortnight,
    );
    assert_eq!(acknowledged(deliver(&app, &extended).await), "APPLIED");
    let moved = wallet(&app, "ws-move").await;
    assert_eq!(moved["currentPeriod"]["end"], fortnight.to_rfc3339(), "{moved}");
    // Past the old end: the allocation is still there.
    app.clock.set(week + Duration::hours(1));
    app.ledger
        .roll_over_periods(week + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(wallet(&app, "ws-move").await["balance"]["allocation"], 1000);
    // At the new end: expired and renewed on the new anchor, once.
    app.clock.set(fortnight);
    app.ledger.roll_over_periods(fortnight).await.unwrap();
    assert_eq!(
        ledger(&app, "ws-move").await,
        rows(&[
            ("GRANT", 1000, "subscription:PRO:2026-01-31"),
            ("EXPIRE", -1000, &ledger(&app, "ws-move").await[1].2),
            ("GRANT", 1000, "renewal:PRO:2026-02-14"),
        ])
    );
    app.verify_ledger().await;
}

/// An account on an API version before 2025-03-31.basil sends the current
/// period at the subscription's top level: it is read there.
async fn older_api_versions_put_the_period_at_the_top_level(app: TestApp) {
    app.set_trial_credits(0).await;
    app.create_workspace("ws-old").await;
    let t0 = app.clock_now();
    let end = t0 + Duration::days(28);
    let mut object = stripe_events::subscription(
        "sub_1QOld",
        Some("ws-old"),
        price_of("STARTER"),
        "active",
        (0, 0),
        t0.timestamp(),
    );
    let item = object["items"]["data"][0].as_object_mut().unwrap();
    item.remove("current_period_start");
    item.remove("current_period_end");
    object["current_period_start"] = json!(t0.timestamp());
    object["current_period_end"] = json!(end.timestamp());
    let mut body: Value = serde_json::from_str(&event(
        "evt_old",
        "customer.subscription.created",
        t0.timestamp(),
        object,
    ))
    .unwrap();
    body["api_version"] = json!("2024-06-20");
    assert_eq!(acknowledged(deliver(&app, &body.to_string()).await), "APPLIED");
    let wallet = wallet(&app, "ws-old").await;
    assert_eq!(wallet["plan"], "STARTER", "{wallet}");
    assert_eq!(wallet["currentPeriod"]["end"], end.to_rfc3339(), "{wallet}");
    assert_eq!(wallet["balance"]["allocation"], 250, "{wallet}");
}

fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |elapsed| elapsed.as_nanos() as u64)
}

/// One subscription event delivered 20 times at once, to two instances of
/// one database: applied once.
async fn one_event_twenty_times_on_two_instances_applies_once(app: TestApp) {
    let sibling = app.spawn_sibling().await;
    app.create_workspace("ws-twice").await;
    let t0 = app.clock_now();
    let body = sub_event(
        "evt_twice",
        "customer.subscription.created",
        t0,
        "sub_1QTwice",
        Some("ws-twice"),
        "BUSINESS",
        "active",
        (t0, t0 + Duration::days(31)),
        t0,
    );
    let answers = join_all((0..20).map(|i| {
        let target = if i % 2 == 0 { &app } else { &sibling };
        deliver(target, &body)
    }))
    .await;
    let mut outcomes: Vec<String> = answers.into_iter().map(acknowledged).collect();
    outcomes.sort_unstable();
    assert_eq!(outcomes, [&["APPLIED"][..], &["DUPLICATE"; 19]].concat());
    let grants = ledger(&app, "ws-twice")
        .await
        .into_iter()
        .filter(|(_, _, reference)| reference.starts_with("subscription:"))
        .count();
    assert_eq!(grants, 1);
    assert_eq!(app.balance_total("ws-twice").await, 300 + 2500);
    app.verify_ledger().await;
}

async fn admins_may_not_change_the_plan(app: TestApp) {
    app.create_workspace("ws-admin").await;
    let admin = app.token("admin", Some("ws-admin"));
    let answer = app.change_plan(&admin, None, "BUSINESS", None).await;
    assert_eq!(answer.code(), "FORBIDDEN");
    assert_eq!(app.balance_total("ws-admin").await, 300);
}

/// A subscription whose price maps to no plan changes nothing; an
/// operator is told.
async fn an_unmapped_price_changes_nothing(app: TestApp) {
    app.create_workspace("ws-price").await;
    let t0 = app.clock_now();
    let mut object = stripe_events::subscription(
        "sub_1QOdd",
        Some("ws-price"),
        "price_unknown",
        "active",
        (t0.timestamp(), (t0 + Duration::days(30)).timestamp()),
        t0.timestamp(),
    );
    object["items"]["data"][0]["price"]["id"] = json!("price_unknown");
    let body = event("evt_odd", "customer.subscription.created", t0.timestamp(), object);
    assert_eq!(acknowledged(deliver(&app, &body).await), "NEEDS_REVIEW");
    assert_eq!(app.balance_total("ws-price").await, 300);
    assert_eq!(wallet(&app, "ws-price").await["plan"], "PRO_TRIAL");
}

/// The `credits.payment_needs_review` reasons told, in order.
async fn reviews(app: &TestApp) -> Vec<String> {
    use sea_orm::ConnectionTrait;
    let db = app.db();
    db.query_all_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        "SELECT data FROM outbox_event WHERE event_type = 'credits.payment_needs_review' ORDER BY id",
    ))
    .await
    .unwrap()
    .iter()
    .map(|row| {
        let data: Value = serde_json::from_str(&row.try_get::<String>("", "data").unwrap()).unwrap();
        data["reason"].as_str().unwrap().to_owned()
    })
    .collect()
}

async fn a_refund_before_its_payment_applies_nothing(app: TestApp) {
    app.create_workspace("ws-early").await;
    let before = app.balance_total("ws-early").await;
    // Fully refunded before the payment's event: nothing applied, told.
    assert_eq!(
        acknowledged(deliver(&app, &refunded("evt_r1", "pi_early", 2000, true)).await),
        "RECORDED"
    );
    assert_eq!(
        acknowledged(
            deliver(
                &app,
                &checkout("evt_c1", "ws-early", "PACK_500", "pi_early", "paid")
            )
            .await
        ),
        "NEEDS_REVIEW"
    );
    assert_eq!(app.balance_total("ws-early").await, before);
    // Partly refunded first: applied, and told.
    assert_eq!(
        acknowledged(deliver(&app, &refunded("evt_r2", "pi_half", 500, false)).await),
        "RECORDED"
    );
    assert_eq!(
        acknowledged(
            deliver(
                &app,
                &checkout("evt_c2", "ws-early", "PACK_500", "pi_half", "paid")
            )
            .await
        ),
        "APPLIED"
    );
    assert_eq!(app.balance_total("ws-early").await, before + 500);
    assert_eq!(
        reviews(&app).await,
        ["refunded_before_applied", "partly_refunded_before_applied"]
    );
    app.verify_ledger().await;
}

async fn refunds_accumulate_partial_then_larger_then_full(app: TestApp) {
    app.create_workspace("ws-acc").await;
    let before = app.balance_total("ws-acc").await;
    deliver(&app, &checkout("evt_c", "ws-acc", "PACK_500", "pi_acc", "paid")).await;
    assert_eq!(
        acknowledged(deliver(&app, &refunded("evt_1", "pi_acc", 500, false)).await),
        "PARTIAL"
    );
    assert_eq!(
        acknowledged(deliver(&app, &refunded("evt_1b", "pi_acc", 500, false)).await),
        "DUPLICATE"
    );
    assert_eq!(
        acknowledged(deliver(&app, &refunded("evt_2", "pi_acc", 1200, false)).await),
        "PARTIAL"
    );
    assert_eq!(app.balance_total("ws-acc").await, before + 500);
    assert_eq!(
        acknowledged(deliver(&app, &refunded("evt_3", "pi_acc", 2000, true)).await),
        "REVERSED"
    );
    assert_eq!(app.balance_total("ws-acc").await, before);
    assert_eq!(
        acknowledged(deliver(&app, &refunded("evt_3", "pi_acc", 2000, true)).await),
        "DUPLICATE"
    );
    let told = app
        .query_i64("SELECT COUNT(*) FROM outbox_event WHERE event_type = 'credits.refund_needs_review'")
        .await;
    assert_eq!(told, 2, "each larger partial refund is told once");
    app.verify_ledger().await;
}

async fn a_lost_dispute_is_a_full_refund(app: TestApp) {
    app.create_workspace("ws-dispute").await;
    let before = app.balance_total("ws-dispute").await;
    deliver(
        &app,
        &checkout("evt_c", "ws-dispute", "PACK_100", "pi_disp", "paid"),
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    let opened = event(
        "evt_d1",
        "charge.dispute.created",
        now,
        stripe_events::dispute("pi_disp", 500, "needs_response"),
    );
    assert_eq!(acknowledged(deliver(&app, &opened).await), "RECORDED");
    assert_eq!(acknowledged(deliver(&app, &opened).await), "DUPLICATE");
    assert_eq!(app.balance_total("ws-dispute").await, before + 100);
    let lost = event(
        "evt_d2",
        "charge.dispute.closed",
        now,
        stripe_events::dispute("pi_disp", 500, "lost"),
    );
    assert_eq!(acknowledged(deliver(&app, &lost).await), "REVERSED");
    assert_eq!(app.balance_total("ws-dispute").await, before);
    let disputes = app
        .query_i64("SELECT COUNT(*) FROM outbox_event WHERE event_type = 'credits.payment_disputed'")
        .await;
    assert_eq!(disputes, 2, "opened and lost, each told once");
    app.verify_ledger().await;
}

async fn a_price_mismatch_or_a_second_workspace_applies_nothing(app: TestApp) {
    app.create_workspace("ws-a").await;
    app.create_workspace("ws-b").await;
    let before = app.balance_total("ws-a").await;
    // Paid PACK_100's price, metadata naming PACK_2500.
    let cheap = event(
        "evt_cheap",
        "checkout.session.completed",
        chrono::Utc::now().timestamp(),
        stripe_events::checkout_session("ws-a", "PACK_2500", "pi_cheap", 500, "usd", "paid"),
    );
    assert_eq!(acknowledged(deliver(&app, &cheap).await), "NEEDS_REVIEW");
    let euros = event(
        "evt_eur",
        "checkout.session.completed",
        chrono::Utc::now().timestamp(),
        stripe_events::checkout_session("ws-a", "PACK_100", "pi_eur", 500, "eur", "paid"),
    );
    assert_eq!(acknowledged(deliver(&app, &euros).await), "NEEDS_REVIEW");
    assert_eq!(app.balance_total("ws-a").await, before);
    // One payment intent, two workspaces: the second applies nothing.
    assert_eq!(
        acknowledged(deliver(&app, &checkout("evt_1", "ws-a", "PACK_100", "pi_one", "paid")).await),
        "APPLIED"
    );
    assert_eq!(
        acknowledged(deliver(&app, &checkout("evt_2", "ws-b", "PACK_100", "pi_one", "paid")).await),
        "NEEDS_REVIEW"
    );
    assert_eq!(app.balance_total("ws-a").await, before + 100);
    assert_eq!(app.balance_total("ws-b").await, before);
    // Its refund is still the first workspace's.
    assert_eq!(
        acknowledged(deliver(&app, &refunded("evt_r", "pi_one", 500, true)).await),
        "REVERSED"
    );
    assert_eq!(app.balance_total("ws-a").await, before);
    assert_eq!(
        reviews(&app).await,
        ["amount_mismatch", "amount_mismatch", "payment_already_applied"]
    );
    app.verify_ledger().await;
}

both_backends!(
    a_subscription_lifecycle_end_to_end,
    lifecycle_batches_in_any_order_end_the_same,
    a_lifecycle_backlog_in_any_order_ends_the_same,
    stripe_moving_the_period_end_moves_the_allocation,
    older_api_versions_put_the_period_at_the_top_level,
    one_event_twenty_times_on_two_instances_applies_once,
    admins_may_not_change_the_plan,
    an_unmapped_price_changes_nothing,
    a_refund_before_its_payment_applies_nothing,
    refunds_accumulate_partial_then_larger_then_full,
    a_lost_dispute_is_a_full_refund,
    a_price_mismatch_or_a_second_workspace_applies_nothing,
);
