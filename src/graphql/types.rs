//! Public GraphQL types. Names are the contract (../shared/CONTRACT.md);
//! they are set here, apart from storage, so a column rename cannot change
//! the API.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::connection::{decode_cursor, encode_cursor};
use super::ledger;
use crate::auth::WalletScope;
use crate::domain::catalogue as domain;
use crate::domain::spend::SpendOutcome as DomainSpendOutcome;
use crate::error::{AppError, GraphqlResult};
use crate::service::{self, TRANSACTIONS_PAGE_DEFAULT, TRANSACTIONS_PAGE_MAX, TransactionQuery};
use crate::store::ledger::EntryFilter;

/// Converts a stored amount to GraphQL `Int`. Writes refuse any balance
/// above `i32::MAX` (see `service`), so stored amounts always fit.
pub fn int(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(if value < 0 { i32::MIN } else { i32::MAX })
}

/// An AI action that costs credits.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::Action")]
pub enum Action {
    /// A new ticket labelled and routed.
    Triage,
    /// One auto-resolve attempt (charged even when nothing is sent).
    AutoResolve,
    /// The assistant loads when an agent opens a thread.
    Sidekick,
}

/// A plan of the catalogue.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::PlanCode")]
pub enum PlanCode {
    /// Free 7-day trial with one-time credits.
    ProTrial,
    /// Starter.
    Starter,
    /// Pro.
    Pro,
    /// Business.
    Business,
    /// Enterprise: allocation set per workspace by an operator.
    Enterprise,
}

/// A top-up pack.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::PackCode")]
pub enum TopUpPackCode {
    /// 100 credits.
    #[graphql(name = "PACK_100")]
    Pack100,
    /// 500 credits.
    #[graphql(name = "PACK_500")]
    Pack500,
    /// 2,500 credits.
    #[graphql(name = "PACK_2500")]
    Pack2500,
}

/// The kind of a ledger transaction.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::LedgerKind")]
pub enum TransactionKind {
    /// Trial credits or a period's allocation granted.
    Grant,
    /// One AI action paid.
    Spend,
    /// Unused credits of a grant that ended.
    Expire,
    /// A purchased pack.
    TopUp,
    /// An operator's correction.
    Adjustment,
    /// The undoing of an earlier transaction.
    Reversal,
}

/// What a spend did.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "DomainSpendOutcome")]
pub enum SpendOutcome {
    /// The action was paid.
    Charged,
    /// Not enough credits: nothing was charged, AI should pause.
    InsufficientCredits,
    /// This idempotency key already paid for this request; nothing was charged again.
    Duplicate,
}

/// What a top-up did.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "service::TopUpOutcome")]
pub enum TopUpOutcome {
    /// The pack's credits were granted.
    Applied,
    /// This payment reference was already applied; nothing was granted again.
    Duplicate,
}

/// A plan of the catalogue.
#[derive(SimpleObject)]
pub struct Plan {
    /// Its code.
    pub code: PlanCode,
    /// Its display name.
    pub name: String,
    /// Monthly price in cents; null when the price is custom.
    pub price_cents: Option<i32>,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Credits per billing period (one time for the trial); null when set per workspace.
    pub monthly_credits: Option<i32>,
    /// Whether this is the trial.
    pub is_trial: bool,
    /// Length of the trial in days.
    pub trial_days: Option<i32>,
}

impl From<service::PlanView> for Plan {
    fn from(view: service::PlanView) -> Self {
        Self {
            code: view.code.into(),
            name: view.name,
            price_cents: view.price_cents.map(int),
            currency: view.currency,
            monthly_credits: view.monthly_credits.map(int),
            is_trial: view.is_trial,
            trial_days: view.trial_days,
        }
    }
}

/// A top-up pack: never-expiring credits.
#[derive(SimpleObject)]
pub struct TopUpPack {
    /// Its code.
    pub code: TopUpPackCode,
    /// Price in cents.
    pub price_cents: i32,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Credits granted.
    pub credits: i32,
}

impl From<service::PackView> for TopUpPack {
    fn from(view: service::PackView) -> Self {
        Self {
            code: view.code.into(),
            price_cents: int(view.price_cents),
            currency: view.currency,
            credits: int(view.credits),
        }
    }
}

/// The cost of one AI action.
#[derive(SimpleObject)]
pub struct ActionCost {
    /// The action.
    pub action: Action,
    /// Credits it costs.
    pub credits: i32,
    /// What it is.
    pub description: String,
}

impl From<service::ActionCostView> for ActionCost {
    fn from(view: service::ActionCostView) -> Self {
        Self {
            action: view.action.into(),
            credits: int(view.credits),
            description: view.description,
        }
    }
}

