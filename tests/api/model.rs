//! Goal: over thousands of random operations the service agrees with a
//! plain in-memory model of the billing rules, answer by answer, balance
//! by balance and ledger row by ledger row.
//! Method: a generator draws spends (new keys, repeats, conflicting
//! reuse), top-ups (new and repeated payment references), operator
//! adjustments (credits and debits), reversals of spends, plan changes
//! (from the trial, upgrades, downgrades left pending, and their
//! cancellation), clock jumps (with and without the renewal sweep) that end
//! trials and renew periods, and concurrent bursts over several wallets
//! that mix new keys with repeats, over three workspaces. Each operation
//! goes through the HTTP API and through the model; the outcome (or error
//! code), the wallet's balance split and its ledger rows (kind, amount)
//! must agree after every one. The model keeps grants with their expiry
//! and applies the documented rules with its own arithmetic (nothing of
//! the service's code): settle first (expire, then renew into the period
//! containing now, on the pending plan if any), burn-down soonest expiry
//! first and never-expiring last (oldest first on a tie), keys bound per
//! wallet, upgrades raising the period's allocation by the difference.
//! Each run draws a fresh seed and prints it first; a failure (a panic
//! included) prints it again: `SEED=<n> cargo test model` replays it.
//! `MODEL_OPS` sets the number of operations (default 1500).

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::client::Answer;
use crate::helpers::{Random, TestApp};

/// Credits per period of each paid plan (the catalogue's).
const PLANS: [(&str, i64); 3] = [("STARTER", 250), ("PRO", 1000), ("BUSINESS", 2500)];

fn monthly(plan: &str) -> i64 {
    PLANS
        .iter()
        .find(|(code, _)| *code == plan)
        .map_or(0, |(_, credits)| *credits)
}

/// The start of the `n`th period after `anchor`: `n` calendar months on,
/// on the anchor's day clamped to the month's length, at the anchor's time
/// of day. The model's own arithmetic, not the service's.
fn nth_period_start(anchor: DateTime<Utc>, n: i32) -> DateTime<Utc> {
    let months = anchor.year() * 12 + anchor.month0() as i32 + n;
    let (year, month) = (months.div_euclid(12), months.rem_euclid(12) as u32 + 1);
    let first = NaiveDate::from_ymd_opt(year, month, 1).unwrap();
    let next_first = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1).unwrap()
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1).unwrap()
    };
    let days = (next_first - first).num_days() as u32;
    let date = NaiveDate::from_ymd_opt(year, month, anchor.day().min(days)).unwrap();
    Utc.from_utc_datetime(&date.and_time(anchor.time()))
}

/// The period (start, end) of the anchor's series that contains `now`.
fn period_containing(anchor: DateTime<Utc>, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let mut n = (now.year() - anchor.year()) * 12 + now.month0() as i32 - anchor.month0() as i32 - 1;
    while nth_period_start(anchor, n + 1) <= now {
        n += 1;
    }
    while nth_period_start(anchor, n) > now {
        n -= 1;
    }
    (nth_period_start(anchor, n), nth_period_start(anchor, n + 1))
}

/// Ledger rows with each run of consecutive EXPIRE rows sorted: grants
/// expiring in one settle may be closed in either order.
fn normalised(rows: &[(String, i64)]) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = Vec::with_capacity(rows.len());
    let mut run: Vec<(String, i64)> = Vec::new();
    for row in rows {
        if row.0 == "EXPIRE" {
            run.push(row.clone());
            continue;
        }
        run.sort();
        out.append(&mut run);
        out.push(row.clone());
    }
    run.sort();
    out.append(&mut run);
    out
}

const WORKSPACES: [&str; 3] = ["m-0", "m-1", "m-2"];
const PACKS: [(&str, i64); 3] = [("PACK_100", 100), ("PACK_500", 500), ("PACK_2500", 2500)];
const ACTIONS: [&str; 3] = ["TRIAGE", "AUTO_RESOLVE", "SIDEKICK"];

