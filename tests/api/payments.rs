//! `POST /webhooks/stripe`: events signed here with Stripe's documented
//! scheme (HMAC-SHA256 of `t.payload`, hex, in `Stripe-Signature`), by this
//! file's own code. A paid Checkout Session applies its pack once however
//! often it is delivered; a bad signature, a stale timestamp or a malformed
//! body is answered 400 and writes nothing; a refund reverses an unspent
//! top-up once and records one that was spent; other events are
//! acknowledged and ignored.

use futures_util::future::join_all;
use hmac::{Hmac, Mac};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use sha2::Sha256;

use protodesk_credits::store::payments::top_ups_by_reference_sql;

use crate::both_backends;
use crate::helpers::server::RealServer;
use crate::helpers::{STRIPE_SECRET, TestApp};
use crate::stripe_events;

fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The price of each pack in the seeded catalogue, in US cents.
pub(crate) fn price(pack: &str) -> i64 {
    match pack {
        "PACK_100" => 500,
        "PACK_500" => 2000,
        "PACK_2500" => 8000,
        _ => 999,
    }
}

/// A `checkout.session.completed` event for `workspace` buying `pack` at
/// its price, paid by `intent`.
pub(crate) fn checkout(event: &str, workspace: &str, pack: &str, intent: &str, status: &str) -> String {
    stripe_events::event(
        event,
        "checkout.session.completed",
        now(),
        stripe_events::checkout_session(workspace, pack, intent, price(pack), "usd", status),
    )
}

/// Posts `body` with `signature` (none when `None`): the status and the JSON answer.
async fn post(app: &TestApp, body: &str, signature: Option<String>) -> (u16, Value) {
    let mut request = app
        .http
        .post(format!("{}/webhooks/stripe", app.address))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// An answer's outcome, once it is shown to be a 200.
pub(crate) fn acknowledged((status, answer): (u16, Value)) -> String {
    assert_eq!(status, 200, "{answer}");
    answer["outcome"]
        .as_str()
        .unwrap_or_else(|| panic!("no outcome: {answer}"))
        .to_owned()
}

pub(crate) async fn deliver(app: &TestApp, body: &str) -> (u16, Value) {
    post(app, body, Some(signature(STRIPE_SECRET, now(), body))).await
}

async fn top_up_rows(app: &TestApp) -> i64 {
    app.query_i64("SELECT COUNT(*) FROM ledger_entry WHERE kind = 'TOP_UP'")
        .await
}

async fn a_paid_session_applies_its_pack_once_however_often_delivered(app: TestApp) {
    app.create_workspace("ws-pay").await;
    let before = app.balance_total("ws-pay").await;
    let body = checkout("evt_1", "ws-pay", "PACK_500", "pi_1", "paid");

    assert_eq!(acknowledged(deliver(&app, &body).await), "APPLIED");
    assert_eq!(app.balance_total("ws-pay").await, before + 500);
    let rows = app.transactions("ws-pay").await;
    let top_up = rows.iter().find(|row| row["kind"] == "TOP_UP").unwrap();
    assert_eq!(top_up["reference"], "pi_1", "{top_up}");
    assert_eq!(top_up["actor"], "stripe", "{top_up}");

    // Stripe redelivers (and may deliver twice at once): nothing more.
    let again = join_all((0..6).map(|_| deliver(&app, &body))).await;
    for answer in again {
        assert_eq!(acknowledged(answer), "DUPLICATE");
    }
    assert_eq!(app.balance_total("ws-pay").await, before + 500);
    assert_eq!(top_up_rows(&app).await, 1);

    // The same payment intent for another pack applies nothing and is
    // told to an operator (200: Stripe retrying would not help).
    let other = checkout("evt_2", "ws-pay", "PACK_100", "pi_1", "paid");
    assert_eq!(acknowledged(deliver(&app, &other).await), "NEEDS_REVIEW");
    assert_eq!(top_up_rows(&app).await, 1);
    assert_eq!(app.balance_total("ws-pay").await, before + 500);
}

async fn concurrent_first_deliveries_apply_one_top_up(app: TestApp) {
    app.create_workspace("ws-race").await;
    let before = app.balance_total("ws-race").await;
    let body = checkout("evt_r", "ws-race", "PACK_100", "pi_race", "paid");
    let mut outcomes: Vec<String> = join_all((0..8).map(|_| deliver(&app, &body)))
        .await
        .into_iter()
        .map(acknowledged)
        .collect();
    outcomes.sort_unstable();
    assert_eq!(outcomes, [&["APPLIED"][..], &["DUPLICATE"; 7]].concat());
    assert_eq!(app.balance_total("ws-race").await, before + 100);
}

async fn bad_signatures_stale_timestamps_and_malformed_bodies_write_nothing(app: TestApp) {
    app.create_workspace("ws-bad").await;
    let body = checkout("evt_b", "ws-bad", "PACK_2500", "pi_bad", "paid");
    let signed = signature(STRIPE_SECRET, now(), &body);
    let tampered = body.replace("PACK_2500", "PACK_500");
    let malformed = "{\"id\": \"evt_m\", \"type\": ";
    let cases: Vec<(&str, String, Option<String>)> = vec![
        ("tampered body", tampered.clone(), Some(signed.clone())),
        (
            "another secret",
            body.clone(),
            Some(signature("whsec_attacker", now(), &body)),
        ),
        ("no header", body.clone(), None),
        ("a header without v1", body.clone(), Some(format!("t={}", now()))),
        (
            "stale by 301 s",
            body.clone(),
            Some(signature(STRIPE_SECRET, now() - 301, &body)),
        ),
        (
            "from 301 s ahead",
            body.clone(),
            Some(signature(STRIPE_SECRET, now() + 301, &body)),
        ),
        (
            "malformed body, signed",
            malformed.to_owned(),
            Some(signature(STRIPE_SECRET, now(), malformed)),
        ),
    ];
    for (case, body, signature) in cases {
        let (status, answer) = post(&app, &body, signature).await;
        assert_eq!(status, 400, "{case}: {answer}");
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{case}"
        );
    }
    assert_eq!(top_up_rows(&app).await, 0);
    // The genuine event still applies afterwards.
    assert_eq!(acknowledged(post(&app, &body, Some(signed)).await), "APPLIED");
}

