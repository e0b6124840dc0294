//! A GraphQL client with one method per operation.

use serde_json::{Value, json};

use super::TestApp;

/// A GraphQL answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// `data`, asserting there were no errors.
    pub fn data(&self) -> &Value {
        assert!(
            self.body.get("errors").is_none(),
            "unexpected errors: {}",
            self.body
        );
        &self.body["data"]
    }

    /// The first error's `extensions.code`.
    /// The error's code, or `OK` for an answer without errors.
    pub fn code_or_ok(&self) -> String {
        match self.body["errors"][0]["extensions"]["code"].as_str() {
            Some(code) => code.to_owned(),
            None if self.body.get("errors").is_none() => "OK".to_owned(),
            None => panic!("an error without a code: {}", self.body),
        }
    }

    pub fn code(&self) -> String {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("expected an error with a code, got {}", self.body))
            .to_owned()
    }
}

impl TestApp {
    /// POSTs a GraphQL request, with a token when given.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Answer {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.address))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let body = response.json().await.expect("a JSON body");
        Answer { status, body }
    }

    /// `createWorkspace` as an operator; returns the wallet.
    pub async fn create_workspace(&self, workspace_id: &str) -> Value {
        let answer = self
            .gql(
                Some(&self.operator()),
                "mutation($id: ID!) { createWorkspace(input: {workspaceId: $id, name: \"Test\"}) { wallet { workspaceId balance { total allocation purchased bonus } plan trialEndsAt aiPaused lastSequence } } }",
                json!({ "id": workspace_id }),
            )
            .await;
        answer.data()["createWorkspace"]["wallet"].clone()
    }

    /// `spendCredit`; returns the whole answer.
    pub async fn spend(&self, token: &str, action: &str, key: &str, reference: Option<&str>) -> Answer {
        self.gql(
            Some(token),
            "mutation($action: Action!, $key: String!, $reference: String) {
               spendCredit(input: {action: $action, idempotencyKey: $key, reference: $reference}) {
                 outcome cost nextResetAt aiPaused
                 balance { total allocation purchased bonus }
                 transaction { id sequence kind amount balanceAfter action reference actor idempotencyKey }
                 suggestedTopUp { code credits priceCents currency }
               }
             }",
            json!({ "action": action, "key": key, "reference": reference }),
        )
        .await
    }

    /// `spendCredit`'s payload, asserting no errors.
    pub async fn spend_ok(&self, token: &str, action: &str, key: &str) -> Value {
        self.spend(token, action, key, None).await.data()["spendCredit"].clone()
    }

    /// `purchaseTopUp`; returns the whole answer.
    pub async fn top_up(
        &self,
        token: &str,
        workspace: Option<&str>,
        pack: &str,
        payment_reference: &str,
    ) -> Answer {
        self.gql(
            Some(token),
            "mutation($ws: ID, $pack: TopUpPackCode!, $ref: String!) {
               purchaseTopUp(input: {workspaceId: $ws, pack: $pack, paymentReference: $ref}) {
                 outcome balance { total allocation purchased bonus }
                 transaction { id sequence kind amount balanceAfter reference }
               }
             }",
            json!({ "ws": workspace, "pack": pack, "ref": payment_reference }),
        )
        .await
    }

    /// `changePlan`; returns the whole answer.
    pub async fn change_plan(
        &self,
        token: &str,
        workspace: Option<&str>,
        plan: &str,
        enterprise: Option<i64>,
    ) -> Answer {
        self.gql(
            Some(token),
            "mutation($ws: ID, $plan: PlanCode!, $credits: Int) {
               changePlan(input: {workspaceId: $ws, plan: $plan, enterpriseMonthlyCredits: $credits}) {
                 wallet { plan pendingPlan balance { total allocation purchased bonus } currentPeriod { start end } aiPaused }
               }
             }",
            json!({ "ws": workspace, "plan": plan, "credits": enterprise }),
        )
        .await
    }

    /// The back office (an operator) changes the plan of the workspace
    /// `token` belongs to: plans are the operator's since they follow the
    /// payment provider, so arrange steps set them so.
    pub async fn set_plan(&self, token: &str, plan: &str, enterprise: Option<i64>) -> Answer {
        use base64::Engine;
        let payload = token.split('.').nth(1).expect("a JWT");
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .expect("base64url claims"),
        )
        .expect("JSON claims");
        let workspace = claims["workspace_id"]
            .as_str()
            .expect("a workspace token")
            .to_owned();
        self.change_plan(&self.operator(), Some(&workspace), plan, enterprise)
            .await
    }

    /// `wallet` of the token's workspace (or `workspace`).
    pub async fn wallet(&self, token: &str, workspace: Option<&str>) -> Answer {
        self.gql(
            Some(token),
            "query($ws: ID) { wallet(workspaceId: $ws) {
               workspaceId plan pendingPlan trialEndsAt aiPaused lastSequence
               balance { total allocation purchased bonus }
               currentPeriod { start end }
             } }",
            json!({ "ws": workspace }),
        )
        .await
    }

    /// Every transaction of a workspace, newest first (one page of 100).
    pub async fn transactions(&self, workspace: &str) -> Vec<Value> {
        let answer = self
            .gql(
                Some(&self.operator()),
                "query($ws: ID) { wallet(workspaceId: $ws) { transactions(first: 100) {
                   edges { node { id sequence kind amount balanceAfter action reference actor idempotencyKey } }
                 } } }",
                json!({ "ws": workspace }),
            )
            .await;
        answer.data()["wallet"]["transactions"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|edge| edge["node"].clone())
            .collect()
    }

    /// The balance total of a workspace.
    pub async fn balance_total(&self, workspace: &str) -> i64 {
        self.wallet(&self.operator(), Some(workspace)).await.data()["wallet"]["balance"]["total"]
            .as_i64()
            .unwrap()
    }

    /// Sets the trial's one-time credits in the catalogue (it is data).
    pub async fn set_trial_credits(&self, credits: i64) {
        self.execute_sql(&format!(
            "UPDATE plan SET monthly_credits = {credits} WHERE code = 'PRO_TRIAL'"
        ))
        .await;
    }
}

