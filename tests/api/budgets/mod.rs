//! Budgets: caps per agent and per action, checked in the same atomic
//! spend as the charge (`docs/design/budgets.md`).

use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::helpers::client::Answer;

mod exact;
mod rules;
mod windows;

pub const SET_BUDGET: &str =
    "mutation($ws: ID, $name: String!, $to: BudgetTarget!, $agent: ID, $action: Action, \
    $window: BudgetWindow!, $limit: Int!, $mode: BudgetMode!) {
      setBudget(input: {workspaceId: $ws, name: $name, appliesTo: $to, agentId: $agent, action: $action,
        window: $window, limit: $limit, mode: $mode}) {
        budget { name appliesTo agentId action window limit mode }
      }
    }";

const SPEND: &str = "mutation($ws: ID, $action: Action!, $key: String!, $agent: ID) {
      spendCredit(input: {workspaceId: $ws, action: $action, idempotencyKey: $key, agentId: $agent}) {
        outcome
        balance { total }
        transaction { id agentId }
        budget { budget { name limit } agentId used remaining resetsAt }
        budgetWarnings { budget { name } agentId used remaining }
      }
    }";

/// A budget, as `setBudget` takes it.
pub struct Budget<'a> {
    pub name: &'a str,
    pub applies_to: &'a str,
    pub agent: Option<&'a str>,
    pub action: Option<&'a str>,
    pub window: &'a str,
    pub limit: i64,
    pub mode: &'a str,
}

impl<'a> Budget<'a> {
    /// A HARD daily budget of `limit` for every action.
    pub fn hard(name: &'a str, applies_to: &'a str, limit: i64) -> Self {
        Self {
            name,
            applies_to,
            agent: None,
            action: None,
            window: "DAY",
            limit,
            mode: "HARD",
        }
    }
}

impl TestApp {
    /// `setBudget`; the whole answer.
    pub async fn set_budget(&self, token: &str, workspace: Option<&str>, budget: &Budget<'_>) -> Answer {
        self.gql(
            Some(token),
            SET_BUDGET,
            json!({
                "ws": workspace, "name": budget.name, "to": budget.applies_to, "agent": budget.agent,
                "action": budget.action, "window": budget.window, "limit": budget.limit, "mode": budget.mode,
            }),
        )
        .await
    }

    /// `spendCredit` for an agent; the whole answer.
    pub async fn spend_for(&self, token: &str, action: &str, key: &str, agent: Option<&str>) -> Answer {
        self.gql(
            Some(token),
            SPEND,
            json!({ "action": action, "key": key, "agent": agent }),
        )
        .await
    }

    /// `spendCredit` for an agent, asserting no errors; the payload.
    pub async fn spend_for_ok(&self, token: &str, action: &str, key: &str, agent: Option<&str>) -> Value {
        self.spend_for(token, action, key, agent).await.data()["spendCredit"].clone()
    }

    /// `wallet.budgetUsage(agentId)`: (budget name, used, remaining) by name.
    pub async fn budget_usage(&self, token: &str, agent: Option<&str>) -> Vec<(String, i64, i64)> {
        let answer = self
            .gql(
                Some(token),
                "query($agent: ID) { wallet { budgetUsage(agentId: $agent) { budget { name } used remaining } } }",
                json!({ "agent": agent }),
            )
            .await;
        answer.data()["wallet"]["budgetUsage"]
            .as_array()
            .unwrap()
            .iter()
            .map(|usage| {
                (
                    usage["budget"]["name"].as_str().unwrap().to_owned(),
                    usage["used"].as_i64().unwrap(),
                    usage["remaining"].as_i64().unwrap(),
                )
            })
            .collect()
    }
}