async fn other_events_unpaid_and_foreign_sessions_are_acknowledged_and_ignored(app: TestApp) {
    app.create_workspace("ws-other").await;
    let unknown = stripe_events::event(
        "evt_u",
        "customer.created",
        now(),
        json!({ "id": "cus_1", "object": "customer" }),
    );
    let unpaid = checkout("evt_p", "ws-other", "PACK_100", "pi_unpaid", "unpaid");
    let mut foreign_session = stripe_events::checkout_session("x", "PACK_100", "pi_f", 500, "usd", "paid");
    foreign_session["metadata"] = json!({});
    let foreign = stripe_events::event("evt_f", "checkout.session.completed", now(), foreign_session);
    for body in [unknown, unpaid, foreign] {
        assert_eq!(acknowledged(deliver(&app, &body).await), "IGNORED");
    }
    assert_eq!(top_up_rows(&app).await, 0);

    // Paid later (an asynchronous payment method): applied then.
    let succeeded = checkout("evt_s", "ws-other", "PACK_100", "pi_unpaid", "paid").replace(
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
    );
    assert_eq!(acknowledged(deliver(&app, &succeeded).await), "APPLIED");
}

async fn sessions_naming_what_does_not_exist_are_refused(app: TestApp) {
    app.create_workspace("ws-meta").await;
    let cases = [
        (
            checkout("evt_w", "ws-nowhere", "PACK_100", "pi_w", "paid"),
            404,
            "NOT_FOUND",
        ),
        (
            checkout("evt_k", "ws-meta", "PACK_7", "pi_k", "paid"),
            400,
            "BAD_USER_INPUT",
        ),
        (
            checkout("evt_i", "bad id!", "PACK_100", "pi_i", "paid"),
            400,
            "BAD_USER_INPUT",
        ),
    ];
    for (body, expected, code) in cases {
        let (status, answer) = deliver(&app, &body).await;
        assert_eq!(status, expected, "{answer}");
        assert_eq!(answer["errors"][0]["extensions"]["code"], code, "{answer}");
    }
    assert_eq!(top_up_rows(&app).await, 0);
}