/// A balance, split by where the credits came from.
#[derive(SimpleObject, Clone, Copy)]
pub struct Balance {
    /// Every spendable credit.
    pub total: i32,
    /// The current billing period's plan allocation.
    pub allocation: i32,
    /// Purchased top-up packs (never expire).
    pub purchased: i32,
    /// Trial credits and operator adjustments.
    pub bonus: i32,
}

impl From<service::BalanceView> for Balance {
    fn from(view: service::BalanceView) -> Self {
        Self {
            total: int(view.total),
            allocation: int(view.split.allocation),
            purchased: int(view.split.purchased),
            bonus: int(view.split.bonus),
        }
    }
}

/// A billing period, `[start, end)`, in UTC.
#[derive(SimpleObject)]
pub struct Period {
    /// First instant of the period.
    pub start: DateTime<Utc>,
    /// First instant after it: the next reset.
    pub end: DateTime<Utc>,
}

/// One ledger transaction: a change of the balance.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Transaction {
    /// Its id.
    pub id: ID,
    /// Its position in the wallet's ledger: 1, 2, 3… with no gaps.
    pub sequence: i32,
    /// Its kind.
    pub kind: TransactionKind,
    /// Signed change of the balance, in credits.
    pub amount: i32,
    /// The balance after it.
    pub balance_after: i32,
    /// The action paid, for spends.
    pub action: Option<Action>,
    /// The caller's reference (ticket, payment reference, reason).
    pub reference: Option<String>,
    /// Who caused it: the token's subject, or `system`.
    pub actor: String,
    /// The idempotency key that bound it.
    pub idempotency_key: Option<String>,
    /// The transaction it reverses.
    pub reverses_transaction_id: Option<ID>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub entry_id: i64,
    #[graphql(skip)]
    pub preloaded_grants: Option<Vec<GrantMove>>,
}

/// How a transaction moved one grant (a block of credits).
#[derive(SimpleObject, Clone)]
pub struct GrantMove {
    /// The grant's id.
    pub grant_id: ID,
    /// Where the grant's credits came from: TRIAL, ALLOCATION, PURCHASE or ADJUSTMENT.
    pub source: String,
    /// When the grant expires (or expired); null when never.
    pub expires_at: Option<DateTime<Utc>>,
    /// Signed credits moved; negative when the grant paid.
    pub credits: i32,
}

impl From<service::GrantMoveView> for GrantMove {
    fn from(view: service::GrantMoveView) -> Self {
        Self {
            grant_id: ID(view.grant_id.to_string()),
            source: view.source.as_str().to_owned(),
            expires_at: view.expires_at,
            credits: int(view.credits),
        }
    }
}

#[ComplexObject]
impl Transaction {
    /// Which grants paid for (or received) this transaction's credits.
    async fn grants(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<GrantMove>> {
        if let Some(grants) = &self.preloaded_grants {
            return Ok(grants.clone());
        }
        let moves = ledger(ctx).gql()?.grant_moves(&[self.entry_id]).await.gql()?;
        Ok(moves
            .into_iter()
            .flat_map(|(_, views)| views)
            .map(Into::into)
            .collect())
    }
}

impl From<service::TransactionView> for Transaction {
    fn from(view: service::TransactionView) -> Self {
        Self {
            id: ID(view.id.to_string()),
            sequence: int(view.sequence),
            kind: view.kind.into(),
            amount: int(view.amount),
            balance_after: int(view.balance_after),
            action: view.action.map(Into::into),
            reference: view.reference,
            actor: view.actor,
            idempotency_key: view.idempotency_key,
            reverses_transaction_id: view.reverses_transaction_id.map(|id| ID(id.to_string())),
            created_at: view.created_at,
            entry_id: view.id,
            preloaded_grants: None,
        }
    }
}

/// Filters of `Wallet.transactions`; every given filter must match.
#[derive(InputObject, Default)]
pub struct TransactionFilter {
    /// Only these kinds.
    pub kinds: Option<Vec<TransactionKind>>,
    /// Only these actions.
    pub actions: Option<Vec<Action>>,
    /// Created at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Created before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Exactly this reference.
    pub reference: Option<String>,
}

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

    /// The spendable balance and its split.
    async fn balance(&self) -> Balance {
        self.view.balance.into()
    }

