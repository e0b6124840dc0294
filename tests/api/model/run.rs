//! The driver: draws operations, sends each through the API and the
//! model, and compares answers, balances and ledger rows.

use super::rules::*;
use super::*;

pub(super) struct Run {
    pub(super) app: TestApp,
    pub(super) model: Model,
    pub(super) random: Random,
    pub(super) seed: u64,
    pub(super) step: usize,
    pub(super) operator: String,
    pub(super) service: HashMap<&'static str, String>,
    pub(super) admin: HashMap<&'static str, String>,
    pub(super) keys: usize,
    /// Spends the model expected a budget to refuse.
    pub(super) budget_refusals: usize,
}

pub(super) const SPEND: &str = "mutation($ws: ID, $a: Action!, $k: String!, $r: String, $ag: ID) { spendCredit(input: {workspaceId: $ws, action: $a, idempotencyKey: $k, reference: $r, agentId: $ag}) { outcome balance { total allocation purchased bonus } transaction { id } } }";

/// A spend request's identity, as the model keeps it.
fn fingerprint(action: &str, reference: Option<&str>, agent: Option<&str>) -> String {
    format!("{action}|{}|{}", reference.unwrap_or(""), agent.unwrap_or(""))
}

impl Run {
    pub(super) fn now(&self) -> DateTime<Utc> {
        self.app.clock_now()
    }

    pub(super) fn check(&self, what: &str, actual: &Value, expected: &Value) {
        assert_eq!(
            actual, expected,
            "seed {} step {}: {what} (replay: SEED={} cargo test model)",
            self.seed, self.step, self.seed
        );
    }

