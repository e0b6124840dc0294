//! The `Wallet` object and its fields' queries.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::*;
use crate::auth::WalletScope;
use crate::error::AppError;
use crate::graphql::connection::{decode_cursor, encode_cursor};
use crate::graphql::errors::GraphqlResult;
use crate::graphql::ledger;
use crate::service::{self, EntryFilter, TRANSACTIONS_PAGE_DEFAULT, TRANSACTIONS_PAGE_MAX, TransactionQuery};

/// A workspace's wallet.
pub struct Wallet {
    pub(crate) view: service::WalletView,
    pub(crate) scope: WalletScope,
}

/// A workspace's credit wallet.
#[Object]
impl Wallet {
    /// The workspace it belongs to.
    async fn workspace_id(&self) -> ID {
        ID(self.view.workspace_id.clone())
    }

    /// The workspace (its time zone).
    async fn workspace(&self) -> Workspace {
        Workspace {
            id: ID(self.view.workspace_id.clone()),
            time_zone: self.view.time_zone.clone(),
        }
    }

    /// The workspace's budgets, by name.
    async fn budgets(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Budget>> {
        let budgets = ledger(ctx).gql()?.budgets(&self.scope).await.gql()?;
        Ok(budgets.into_iter().map(Into::into).collect())
    }

    /// Each budget that counts this agent's spends (with no agent: the
    /// WORKSPACE budgets), with what it used in its current window.
    async fn budget_usage(
        &self,
        ctx: &Context<'_>,
        agent_id: Option<ID>,
    ) -> async_graphql::Result<Vec<BudgetUsage>> {
        let agent = agent_id
            .as_ref()
            .map(|agent| domain::budget::check_agent_id(agent).map(|()| agent.as_str()))
            .transpose()
            .map_err(AppError::from)
            .gql()?;
        let usage = ledger(ctx).gql()?.budget_usage(&self.scope, agent).await.gql()?;
        Ok(usage.into_iter().map(Into::into).collect())
    }

    /// Credits spent over `[from, to)` (at most 400 days) per agent, net of
    /// reversals: agents by id, then spends that named no agent.
    async fn usage_by_agent(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> async_graphql::Result<Vec<AgentUsage>> {
        let agents = ledger(ctx)
            .gql()?
            .usage_by_agent(&self.scope, from, to)
            .await
            .gql()?;
        Ok(agents
            .into_iter()
            .map(|agent| AgentUsage {
                agent_id: agent.agent_id.map(ID),
                total: int(agent.credits_by_action.iter().map(|(_, credits)| credits).sum()),
                by_action: action_usage(agent.credits_by_action),
            })
            .collect())
    }

    /// The runway: the trailing week's burn and when the balance runs out
    /// at that pace.
    async fn forecast(&self, ctx: &Context<'_>) -> async_graphql::Result<Forecast> {
        let forecast = ledger(ctx).gql()?.forecast(&self.scope, &self.view).await.gql()?;
        Ok(forecast.into())
    }

    /// Automatic top-up; null until it is set.
    async fn auto_top_up(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<AutoTopUp>> {
        let view = ledger(ctx)
            .gql()?
            .auto_top_up(&self.scope, &self.view)
            .await
            .gql()?;
        Ok(view.map(Into::into))
    }

    /// The spendable balance and its split.
    async fn balance(&self) -> Balance {
        self.view.balance.into()
    }

    /// The Stripe subscription the plan follows; null when an operator set
    /// the plan (or none was ever bought).
    async fn subscription(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<BillingSubscription>> {
        let view = ledger(ctx)
            .gql()?
            .subscription_of(self.view.subscription_id.as_deref(), self.view.grace_ends_at)
            .await
            .gql()?;
        Ok(view.map(Into::into))
    }

    /// The current plan (after a paid plan ended: the last one it had, with
    /// `currentPeriod` null).
    async fn plan(&self) -> PlanCode {
        self.view.plan.into()
    }

    /// A downgrade that takes effect at the next reset.
    async fn pending_plan(&self) -> Option<PlanCode> {
        self.view.pending_plan.map(Into::into)
    }

    /// The current billing period; null until a paid plan starts.
    async fn current_period(&self) -> Option<Period> {
        self.view.current_period.map(|period| Period {
            start: period.start,
            end: period.end,
        })
    }

    /// When the trial ends (or ended).
    async fn trial_ends_at(&self) -> Option<DateTime<Utc>> {
        self.view.trial_ends_at
    }

    /// True when the balance cannot pay for any AI action: AI is paused,
    /// everything else keeps working.
    async fn ai_paused(&self) -> bool {
        self.view.ai_paused
    }

    /// The sequence of the newest transaction (0 when there is none).
    async fn last_sequence(&self) -> i32 {
        int(self.view.last_sequence)
    }

    /// The per-period allocation of an ENTERPRISE wallet.
    async fn enterprise_monthly_credits(&self) -> Option<i32> {
        self.view.enterprise_monthly_credits.map(int)
    }

    /// Alert when the balance falls below this many credits; null when off.
    async fn low_balance_threshold(&self) -> Option<i32> {
        self.view.low_balance_threshold.map(int)
    }

    /// When the outstanding low-balance alert fired; null when armed (the
    /// balance is at or above the threshold, or no threshold is set).
    async fn low_balance_alerted_at(&self) -> Option<DateTime<Utc>> {
        self.view.low_balance_alerted_at
    }

    /// The latest low-balance alerts (up to 50), newest first.
    async fn low_balance_alerts(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<LowBalanceAlert>> {
        let alerts = ledger(ctx).gql()?.low_balance_alerts(&self.scope).await.gql()?;
        Ok(alerts
            .into_iter()
            .map(|alert| LowBalanceAlert {
                threshold: int(alert.threshold),
                balance: int(alert.balance),
                sequence: int(alert.sequence),
                created_at: alert.created_at,
            })
            .collect())
    }

    /// Credits spent per action per UTC bucket over `[from, to)`, net of
    /// reversals (at most 400 buckets).
    async fn usage(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: UsageBucketSize,
        #[graphql(default = false, desc = "Also split each bucket per agent (`byAgent`).")] by_agent: bool,
    ) -> async_graphql::Result<Vec<UsageBucket>> {
        let buckets = ledger(ctx)
            .gql()?
            .usage(&self.scope, from, to, bucket.into(), by_agent)
            .await
            .gql()?;
        Ok(buckets
            .into_iter()
            .map(|bucket| UsageBucket {
                start: bucket.start,
                end: bucket.end,
                total: int(bucket.credits_by_action.iter().map(|(_, credits)| credits).sum()),
                by_action: action_usage(bucket.credits_by_action),
                by_agent: bucket
                    .by_agent
                    .into_iter()
                    .map(|agent| AgentUsage {
                        agent_id: agent.agent_id.map(ID),
                        total: int(agent.credits_by_action.iter().map(|(_, credits)| credits).sum()),
                        by_action: action_usage(agent.credits_by_action),
                    })
                    .collect(),
            })
            .collect())
    }

    /// The ledger, newest first, as a Relay cursor connection.
    #[graphql(complexity = "first.unwrap_or(20).clamp(1, 100) as usize * child_complexity")]
    async fn transactions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "A cursor from a previous page's `pageInfo.endCursor`.")] after: Option<String>,
        filter: Option<TransactionFilter>,
    ) -> async_graphql::Result<Connection<String, Transaction, EmptyFields, EmptyFields>> {
        let query = transaction_query(first, after, filter).gql()?;
        let page = ledger(ctx).gql()?.transactions(&self.scope, &query).await.gql()?;
        let has_previous_page = query.before_sequence.is_some();
        let mut connection = Connection::new(has_previous_page, page.has_next_page);
        let ids: Vec<i64> = page.transactions.iter().map(|view| view.id).collect();
        let mut moves = ledger(ctx).gql()?.grant_moves(&ids).await.gql()?.into_iter();
        connection.edges.extend(page.transactions.into_iter().map(|view| {
            let sequence = view.sequence;
            let mut transaction = Transaction::from(view);
            transaction.preloaded_grants = moves
                .next()
                .map(|(_, views)| views.into_iter().map(Into::into).collect());
            Edge::new(encode_cursor(sequence), transaction)
        }));
        Ok(connection)
    }

    /// This wallet's holds, newest first (`reserveCredits`).
    #[graphql(complexity = "first.unwrap_or(20).clamp(1, 100) as usize * child_complexity")]
    async fn holds(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only holds in this state.")] state: Option<super::HoldState>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "A previous page's `endCursor`.")] after: Option<String>,
    ) -> async_graphql::Result<super::HoldPage> {
        let limit = match first {
            None => 20,
            Some(first) => u64::try_from(first)
                .ok()
                .filter(|first| (1..=100).contains(first))
                .ok_or_else(|| AppError::invalid("first", "must be 1 to 100"))
                .gql()?,
        };
        let before = after
            .map(|cursor| {
                cursor
                    .parse::<i64>()
                    .ok()
                    .filter(|id| *id > 0)
                    .ok_or_else(|| AppError::invalid("after", "is not a cursor of this list"))
            })
            .transpose()
            .gql()?;
        let holds = ledger(ctx)
            .gql()?
            .holds(&self.scope, state.map(Into::into), before, limit)
            .await
            .gql()?;
        let end_cursor = (holds.len() as u64 == limit)
            .then(|| holds.last().map(|hold| hold.id.to_string()))
            .flatten();
        Ok(super::HoldPage {
            nodes: holds.into_iter().map(Into::into).collect(),
            end_cursor,
        })
    }
}

fn transaction_query(
    first: Option<i32>,
    after: Option<String>,
    filter: Option<TransactionFilter>,
) -> Result<TransactionQuery, AppError> {
    let first = match first {
        None => TRANSACTIONS_PAGE_DEFAULT,
        Some(first) => u64::try_from(first)
            .ok()
            .filter(|first| (1..=TRANSACTIONS_PAGE_MAX).contains(first))
            .ok_or_else(|| AppError::invalid("first", format!("must be 1 to {TRANSACTIONS_PAGE_MAX}")))?,
    };
    let before_sequence = after.as_deref().map(decode_cursor).transpose()?;
    let filter = filter.unwrap_or_default();
    for (field, instant) in [("filter.from", filter.from), ("filter.to", filter.to)] {
        if let Some(instant) = instant {
            domain::usage::check_instant(field, instant)?;
        }
    }
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from > to
    {
        return Err(AppError::invalid("filter.from", "must not be after filter.to"));
    }
    if filter
        .reference
        .as_ref()
        .is_some_and(|reference| reference.chars().count() > 200)
    {
        return Err(AppError::invalid(
            "filter.reference",
            "must be at most 200 characters",
        ));
    }
    Ok(TransactionQuery {
        first,
        before_sequence,
        filter: EntryFilter {
            kinds: filter
                .kinds
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            actions: filter
                .actions
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            from: filter.from,
            to: filter.to,
            reference: filter.reference,
        },
    })
}

/// Credits per action as GraphQL objects.
fn action_usage(credits_by_action: Vec<(domain::catalogue::Action, i64)>) -> Vec<ActionUsage> {
    credits_by_action
        .into_iter()
        .map(|(action, credits)| ActionUsage {
            action: action.into(),
            credits: int(credits),
        })
        .collect()
}
