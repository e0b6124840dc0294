//! Goal: over thousands of random operations the service agrees with a
//! plain in-memory model of the billing rules, answer by answer and
//! balance by balance.
//! Method: a seeded generator draws spends (new keys, repeats, conflicting
//! reuse), top-ups (new and repeated payment references), operator
//! adjustments (credits and debits), reversals of spends, a trial-to-PRO
//! plan change, clock jumps (with and without the renewal sweep) that end
//! trials and renew periods, and concurrent bursts of spends, over three
//! workspaces. Each operation goes through the HTTP API and through the
//! model; the outcome (or error code) and the wallet's balance split must
//! agree after every one. The model keeps grants with their expiry and
//! applies the documented rules: settle first (expire, then renew into the
//! period containing now), burn-down soonest expiry first and
//! never-expiring last (oldest first on a tie), keys bound per wallet.
//! On failure the message names the seed; `SEED=<n> cargo test model`
//! replays it. `MODEL_OPS` sets the number of operations (default 1500).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use protodesk_credits::domain::period::{period_containing, period_start};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::client::Answer;
use crate::helpers::{Random, TestApp, seed};

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
    /// Spends that may be reversed (their grant is known exactly).
    charges: Vec<Charge>,
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

    /// Expire what is due, then renew an ended period into the one
    /// containing `now`.
    fn settle(&mut self, workspace: &str, now: DateTime<Utc>) {
        let wallet = self.wallets.get_mut(workspace).unwrap();
        wallet
            .grants
            .retain(|grant| grant.expires_at.is_none_or(|at| at > now));
        if let (Some(anchor), Some(end)) = (wallet.anchor, wallet.period_end)
            && end <= now
        {
            let period = period_containing(anchor, now);
            wallet.period_end = Some(period.end);
            self.grant(workspace, "allocation", 1000, Some(period.end));
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

    async fn change_to_pro(&mut self, workspace: &'static str) {
        let now = self.now();
        self.model.settle(workspace, now);
        let admin = self.admin[workspace].clone();
        self.app
            .change_plan(&admin, Some(workspace), "PRO", None)
            .await
            .data();
        let wallet = self.model.wallets.get_mut(workspace).unwrap();
        wallet.anchor = Some(now);
        let end = period_start(now, 1);
        wallet.period_end = Some(end);
        self.model.grant(workspace, "allocation", 1000, Some(end));
    }

    /// Concurrent new keys on one wallet: as many are charged as there are
    /// credits; the grants end as after that many spends in a row.
    async fn burst(&mut self, workspace: &'static str) {
        let now = self.now();
        self.model.settle(workspace, now);
        let size = 2 + self.random.below(10);
        let keys: Vec<String> = (0..size)
            .map(|_| {
                self.keys += 1;
                format!("burst-{}", self.keys)
            })
            .collect();
        let answers = join_all(keys.iter().map(|key| {
            self.app.gql(
                Some(&self.service[workspace]),
                SPEND,
                json!({ "ws": workspace, "a": "TRIAGE", "k": key, "r": null }),
            )
        }))
        .await;
        let charged = answers
            .iter()
            .zip(&keys)
            .filter(|(answer, _)| Self::outcome(answer, "spendCredit") == "CHARGED")
            .map(|(_, key)| key.clone())
            .collect::<Vec<_>>();
        let expected = (size as i64).min(self.model.total(workspace));
        self.check("burst charges", &json!(charged.len()), &json!(expected));
        self.model.burn(workspace, expected);
        for key in charged {
            self.model
                .wallets
                .get_mut(workspace)
                .unwrap()
                .spend_keys
                .insert(key, "TRIAGE|".to_owned());
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
            90..=95 => self.burst(workspace).await,
            _ => {
                if self.model.wallets[workspace].anchor.is_none() {
                    self.change_to_pro(workspace).await;
                }
            }
        }
        self.check_balance(workspace).await;
    }
}

async fn service_agrees_with_the_model(app: TestApp) {
    let seed = seed(20_261_125);
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
    }
    for step in 0..operations {
        run.step = step;
        run.step().await;
    }
    for workspace in WORKSPACES {
        run.check_balance(workspace).await;
    }
}

both_backends!(service_agrees_with_the_model);