#[derive(Debug, Clone)]
struct Grant {
    /// Creation order (the service's ids grow the same way).
    order: u64,
    /// allocation, purchased or bonus.
    bucket: &'static str,
    remaining: i64,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct Charge {
    transaction_id: String,
    grant_order: u64,
    reversed: bool,
}

#[derive(Debug, Default)]
struct Wallet {
    grants: Vec<Grant>,
    spend_keys: HashMap<String, String>,
    top_up_keys: HashMap<String, String>,
    anchor: Option<DateTime<Utc>>,
    period_end: Option<DateTime<Utc>>,
    /// The paid plan (none during the trial).
    plan: Option<&'static str>,
    /// A downgrade waiting for the next reset.
    pending: Option<&'static str>,
    /// The current period's allocation grant and what it was granted.
    allocation: Option<(u64, i64)>,
    /// Spends that may be reversed (their grant is known exactly).
    charges: Vec<Charge>,
    /// The ledger as (kind, amount), oldest first.
    rows: Vec<(String, i64)>,
}

#[derive(Default)]
struct Model {
    wallets: HashMap<&'static str, Wallet>,
    next_order: u64,
}

impl Model {
    fn grant(
        &mut self,
        workspace: &str,
        bucket: &'static str,
        credits: i64,
        expires_at: Option<DateTime<Utc>>,
    ) -> u64 {
        self.next_order += 1;
        let order = self.next_order;
        if let Some(wallet) = self.wallets.get_mut(workspace) {
            wallet.grants.push(Grant {
                order,
                bucket,
                remaining: credits,
                expires_at,
            });
        }
        order
    }

    fn row(&mut self, workspace: &str, kind: &str, amount: i64) {
        self.wallets
            .get_mut(workspace)
            .unwrap()
            .rows
            .push((kind.to_owned(), amount));
    }

    /// Grants the allocation of the period ending `end` (a GRANT row).
    fn grant_allocation(&mut self, workspace: &str, credits: i64, end: DateTime<Utc>) {
        if credits <= 0 {
            self.wallets.get_mut(workspace).unwrap().allocation = None;
            return;
        }
        let order = self.grant(workspace, "allocation", credits, Some(end));
        self.row(workspace, "GRANT", credits);
        self.wallets.get_mut(workspace).unwrap().allocation = Some((order, credits));
    }

    /// Expire what is due (an EXPIRE row for what each grant still held),
    /// then renew an ended period into the one containing `now`, on the
    /// pending plan if there is one.
    fn settle(&mut self, workspace: &str, now: DateTime<Utc>) {
        let wallet = self.wallets.get_mut(workspace).unwrap();
        let (due, live): (Vec<Grant>, Vec<Grant>) = std::mem::take(&mut wallet.grants)
            .into_iter()
            .partition(|grant| grant.expires_at.is_some_and(|at| at <= now));
        wallet.grants = live;
        for grant in due.iter().filter(|grant| grant.remaining > 0) {
            wallet.rows.push(("EXPIRE".to_owned(), -grant.remaining));
        }
        if let (Some(anchor), Some(end)) = (wallet.anchor, wallet.period_end)
            && end <= now
        {
            let (_, end) = period_containing(anchor, now);
            wallet.period_end = Some(end);
            if let Some(pending) = wallet.pending.take() {
                wallet.plan = Some(pending);
            }
            let credits = monthly(wallet.plan.unwrap_or_default());
            self.grant_allocation(workspace, credits, end);
        }
    }

    fn total(&self, workspace: &str) -> i64 {
        self.wallets[workspace]
            .grants
            .iter()
            .map(|grant| grant.remaining)
            .sum()
    }

    fn split(&self, workspace: &str) -> Value {
        let sum = |bucket: &str| -> i64 {
            self.wallets[workspace]
                .grants
                .iter()
                .filter(|grant| grant.bucket == bucket)
                .map(|grant| grant.remaining)
                .sum()
        };
        json!({ "total": self.total(workspace), "allocation": sum("allocation"),
                "purchased": sum("purchased"), "bonus": sum("bonus") })
    }

