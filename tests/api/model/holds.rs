//! The driver's hold operations: each through the API and the model's own
//! arithmetic (`rules.rs`), answers compared.

use super::rules::*;
use super::run::Run;
use super::*;

const RESERVE: &str = "mutation($ws: ID, $a: Action!, $c: Int, $k: String!, $ag: ID, $t: Int) {
  reserveCredits(input: {workspaceId: $ws, action: $a, credits: $c, holdKey: $k, agentId: $ag, ttlSeconds: $t}) {
    outcome hold { id } } }";

const CAPTURE: &str = "mutation($h: ID!, $c: Int) { captureHold(input: {holdId: $h, credits: $c}) {
  hold { capturedCredits uncollectedCredits } replayed } }";

impl Run {
    /// One hold operation: a new hold, a repeated key, a capture, a
    /// release or an extension of a hold drawn from the workspace's.
    pub(super) async fn hold_step(&mut self, workspace: &'static str) {
        let count = self.model.wallets[workspace].holds.len();
        // Mostly a live hold (the clock jumps expire many), sometimes any.
        let live: Vec<usize> = (0..count)
            .filter(|&index| self.model.wallets[workspace].holds[index].state == "HELD")
            .collect();
        let pick = |random: &mut crate::helpers::Random| {
            if !live.is_empty() && random.below(4) > 0 {
                live[random.below(live.len())]
            } else {
                random.below(count)
            }
        };
        match self.random.below(8) {
            0..=2 => {
                self.keys += 1;
                let key = format!("h-{}", self.keys);
                let credits = [1, 1, 2, 3][self.random.below(4)];
                self.reserve(workspace, key, credits).await;
                // Often the action runs (or dies) at once, as a worker's do.
                let last = self.model.wallets[workspace].holds.len();
                if last > count {
                    match self.random.below(4) {
                        0 | 1 => {
                            let credits = [None, Some(1), Some(3), Some(6)][self.random.below(4)];
                            self.capture(workspace, last - 1, credits).await;
                        }
                        2 => self.release(workspace, last - 1).await,
                        _ => {}
                    }
                }
            }
            3 if count > 0 => {
                let keys: Vec<String> = {
                    let mut keys: Vec<String> =
                        self.model.wallets[workspace].hold_keys.keys().cloned().collect();
                    keys.sort();
                    keys
                };
                let key = keys[self.random.below(keys.len())].clone();
                let credits = [1, 1, 2, 3][self.random.below(4)];
                self.reserve(workspace, key, credits).await;
            }
            4 | 5 if count > 0 => {
                let index = pick(&mut self.random);
                let credits = [None, Some(1), Some(3), Some(6)][self.random.below(4)];
                self.capture(workspace, index, credits).await;
            }
            6 if count > 0 => {
                let index = pick(&mut self.random);
                self.release(workspace, index).await;
            }
            7 if count > 0 => {
                let index = pick(&mut self.random);
                self.extend(workspace, index).await;
            }
            _ => {}
        }
    }