    pub(super) async fn check_balance(&self, workspace: &'static str) {
        let answer = self
            .app
            .gql(
                Some(&self.service[workspace]),
                "{ wallet { balance { total allocation purchased bonus available held } } }",
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
    pub(super) fn ok_or_code(answer: &Answer) -> String {
        if answer.body["errors"].is_array() {
            answer.code()
        } else {
            "OK".to_owned()
        }
    }

    pub(super) fn outcome(answer: &Answer, field: &str) -> String {
        match answer.body["data"][field]["outcome"].as_str() {
            Some(outcome) => outcome.to_owned(),
            None => answer.code(),
        }
    }

    pub(super) async fn spend(
        &mut self,
        workspace: &'static str,
        action: &'static str,
        key: String,
        reference: Option<&str>,
        agent: Option<&'static str>,
    ) {
        let now = self.now();
        self.model.settle(workspace, now);
        let fingerprint = fingerprint(action, reference, agent);
        let wallet = &self.model.wallets[workspace];
        let expected = match wallet.spend_keys.get(&key) {
            Some(bound) if *bound == fingerprint => "DUPLICATE",
            Some(_) => "IDEMPOTENCY_CONFLICT",
            None if self.model.blocking(workspace, agent, action, now, 1).is_some() => {
                self.budget_refusals += 1;
                "BUDGET_EXCEEDED"
            }
            None if self.model.available(workspace) >= 1 => "CHARGED",
            None => "INSUFFICIENT_CREDITS",
        };
        let answer = self
            .app
            .gql(
                Some(&self.service[workspace]),
                SPEND,
                json!({ "ws": workspace, "a": action, "k": key, "r": reference, "ag": agent }),
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
            self.model.count(workspace, agent, action, now, 1);
            let wallet = self.model.wallets.get_mut(workspace).unwrap();
            wallet.spend_keys.insert(key, fingerprint);
            wallet.charges.push(Charge {
                transaction_id: answer.data()["spendCredit"]["transaction"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                grant_order,
                reversed: false,
                agent,
                action,
                at: now,
            });
        }
    }

    pub(super) async fn top_up(&mut self, workspace: &'static str) {
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
            .top_up(&self.operator, Some(workspace), pack, &reference)
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

    pub(super) async fn adjust(&mut self, workspace: &'static str) {
        let now = self.now();
        self.model.settle(workspace, now);
        let credits = self.random.below(40) as i64 - 15;
        let credits = if credits == 0 { 1 } else { credits };
        let expected = if credits > 0 || self.model.available(workspace) >= -credits {
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

    pub(super) async fn reverse(&mut self, workspace: &'static str) {
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
            self.model.uncount(workspace, &charge, now);
            let wallet = self.model.wallets.get_mut(workspace).unwrap();
            wallet.charges[index].reversed = true;
            // A grant past its expiry (kept while holds pin it) is not live.
            match wallet
                .grants
                .iter_mut()
                .find(|grant| grant.order == charge.grant_order && grant.expires_at.is_none_or(|at| at > now))
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
    pub(super) async fn change_plan(&mut self, workspace: &'static str, target: &'static str) {
        let now = self.now();
        self.model.settle(workspace, now);
        let admin = self.admin[workspace].clone();
        let answer = self.app.set_plan(&admin, target, None).await;
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
    pub(super) async fn burst(&mut self) {
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
                .filter(|(_, bound)| **bound == fingerprint("TRIAGE", None, None))
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
            // What the HARD budgets counting a TRIAGE spend with no agent
            // still allow; past it, refusals are BUDGET_EXCEEDED.
            let allowed = self
                .model
                .counting(workspace, None, Some("TRIAGE"), now)
                .iter()
                .filter(|(budget, ..)| budget.hard)
                .map(|(budget, _, _, used)| (budget.limit - used).max(0))
                .min()
                .unwrap_or(i64::MAX);
            let mut charged = Vec::new();
            let mut fresh = 0;
            let mut refusals = Vec::new();
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
                        refusals.push((key.clone(), outcome));
                    }
                }
            }
            let expected = (fresh as i64).min(self.model.available(workspace)).min(allowed);
            let refusal = if expected >= allowed {
                "BUDGET_EXCEEDED"
            } else {
                "INSUFFICIENT_CREDITS"
            };
            for (key, outcome) in refusals {
                self.check(&format!("burst {key}"), &json!(outcome), &json!(refusal));
            }
            self.check(
                &format!("burst charges on {workspace}"),
                &json!(charged.len()),
                &json!(expected),
            );
            self.model.burn(workspace, expected);
            self.model.count(workspace, None, "TRIAGE", now, expected);
            for key in charged {
                self.model.row(workspace, "SPEND", -1);
                self.model
                    .wallets
                    .get_mut(workspace)
                    .unwrap()
                    .spend_keys
                    .insert(key, fingerprint("TRIAGE", None, None));
            }
        }
    }

    pub(super) async fn advance(&mut self) {
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

    pub(super) async fn step(&mut self) {
        let workspace = WORKSPACES[self.random.below(WORKSPACES.len())];
        let roll = self.random.below(100);
        match roll {
            0..=27 => {
                self.keys += 1;
                let key = format!("k-{}", self.keys);
                let action = ACTIONS[self.random.below(3)];
                let agent = AGENTS[self.random.below(AGENTS.len())];
                self.spend(workspace, action, key, None, agent).await;
            }
            28..=45 => self.hold_step(workspace).await,
            46..=51 => {
                // A repeat of a recent key, sometimes with another reference.
                let key = format!("k-{}", self.keys.saturating_sub(self.random.below(20)).max(1));
                let reference = ["", "", "", "other"][self.random.below(4)];
                let action = ACTIONS[self.random.below(3)];
                let reference = (!reference.is_empty()).then_some(reference);
                let agent = AGENTS[self.random.below(AGENTS.len())];
                self.spend(workspace, action, key, reference, agent).await;
            }
            52..=59 => self.top_up(workspace).await,
            60..=69 => self.adjust(workspace).await,
            70..=79 => self.reverse(workspace).await,
            80..=89 => self.advance().await,
            90..=94 => self.burst().await,
            95..=97 => {
                let target = PLANS[self.random.below(PLANS.len())].0;
                self.change_plan(workspace, target).await;
            }
            _ => self.change_limit(workspace).await,
        }
        self.check_balance(workspace).await;
        if self.step.is_multiple_of(4) {
            self.check_budgets(workspace).await;
        }
        // Rows every 8th step (and at the end): reading a whole ledger per
        // step would make the run quadratic.
        if self.step.is_multiple_of(8) {
            self.check_rows(workspace).await;
        }
    }

    /// The wallet's ledger rows, settled as of now, against the model's.
    pub(super) async fn check_rows(&self, workspace: &'static str) {
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

impl Run {
    /// `setBudget` as the model's budget says.
    pub(super) async fn set_budget(&self, workspace: &'static str, budget: &Budget) {
        self.app
            .gql(
                Some(&self.admin[workspace]),
                crate::budgets::SET_BUDGET,
                json!({
                    "ws": workspace, "name": budget.name, "to": budget.applies_to, "agent": budget.agent,
                    "action": budget.action, "window": budget.window, "limit": budget.limit,
                    "mode": if budget.hard { "HARD" } else { "SOFT" },
                }),
            )
            .await
            .data();
    }

    /// A new limit for one budget: its counters are kept.
    pub(super) async fn change_limit(&mut self, workspace: &'static str) {
        let budgets = &self.model.wallets[workspace].budgets;
        let index = self.random.below(budgets.len());
        let mut budget = budgets[index].clone();
        budget.limit = self.random.below(6) as i64;
        self.set_budget(workspace, &budget).await;
        self.model.wallets.get_mut(workspace).unwrap().budgets[index] = budget;
    }

    /// `wallet.budgetUsage` for a drawn agent against the model's counters.
    pub(super) async fn check_budgets(&mut self, workspace: &'static str) {
        let agent = AGENTS[self.random.below(AGENTS.len())];
        let actual: Vec<(String, i64)> = self
            .app
            .budget_usage(&self.service[workspace], agent)
            .await
            .into_iter()
            .map(|(name, used, _)| (name, used))
            .collect();
        let now = self.now();
        self.model.settle(workspace, now);
        let expected: Vec<(String, i64)> = self
            .model
            .counting(workspace, agent, None, now)
            .into_iter()
            .map(|(budget, _, _, used)| (budget.name.to_owned(), used))
            .collect();
        self.check(
            &format!("budget usage of {workspace} for {agent:?}"),
            &json!(actual),
            &json!(expected),
        );
    }
}