    /// Takes `credits` in burn-down order; which grant paid the last one.
    fn burn(&mut self, workspace: &str, credits: i64) -> Option<u64> {
        if self.total(workspace) < credits {
            return None;
        }
        let wallet = self.wallets.get_mut(workspace).unwrap();
        wallet
            .grants
            .sort_by_key(|grant| (grant.expires_at.is_none(), grant.expires_at, grant.order));
        let mut left = credits;
        let mut last = None;
        for grant in &mut wallet.grants {
            let take = grant.remaining.min(left);
            if take > 0 {
                grant.remaining -= take;
                left -= take;
                last = Some(grant.order);
            }
        }
        last
    }
}

struct Run {
    app: TestApp,
    model: Model,
    random: Random,
    seed: u64,
    step: usize,
    operator: String,
    service: HashMap<&'static str, String>,
    admin: HashMap<&'static str, String>,
    keys: usize,
}

const SPEND: &str = "mutation($ws: ID, $a: Action!, $k: String!, $r: String) { spendCredit(input: {workspaceId: $ws, action: $a, idempotencyKey: $k, reference: $r}) { outcome balance { total allocation purchased bonus } transaction { id } } }";

impl Run {
    fn now(&self) -> DateTime<Utc> {
        self.app.clock_now()
    }

    fn check(&self, what: &str, actual: &Value, expected: &Value) {
        assert_eq!(
            actual, expected,
            "seed {} step {}: {what} (replay: SEED={} cargo test model)",
            self.seed, self.step, self.seed
        );
    }

    async fn check_balance(&self, workspace: &'static str) {
        let answer = self
            .app
            .gql(
                Some(&self.service[workspace]),
                "{ wallet { balance { total allocation purchased bonus } } }",
                json!({}),
            )
            .await;
        let actual = answer.data()["wallet"]["balance"].clone();
        self.check(
            &format!("balance of {workspace}"),
            &actual,
            &self.model.split(workspace),
        );
    }

    /// "OK", or the error's code.
    fn ok_or_code(answer: &Answer) -> String {
        if answer.body["errors"].is_array() {
            answer.code()
        } else {
            "OK".to_owned()
        }
    }

    fn outcome(answer: &Answer, field: &str) -> String {
        match answer.body["data"][field]["outcome"].as_str() {
            Some(outcome) => outcome.to_owned(),
            None => answer.code(),
        }
    }