    async fn reserve(&mut self, workspace: &'static str, key: String, credits: i64) {
        let now = self.now();
        self.model.settle(workspace, now);
        let action = ACTIONS[self.random.below(3)];
        let agent = AGENTS[self.random.below(AGENTS.len())];
        let ttl = 3600 * (1 + self.random.below(24) as i64);
        // The model's fingerprint: every input but the key.
        let fingerprint = format!("{action}|{credits}|{ttl}|{}", agent.unwrap_or(""));
        let expected = match self.model.wallets[workspace].hold_keys.get(&key) {
            Some((bound, _)) if *bound == fingerprint => "DUPLICATE",
            Some(_) => "IDEMPOTENCY_CONFLICT",
            None if self
                .model
                .blocking(workspace, agent, action, now, credits)
                .is_some() =>
            {
                self.budget_refusals += 1;
                "BUDGET_EXCEEDED"
            }
            None if self.model.available(workspace) >= credits => "HELD",
            None => "INSUFFICIENT_CREDITS",
        };
        let answer = self
            .app
            .gql(
                Some(&self.service[workspace]),
                RESERVE,
                json!({ "ws": workspace, "a": action, "c": credits, "k": key, "ag": agent, "t": ttl }),
            )
            .await;
        let actual = Self::outcome(&answer, "reserveCredits");
        self.check(
            &format!("reserve {key} on {workspace}"),
            &json!(actual),
            &json!(expected),
        );
        if expected == "DUPLICATE" {
            let index = self.model.wallets[workspace].hold_keys[&key].1;
            let id = answer.data()["reserveCredits"]["hold"]["id"].clone();
            self.check(
                &format!("the hold {key} placed"),
                &id,
                &json!(self.model.wallets[workspace].holds[index].id),
            );
        }
        if expected != "HELD" {
            return;
        }
        let pins = self.model.pick(workspace, credits).unwrap();
        self.model.count(workspace, agent, action, now, credits);
        self.model.row(workspace, "HOLD", 0);
        let wallet = self.model.wallets.get_mut(workspace).unwrap();
        for (order, take) in &pins {
            let grant = wallet
                .grants
                .iter_mut()
                .find(|grant| grant.order == *order)
                .unwrap();
            grant.held += take;
        }
        wallet.hold_keys.insert(key, (fingerprint, wallet.holds.len()));
        wallet.holds.push(Hold {
            id: answer.data()["reserveCredits"]["hold"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
            credits,
            pins,
            expires_at: now + Duration::seconds(ttl),
            at: now,
            agent,
            action,
            state: "HELD",
            asked: 0,
        });
    }

    async fn capture(&mut self, workspace: &'static str, index: usize, credits: Option<i64>) {
        let now = self.now();
        self.model.settle(workspace, now);
        let hold = self.model.wallets[workspace].holds[index].clone();
        let answer = self
            .app
            .gql(
                Some(&self.service[workspace]),
                CAPTURE,
                json!({ "h": hold.id, "c": credits }),
            )
            .await;
        let what = format!("capture {:?} of hold {} ({})", credits, hold.id, hold.state);
        match hold.state {
            "HELD" => {
                let asked = credits.unwrap_or(hold.credits);
                let hold = self.model.unpin(workspace, index);
                // No longer held: what is available excludes it from here.
                let wallet = self.model.wallets.get_mut(workspace).unwrap();
                wallet.holds[index].state = "CAPTURED";
                wallet.holds[index].asked = asked;
                let from_hold = asked.min(hold.credits);
                let mut left = from_hold;
                let mut burns: Vec<(u64, i64)> = Vec::new();
                for (order, pinned) in &hold.pins {
                    let take = left.min(*pinned);
                    if take > 0 {
                        burns.push((*order, take));
                        left -= take;
                    }
                }
                {
                    let wallet = self.model.wallets.get_mut(workspace).unwrap();
                    for (order, take) in &burns {
                        let grant = wallet
                            .grants
                            .iter_mut()
                            .find(|grant| grant.order == *order)
                            .unwrap();
                        grant.remaining -= take;
                    }
                }
                let room = self.model.room(workspace, hold.agent, hold.action, now);
                let excess = (asked - from_hold)
                    .min(room)
                    .min(self.model.available(workspace))
                    .max(0);
                if excess > 0 {
                    self.model.burn(workspace, excess);
                }
                let collected = from_hold + excess;
                self.check(
                    &what,
                    &answer.data()["captureHold"]["hold"],
                    &json!({ "capturedCredits": collected, "uncollectedCredits": asked - collected }),
                );
                self.model.row(workspace, "SPEND", -collected);
                self.model
                    .recount(workspace, &hold, collected - hold.credits, excess, now);
                self.model.expire_freed(workspace, &hold.pins, now);
            }
            "CAPTURED" if credits.is_none_or(|credits| credits == hold.asked) => {
                self.check(&what, &answer.data()["captureHold"]["replayed"], &json!(true));
            }
            _ => self.check(
                &what,
                &json!(Self::ok_or_code(&answer)),
                &json!("HOLD_NOT_ACTIVE"),
            ),
        }
    }

    async fn release(&mut self, workspace: &'static str, index: usize) {
        let now = self.now();
        let query =
            "mutation($h: ID!) { releaseHold(input: {holdId: $h, reason: \"model\"}) { hold { state } } }";
        if self
            .live_hold_answers(workspace, index, "release", query, json!({}))
            .await
        {
            self.model.give_back(workspace, index, "RELEASED", now);
        }
    }

    async fn extend(&mut self, workspace: &'static str, index: usize) {
        let now = self.now();
        let ttl = 3600 * (1 + self.random.below(24) as i64);
        let query = "mutation($h: ID!, $t: Int) { extendHold(input: {holdId: $h, ttlSeconds: $t}) { hold { state } } }";
        if self
            .live_hold_answers(workspace, index, "extend", query, json!({ "t": ttl }))
            .await
        {
            self.model.wallets.get_mut(workspace).unwrap().holds[index].expires_at =
                now + Duration::seconds(ttl);
        }
    }

    /// Settles, sends `query` for hold `index` (`$h`, beside `variables`)
    /// and checks the answer: OK for a live hold, HOLD_NOT_ACTIVE for an
    /// ended one. Whether the hold was live.
    async fn live_hold_answers(
        &mut self,
        workspace: &'static str,
        index: usize,
        what: &str,
        query: &str,
        mut variables: Value,
    ) -> bool {
        self.model.settle(workspace, self.now());
        let hold = self.model.wallets[workspace].holds[index].clone();
        variables["h"] = json!(hold.id);
        let answer = self
            .app
            .gql(Some(&self.service[workspace]), query, variables)
            .await;
        let live = hold.state == "HELD";
        self.check(
            &format!("{what} hold {} ({})", hold.id, hold.state),
            &json!(Self::ok_or_code(&answer)),
            &json!(if live { "OK" } else { "HOLD_NOT_ACTIVE" }),
        );
        live
    }
}