impl TestApp {
    /// `createWorkspace` with a given (operator) token.
    pub async fn create_workspace_with_token(&self, workspace_id: &str, token: &str) -> Value {
        let answer = self
            .gql(
                Some(token),
                "mutation($id: ID!) { createWorkspace(input: {workspaceId: $id, name: \"Test\"}) { wallet { workspaceId balance { total } } } }",
                json!({ "id": workspace_id }),
            )
            .await;
        answer.data()["createWorkspace"]["wallet"].clone()
    }
}

impl TestApp {
    /// A metric's value from `/metrics`; a series the server does not
    /// export fails the test.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = text
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")));
        // A series the server does not export (renamed, say) fails the
        // test rather than reading as 0.
        let value = value.unwrap_or_else(|| panic!("the server exports no series {name}:\n{text}"));
        value.parse().unwrap()
    }

    /// The wallet's ledger as (kind, amount) rows, oldest first, read from
    /// the database directly (reading through the API would settle it).
    pub async fn ledger_rows(&self, workspace: &str) -> Vec<(String, i64)> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        let wallet = entity::wallet::Entity::find()
            .filter(entity::wallet::Column::WorkspaceId.eq(workspace))
            .one(self.db())
            .await
            .unwrap()
            .expect("the wallet exists");
        entity::ledger_entry::Entity::find()
            .filter(entity::ledger_entry::Column::WalletId.eq(wallet.id))
            .order_by_asc(entity::ledger_entry::Column::Sequence)
            .all(self.db())
            .await
            .unwrap()
            .into_iter()
            .map(|row| (row.kind, row.amount_credits))
            .collect()
    }
}

/// Shorthand for expected ledger rows.
pub fn rows(expected: &[(&str, i64)]) -> Vec<(String, i64)> {
    expected
        .iter()
        .map(|(kind, amount)| ((*kind).to_owned(), *amount))
        .collect()
}