    /// The current plan.
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
    ) -> async_graphql::Result<Vec<UsageBucket>> {
        let buckets = ledger(ctx)
            .gql()?
            .usage(&self.scope, from, to, bucket.into())
            .await
            .gql()?;
        Ok(buckets
            .into_iter()
            .map(|bucket| UsageBucket {
                start: bucket.start,
                end: bucket.end,
                total: int(bucket.credits_by_action.iter().map(|(_, credits)| credits).sum()),
                by_action: bucket
                    .credits_by_action
                    .into_iter()
                    .map(|(action, credits)| ActionUsage {
                        action: action.into(),
                        credits: int(credits),
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
            crate::domain::usage::check_instant(field, instant)?;
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

/// The answer to `spendCredit`.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct SpendCreditPayload {
    /// CHARGED, INSUFFICIENT_CREDITS or DUPLICATE.
    pub outcome: SpendOutcome,
    /// The transaction that charged (for DUPLICATE, the original one).
    pub transaction: Option<Transaction>,
    /// The wallet's balance now.
    pub balance: Balance,
    /// What the action costs.
    pub cost: i32,
    /// When the plan's allocation next resets (credits arrive), if ever.
    pub next_reset_at: Option<DateTime<Utc>>,
    /// For INSUFFICIENT_CREDITS: the smallest pack that would resume AI.
    pub suggested_top_up: Option<TopUpPack>,
}

#[ComplexObject]
impl SpendCreditPayload {
    /// True when the balance after this answer cannot pay for this action again.
    async fn ai_paused(&self) -> bool {
        self.balance.total < self.cost
    }
}

impl From<service::SpendResult> for SpendCreditPayload {
    fn from(result: service::SpendResult) -> Self {
        Self {
            outcome: result.outcome.into(),
            transaction: result.transaction.map(Into::into),
            balance: result.balance.into(),
            cost: int(result.cost),
            next_reset_at: result.next_reset_at,
            suggested_top_up: result.suggested_top_up.map(Into::into),
        }
    }
}

/// The answer to `purchaseTopUp`.
#[derive(SimpleObject)]
pub struct PurchaseTopUpPayload {
    /// APPLIED or DUPLICATE.
    pub outcome: TopUpOutcome,
    /// The TOP_UP transaction (for DUPLICATE, the original one).
    pub transaction: Transaction,
    /// The wallet's balance now.
    pub balance: Balance,
}

impl From<service::TopUpResult> for PurchaseTopUpPayload {
    fn from(result: service::TopUpResult) -> Self {
        Self {
            outcome: result.outcome.into(),
            transaction: result.transaction.into(),
            balance: result.balance.into(),
        }
    }
}

/// The answer to `createWorkspace`.
#[derive(SimpleObject)]
pub struct CreateWorkspacePayload {
    /// The new workspace's wallet.
    pub wallet: Wallet,
}

/// The answer to `changePlan`.
#[derive(SimpleObject)]
pub struct ChangePlanPayload {
    /// The wallet after the change.
    pub wallet: Wallet,
}

/// A usage bucket size; buckets are calendar periods in UTC.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "crate::domain::usage::Bucket")]
pub enum UsageBucketSize {
    /// Midnight to midnight.
    Day,
    /// ISO weeks, from Monday.
    Week,
    /// Calendar months.
    Month,
}

/// Credits spent in one bucket.
#[derive(SimpleObject)]
pub struct UsageBucket {
    /// First instant of the bucket.
    pub start: DateTime<Utc>,
    /// First instant after it.
    pub end: DateTime<Utc>,
    /// Credits spent in it, all actions.
    pub total: i32,
    /// Credits spent per action (every action listed).
    pub by_action: Vec<ActionUsage>,
}

/// Credits spent on one action.
#[derive(SimpleObject)]
pub struct ActionUsage {
    /// The action.
    pub action: Action,
    /// Credits spent on it, net of reversals.
    pub credits: i32,
}

/// One crossing of the low-balance threshold.
#[derive(SimpleObject)]
pub struct LowBalanceAlert {
    /// The threshold crossed.
    pub threshold: i32,
    /// The balance just after crossing.
    pub balance: i32,
    /// The ledger sequence of the transaction that crossed it.
    pub sequence: i32,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A ledger change made by an operator.
#[derive(SimpleObject)]
pub struct LedgerChangePayload {
    /// The transaction written.
    pub transaction: Transaction,
    /// The wallet's balance now.
    pub balance: Balance,
}

impl From<service::LedgerChange> for LedgerChangePayload {
    fn from(change: service::LedgerChange) -> Self {
        Self {
            transaction: change.transaction.into(),
            balance: change.balance.into(),
        }
    }
}

/// The answer to `setLowBalanceThreshold`.
#[derive(SimpleObject)]
pub struct SetLowBalanceThresholdPayload {
    /// The wallet after the change.
    pub wallet: Wallet,
}