    async fn spend(&mut self, workspace: &'static str, action: &str, key: String, reference: Option<&str>) {
        let now = self.now();
        self.model.settle(workspace, now);
        let fingerprint = format!("{action}|{}", reference.unwrap_or(""));
        let wallet = &self.model.wallets[workspace];
        let expected = match wallet.spend_keys.get(&key) {
            Some(bound) if *bound == fingerprint => "DUPLICATE",
            Some(_) => "IDEMPOTENCY_CONFLICT",
            None if self.model.total(workspace) >= 1 => "CHARGED",
            None => "INSUFFICIENT_CREDITS",
        };
        let answer = self
            .app
            .gql(
                Some(&self.service[workspace]),
                SPEND,
                json!({ "ws": workspace, "a": action, "k": key, "r": reference }),
            )
            .await;
        let actual = Self::outcome(&answer, "spendCredit");
        self.check(
            &format!("spend {key} on {workspace}"),
            &json!(actual),
            &json!(expected),
        );
        if expected == "CHARGED" {
            let grant_order = self.model.burn(workspace, 1).unwrap();
            self.model.row(workspace, "SPEND", -1);
            let wallet = self.model.wallets.get_mut(workspace).unwrap();
            wallet.spend_keys.insert(key, fingerprint);
            wallet.charges.push(Charge {
                transaction_id: answer.data()["spendCredit"]["transaction"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                grant_order,
                reversed: false,
            });
        }
    }

    async fn top_up(&mut self, workspace: &'static str) {
        let now = self.now();
        self.model.settle(workspace, now);
        let (pack, credits) = PACKS[self.random.below(PACKS.len())];
        let reference = format!("pay-{}", self.random.below(6));
        let expected = match self.model.wallets[workspace].top_up_keys.get(&reference) {
            Some(bound) if bound == pack => "DUPLICATE",
            Some(_) => "IDEMPOTENCY_CONFLICT",
            None => "APPLIED",
        };
        let answer = self
            .app
            .top_up(&self.admin[workspace], Some(workspace), pack, &reference)
            .await;
        let actual = Self::outcome(&answer, "purchaseTopUp");
        self.check(
            &format!("top-up {reference} {pack}"),
            &json!(actual),
            &json!(expected),
        );
        if expected == "APPLIED" {
            self.model.grant(workspace, "purchased", credits, None);
            self.model.row(workspace, "TOP_UP", credits);
            self.model
                .wallets
                .get_mut(workspace)
                .unwrap()
                .top_up_keys
                .insert(reference, pack.to_owned());
        }
    }

    async fn adjust(&mut self, workspace: &'static str) {
        let now = self.now();
        self.model.settle(workspace, now);
        let credits = self.random.below(40) as i64 - 15;
        let credits = if credits == 0 { 1 } else { credits };
        let expected = if credits > 0 || self.model.total(workspace) >= -credits {
            "OK"
        } else {
            "BAD_USER_INPUT"
        };
        let answer = self
            .app
            .gql(
                Some(&self.operator),
                "mutation($ws: ID!, $c: Int!) { adjustCredits(input: {workspaceId: $ws, credits: $c, reason: \"model\"}) { balance { total } } }",
                json!({ "ws": workspace, "c": credits }),
            )
            .await;
        let actual = Self::ok_or_code(&answer);
        self.check(
            &format!("adjust {credits} on {workspace}"),
            &json!(actual),
            &json!(expected),
        );
        if expected == "OK" {
            self.model.row(workspace, "ADJUSTMENT", credits);
            if credits > 0 {
                self.model.grant(workspace, "bonus", credits, None);
            } else {
                self.model.burn(workspace, -credits);
                // The debit may have emptied a charge's grant: reversals
                // still give back to it while it is live, as modelled.
            }
        }
    }

    async fn reverse(&mut self, workspace: &'static str) {
        let now = self.now();
        self.model.settle(workspace, now);
        let charges = &self.model.wallets[workspace].charges;
        if charges.is_empty() {
            return;
        }
        let index = self.random.below(charges.len());
        let charge = charges[index].clone();
        let expected = if charge.reversed { "BAD_USER_INPUT" } else { "OK" };
        let answer = self
            .app
            .gql(
                Some(&self.operator),
                "mutation($id: ID!) { reverseTransaction(input: {transactionId: $id, reason: \"model\"}) { balance { total } } }",
                json!({ "id": charge.transaction_id }),
            )
            .await;
        let actual = Self::ok_or_code(&answer);
        self.check(
            &format!("reverse {}", charge.transaction_id),
            &json!(actual),
            &json!(expected),
        );
        if expected == "OK" {
            self.model.row(workspace, "REVERSAL", 1);
            let wallet = self.model.wallets.get_mut(workspace).unwrap();
            wallet.charges[index].reversed = true;
            match wallet
                .grants
                .iter_mut()
                .find(|grant| grant.order == charge.grant_order)
            {
                Some(grant) => grant.remaining += 1,
                None => {
                    self.model.grant(workspace, "bonus", 1, None);
                }
            }
        }
    }

    /// A plan change: from the trial a first period starts now; a larger
    /// allocation than the period's grant raises it by the difference at
    /// once; a smaller or equal one waits for the reset; the current plan
    /// again cancels a waiting downgrade.
    async fn change_plan(&mut self, workspace: &'static str, target: &'static str) {
        let now = self.now();
        self.model.settle(workspace, now);
        let admin = self.admin[workspace].clone();
        let answer = self.app.change_plan(&admin, Some(workspace), target, None).await;
        let wallet = self.model.wallets.get_mut(workspace).unwrap();
        match (wallet.plan, wallet.allocation) {
            (None, _) => {
                wallet.anchor = Some(now);
                let (_, end) = period_containing(now, now);
                wallet.period_end = Some(end);
                wallet.plan = Some(target);
                wallet.pending = None;
                self.model.grant_allocation(workspace, monthly(target), end);
            }
            (Some(plan), allocation) => {
                let granted = allocation.map_or(0, |(_, granted)| granted);
                if plan == target {
                    wallet.pending = None;
                } else if monthly(target) > granted {
                    let raise = monthly(target) - granted;
                    wallet.plan = Some(target);
                    wallet.pending = None;
                    match allocation {
                        Some((order, _)) => {
                            let grant = wallet
                                .grants
                                .iter_mut()
                                .find(|grant| grant.order == order)
                                .unwrap();
                            grant.remaining += raise;
                            wallet.allocation = Some((order, granted + raise));
                            self.model.row(workspace, "GRANT", raise);
                        }
                        None => {
                            let end = wallet.period_end.unwrap();
                            self.model.grant_allocation(workspace, raise, end);
                        }
                    }
                } else {
                    wallet.pending = Some(target);
                }
            }
        }
        let wallet = &self.model.wallets[workspace];
        let shown = &answer.data()["changePlan"]["wallet"];
        self.check(
            &format!("plan of {workspace} after changing to {target}"),
            &json!([shown["plan"], shown["pendingPlan"]]),
            &json!([wallet.plan, wallet.pending]),
        );
    }

    /// Concurrent spends over two or three wallets at once: per wallet,
    /// new keys (as many charge as there are credits) and repeats of keys
    /// already bound to a TRIAGE spend (each a DUPLICATE).
    async fn burst(&mut self) {
        let now = self.now();
        let wallets = 2 + self.random.below(2);
        let mut requests: Vec<(&'static str, String, bool)> = Vec::new();
        for workspace in WORKSPACES.iter().copied().take(wallets) {
            self.model.settle(workspace, now);
            for _ in 0..1 + self.random.below(6) {
                self.keys += 1;
                requests.push((workspace, format!("burst-{}", self.keys), false));
            }
            let mut bound: Vec<String> = self.model.wallets[workspace]
                .spend_keys
                .iter()
                .filter(|(_, fingerprint)| *fingerprint == "TRIAGE|")
                .map(|(key, _)| key.clone())
                .collect();
            bound.sort();
            for _ in 0..self.random.below(3).min(bound.len()) {
                let key = bound[self.random.below(bound.len())].clone();
                requests.push((workspace, key, true));
            }
        }
        let answers = join_all(requests.iter().map(|(workspace, key, _)| {
            self.app.gql(
                Some(&self.service[workspace]),
                SPEND,
                json!({ "ws": workspace, "a": "TRIAGE", "k": key, "r": null }),
            )
        }))
        .await;
        for workspace in WORKSPACES.iter().copied().take(wallets) {
            let mut charged = Vec::new();
            let mut fresh = 0;
            for ((_, key, repeat), answer) in requests
                .iter()
                .zip(&answers)
                .filter(|((ws, _, _), _)| *ws == workspace)
            {
                let outcome = Self::outcome(answer, "spendCredit");
                if *repeat {
                    self.check(
                        &format!("burst repeat {key}"),
                        &json!(outcome),
                        &json!("DUPLICATE"),
                    );
                } else {
                    fresh += 1;
                    if outcome == "CHARGED" {
                        charged.push(key.clone());
                    } else {
                        self.check(
                            &format!("burst {key}"),
                            &json!(outcome),
                            &json!("INSUFFICIENT_CREDITS"),
                        );
                    }
                }
            }
            let expected = (fresh as i64).min(self.model.total(workspace));
            self.check(
                &format!("burst charges on {workspace}"),
                &json!(charged.len()),
                &json!(expected),
            );
            self.model.burn(workspace, expected);
            for key in charged {
                self.model.row(workspace, "SPEND", -1);
                self.model
                    .wallets
                    .get_mut(workspace)
                    .unwrap()
                    .spend_keys
                    .insert(key, "TRIAGE|".to_owned());
            }
        }
    }

    async fn advance(&mut self) {
        let hours = 1 + self.random.below(24 * 6) as i64;
        let now = self.now() + Duration::hours(hours);
        self.app.clock.set(now);
        if self.random.below(2) == 0 {
            self.app.ledger.roll_over_periods(now).await.unwrap();
        }
        for workspace in WORKSPACES {
            self.model.settle(workspace, now);
        }
    }

    async fn step(&mut self) {
        let workspace = WORKSPACES[self.random.below(WORKSPACES.len())];
        let roll = self.random.below(100);
        match roll {
            0..=39 => {
                self.keys += 1;
                let key = format!("k-{}", self.keys);
                let action = ACTIONS[self.random.below(3)];
                self.spend(workspace, action, key, None).await;
            }
            40..=51 => {
                // A repeat of a recent key, sometimes with another reference.
                let key = format!("k-{}", self.keys.saturating_sub(self.random.below(20)).max(1));
                let reference = ["", "", "", "other"][self.random.below(4)];
                let action = ACTIONS[self.random.below(3)];
                let reference = (!reference.is_empty()).then_some(reference);
                self.spend(workspace, action, key, reference).await;
            }
            52..=59 => self.top_up(workspace).await,
            60..=69 => self.adjust(workspace).await,
            70..=79 => self.reverse(workspace).await,
            80..=89 => self.advance().await,
            90..=94 => self.burst().await,
            _ => {
                let target = PLANS[self.random.below(PLANS.len())].0;
                self.change_plan(workspace, target).await;
            }
        }
        self.check_balance(workspace).await;
        // Rows every 8th step (and at the end): reading a whole ledger per
        // step would make the run quadratic.
        if self.step.is_multiple_of(8) {
            self.check_rows(workspace).await;
        }
    }

    /// The wallet's ledger rows, settled as of now, against the model's.
    async fn check_rows(&self, workspace: &'static str) {
        self.app
            .ledger
            .settle_workspace(workspace, self.now())
            .await
            .unwrap();
        let actual = self.app.ledger_rows(workspace).await;
        self.check(
            &format!("ledger rows of {workspace}"),
            &json!(normalised(&actual)),
            &json!(normalised(&self.model.wallets[workspace].rows)),
        );
    }
}

/// Prints the seed again if the run panics (an assertion of the harness or
/// of the service, not only `check`).
struct SeedOnPanic(u64);

impl Drop for SeedOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "model run failed with seed {0}: replay with SEED={0} cargo test model",
                self.0
            );
        }
    }
}

