//! Holds: reserve when an AI action starts, capture what it cost, release
//! the rest (`docs/design/holds.md`), on both backends, through the real
//! server.

use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::helpers::client::Answer;

mod crash;
mod exact;
mod life;
mod stream;

const HOLD: &str = "id key state credits capturedCredits uncollectedCredits expiresAt action agentId reason";
const BALANCE: &str = "balance { total available held }";

/// A hold request beyond its key.
#[derive(Clone, Default)]
pub struct Ask<'a> {
    pub action: &'a str,
    pub credits: Option<i64>,
    pub agent: Option<&'a str>,
    pub reference: Option<&'a str>,
    pub ttl: Option<i64>,
}

impl<'a> Ask<'a> {
    /// `credits` for AUTO_RESOLVE.
    pub fn of(credits: i64) -> Self {
        Self {
            action: "AUTO_RESOLVE",
            credits: Some(credits),
            ..Self::default()
        }
    }
}

impl TestApp {
    /// `reserveCredits`; the whole answer.
    pub async fn reserve(&self, token: &str, key: &str, ask: &Ask<'_>) -> Answer {
        self.gql(
            Some(token),
            &format!(
                "mutation($action: Action!, $credits: Int, $key: String!, $agent: ID, $reference: String, $ttl: Int) {{
                  reserveCredits(input: {{action: $action, credits: $credits, holdKey: $key, agentId: $agent,
                    reference: $reference, ttlSeconds: $ttl}}) {{
                    outcome aiPaused hold {{ {HOLD} }} {BALANCE} budget {{ budget {{ name }} used }}
                  }}
                }}"
            ),
            json!({
                "action": if ask.action.is_empty() { "AUTO_RESOLVE" } else { ask.action },
                "credits": ask.credits, "key": key, "agent": ask.agent, "reference": ask.reference, "ttl": ask.ttl,
            }),
        )
        .await
    }

    /// `reserveCredits`, asserting no errors; the payload.
    pub async fn reserve_ok(&self, token: &str, key: &str, ask: &Ask<'_>) -> Value {
        self.reserve(token, key, ask).await.data()["reserveCredits"].clone()
    }

    /// `captureHold`; the whole answer.
    pub async fn capture(&self, token: &str, hold: &str, credits: Option<i64>) -> Answer {
        self.gql(
            Some(token),
            &format!(
                "mutation($hold: ID!, $credits: Int) {{ captureHold(input: {{holdId: $hold, credits: $credits}}) {{
                  hold {{ {HOLD} }} transaction {{ id kind amount holdId action agentId heldAfter }} {BALANCE} replayed
                }} }}"
            ),
            json!({ "hold": hold, "credits": credits }),
        )
        .await
    }

    /// `releaseHold`; the whole answer.
    pub async fn release(&self, token: &str, hold: &str, reason: &str) -> Answer {
        self.gql(
            Some(token),
            &format!(
                "mutation($hold: ID!, $reason: String!) {{ releaseHold(input: {{holdId: $hold, reason: $reason}}) {{
                  hold {{ {HOLD} }} transaction {{ id kind amount holdId }} {BALANCE}
                }} }}"
            ),
            json!({ "hold": hold, "reason": reason }),
        )
        .await
    }

    /// `extendHold`; the whole answer.
    pub async fn extend(&self, token: &str, hold: &str, ttl: i64) -> Answer {
        self.gql(
            Some(token),
            &format!(
                "mutation($hold: ID!, $ttl: Int) {{ extendHold(input: {{holdId: $hold, ttlSeconds: $ttl}}) {{
                  hold {{ {HOLD} }} {BALANCE}
                }} }}"
            ),
            json!({ "hold": hold, "ttl": ttl }),
        )
        .await
    }

    /// `wallet { balance }`: (total, available, held).
    pub async fn held_balance(&self, token: &str) -> (i64, i64, i64) {
        let answer = self
            .gql(Some(token), &format!("{{ wallet {{ {BALANCE} }} }}"), json!({}))
            .await;
        let balance = &answer.data()["wallet"]["balance"];
        (
            balance["total"].as_i64().unwrap(),
            balance["available"].as_i64().unwrap(),
            balance["held"].as_i64().unwrap(),
        )
    }

    /// `wallet.holds(state)`: the holds' (key, state, credits), newest first.
    pub async fn holds(&self, token: &str, state: Option<&str>) -> Vec<(String, String, i64)> {
        let answer = self
            .gql(
                Some(token),
                "query($state: HoldState) { wallet { holds(state: $state, first: 100) { nodes { key state credits } } } }",
                json!({ "state": state }),
            )
            .await;
        answer.data()["wallet"]["holds"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hold| {
                (
                    hold["key"].as_str().unwrap().to_owned(),
                    hold["state"].as_str().unwrap().to_owned(),
                    hold["credits"].as_i64().unwrap(),
                )
            })
            .collect()
    }
}

/// A workspace whose trial holds `credits`; its service token.
pub async fn wallet_of(app: &TestApp, workspace: &str, credits: i64) -> String {
    app.set_trial_credits(credits).await;
    app.create_workspace(workspace).await;
    app.token("service", Some(workspace))
}

/// The id of the hold in a `reserveCredits` payload.
pub fn hold_id(payload: &Value) -> String {
    payload["hold"]["id"].as_str().unwrap().to_owned()
}