/// A `charge.refunded` event for the charge of `intent`.
pub(crate) fn refunded(event: &str, intent: &str, amount_refunded: i64, full: bool) -> String {
    stripe_events::event(
        event,
        "charge.refunded",
        now(),
        stripe_events::charge(intent, 1900, amount_refunded, full),
    )
}

async fn refund_outcome(app: &TestApp, intent: &str) -> String {
    let db = app.db();
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT refund_outcome AS outcome FROM stripe_payment WHERE payment_reference = '{intent}'"
            ),
        ))
        .await
        .unwrap()
        .expect("the refund is recorded");
    row.try_get::<String>("", "outcome").unwrap()
}

async fn reversals(app: &TestApp) -> i64 {
    app.query_i64("SELECT COUNT(*) FROM ledger_entry WHERE kind = 'REVERSAL'")
        .await
}

async fn the_refund_of_an_unspent_top_up_reverses_it_once(app: TestApp) {
    app.create_workspace("ws-refund").await;
    let before = app.balance_total("ws-refund").await;
    deliver(&app, &checkout("evt_c", "ws-refund", "PACK_500", "pi_r", "paid")).await;
    assert_eq!(app.balance_total("ws-refund").await, before + 500);

    let refund = refunded("evt_r", "pi_r", 1900, true);
    let mut outcomes: Vec<String> = join_all((0..4).map(|_| deliver(&app, &refund)))
        .await
        .into_iter()
        .map(acknowledged)
        .collect();
    outcomes.sort_unstable();
    assert_eq!(outcomes, ["DUPLICATE", "DUPLICATE", "DUPLICATE", "REVERSED"]);
    assert_eq!(app.balance_total("ws-refund").await, before);
    assert_eq!(reversals(&app).await, 1);
    let rows = app.transactions("ws-refund").await;
    let reversal = rows.iter().find(|row| row["kind"] == "REVERSAL").unwrap();
    assert_eq!(reversal["actor"], "stripe", "{reversal}");
    assert_eq!(reversal["amount"], -500, "{reversal}");
    assert_eq!(refund_outcome(&app, "pi_r").await, "REVERSED");
    app.verify_ledger().await;
}

async fn the_refund_of_a_spent_top_up_is_recorded_not_reversed(app: TestApp) {
    app.set_trial_credits(0).await;
    app.create_workspace("ws-spent").await;
    deliver(&app, &checkout("evt_c", "ws-spent", "PACK_100", "pi_s", "paid")).await;
    let service = app.token("service", Some("ws-spent"));
    app.spend_ok(&service, "TRIAGE", "used-one").await;
    assert_eq!(app.balance_total("ws-spent").await, 99);

    let refund = refunded("evt_r", "pi_s", 1900, true);
    assert_eq!(acknowledged(deliver(&app, &refund).await), "UNRECOVERED");
    assert_eq!(app.balance_total("ws-spent").await, 99, "nothing taken back");
    assert_eq!(reversals(&app).await, 0);
    assert_eq!(refund_outcome(&app, "pi_s").await, "UNRECOVERED");
    assert_eq!(acknowledged(deliver(&app, &refund).await), "DUPLICATE");
    assert_eq!(app.balance_total("ws-spent").await, 99);
    // An operator is told through the outbox, once.
    assert_eq!(
        needs_review(&app).await,
        [("ws-spent".to_owned(), "pi_s".to_owned(), "UNRECOVERED".to_owned())]
    );
}

/// The `credits.refund_needs_review` events: (workspace, payment, outcome).
async fn needs_review(app: &TestApp) -> Vec<(String, String, String)> {
    let db = app.db();
    db.query_all_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        "SELECT workspace_id, data FROM outbox_event WHERE event_type = 'credits.refund_needs_review' ORDER BY id",
    ))
    .await
    .unwrap()
    .iter()
    .map(|row| {
        let data: Value = serde_json::from_str(&row.try_get::<String>("", "data").unwrap()).unwrap();
        (
            row.try_get::<String>("", "workspace_id").unwrap(),
            data["paymentReference"].as_str().unwrap().to_owned(),
            data["outcome"].as_str().unwrap().to_owned(),
        )
    })
    .collect()
}