async fn service_agrees_with_the_model(app: TestApp) {
    // A fresh seed each run (so CI explores), unless SEED replays one.
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(20_261_125, |elapsed| elapsed.as_nanos() as u64)
        });
    eprintln!(
        "model seed {seed} on {:?} (replay: SEED={seed} cargo test model)",
        app.backend
    );
    let _guard = SeedOnPanic(seed);
    let operations: usize = std::env::var("MODEL_OPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1500);
    let mut run = Run {
        service: WORKSPACES
            .iter()
            .map(|workspace| (*workspace, app.token("service", Some(workspace))))
            .collect(),
        admin: WORKSPACES
            .iter()
            .map(|workspace| (*workspace, app.token("admin", Some(workspace))))
            .collect(),
        operator: app.operator(),
        app,
        model: Model::default(),
        random: Random(seed.max(1)),
        seed,
        step: 0,
        keys: 0,
    };
    let start = run.now();
    for workspace in WORKSPACES {
        run.app.create_workspace(workspace).await;
        run.model.wallets.insert(workspace, Wallet::default());
        run.model
            .grant(workspace, "bonus", 300, Some(start + Duration::days(7)));
        run.model.row(workspace, "GRANT", 300);
    }
    for step in 0..operations {
        run.step = step;
        run.step().await;
    }
    for workspace in WORKSPACES {
        run.check_balance(workspace).await;
        run.check_rows(workspace).await;
    }
}

both_backends!(service_agrees_with_the_model);