async fn a_partial_refund_waits_for_an_operator_and_a_full_one_reverses(app: TestApp) {
    app.create_workspace("ws-part").await;
    let before = app.balance_total("ws-part").await;
    deliver(&app, &checkout("evt_c", "ws-part", "PACK_100", "pi_p", "paid")).await;

    let partial = refunded("evt_p", "pi_p", 500, false);
    assert_eq!(acknowledged(deliver(&app, &partial).await), "PARTIAL");
    assert_eq!(app.balance_total("ws-part").await, before + 100);
    assert_eq!(refund_outcome(&app, "pi_p").await, "PARTIAL");
    assert_eq!(acknowledged(deliver(&app, &partial).await), "DUPLICATE");

    assert_eq!(
        needs_review(&app).await,
        [("ws-part".to_owned(), "pi_p".to_owned(), "PARTIAL".to_owned())]
    );

    let full = refunded("evt_f", "pi_p", 1900, true);
    assert_eq!(acknowledged(deliver(&app, &full).await), "REVERSED");
    assert_eq!(app.balance_total("ws-part").await, before);
    assert_eq!(refund_outcome(&app, "pi_p").await, "REVERSED");

    // A refund of a payment not applied here (yet): recorded, once.
    let elsewhere = refunded("evt_x", "pi_elsewhere", 100, true);
    assert_eq!(acknowledged(deliver(&app, &elsewhere).await), "RECORDED");
    assert_eq!(acknowledged(deliver(&app, &elsewhere).await), "DUPLICATE");
}

/// A refund finds its top-up on the partial index of migration 6, not by
/// reading the ledger.
async fn a_refund_finds_its_top_up_on_its_index(app: TestApp) {
    let db = app.db();
    let backend = db.get_database_backend();
    let (explain, column) = match backend {
        sea_orm::DbBackend::Postgres => ("EXPLAIN", "QUERY PLAN"),
        _ => ("EXPLAIN QUERY PLAN", "detail"),
    };
    let plan: Vec<String> = db
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            format!("{explain} {}", top_ups_by_reference_sql(backend)),
            ["pi_1".into()],
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", column).unwrap())
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("ledger_entry_top_up_reference"), "{plan}");
}

both_backends!(
    a_paid_session_applies_its_pack_once_however_often_delivered,
    concurrent_first_deliveries_apply_one_top_up,
    bad_signatures_stale_timestamps_and_malformed_bodies_write_nothing,
    other_events_unpaid_and_foreign_sessions_are_acknowledged_and_ignored,
    sessions_naming_what_does_not_exist_are_refused,
    the_refund_of_an_unspent_top_up_reverses_it_once,
    the_refund_of_a_spent_top_up_is_recorded_not_reversed,
    a_partial_refund_waits_for_an_operator_and_a_full_one_reverses,
    a_refund_finds_its_top_up_on_its_index,
);

/// The binary reads `STRIPE_WEBHOOK_SECRET` from its environment; without
/// it the endpoint does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_binary_serves_the_endpoint_only_with_its_secret() {
    let client = reqwest::Client::new();
    let body = checkout("evt_bin", "acme", "PACK_100", "pi_bin", "paid");
    let send = |base: String| {
        let request = client
            .post(format!("{base}/webhooks/stripe"))
            .header("stripe-signature", signature("whsec_binary", now(), &body))
            .body(body.clone());
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    let mut without = RealServer::start(None).await;
    without.create_acme().await;
    let (status, answer) = send(without.base.clone()).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["errors"][0]["extensions"]["code"], "NOT_FOUND");
    without.stop();

    let mut with = RealServer::start_with_env(None, &[("STRIPE_WEBHOOK_SECRET", "whsec_binary")]).await;
    with.create_acme().await;
    assert_eq!(acknowledged(send(with.base.clone()).await), "APPLIED");
    with.verify();
    with.stop();
}
