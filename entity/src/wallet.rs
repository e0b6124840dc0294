use sea_orm::entity::prelude::*;

/// One wallet per workspace. `balance_credits` and `last_sequence` are the
/// materialised head of the ledger; the CHECK `balance_credits >= 0` is the
/// database's last line of defence against an overdraft.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Deserialize)]
#[sea_orm(table_name = "wallet")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub workspace_id: String,
    pub plan_code: String,
    pub balance_credits: i64,
    pub last_sequence: i64,
    pub trial_ends_at: Option<DateTimeUtc>,
    pub billing_anchor_at: Option<DateTimeUtc>,
    pub period_start_at: Option<DateTimeUtc>,
    pub period_end_at: Option<DateTimeUtc>,
    pub pending_plan_code: Option<String>,
    pub enterprise_allocation_credits: Option<i64>,
    pub low_balance_threshold_credits: Option<i64>,
    pub low_balance_alerted_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// The workspace's IANA time zone: budgets' days end at its midnight.
    pub time_zone: String,
    /// Moves with every change of the wallet's budgets or their counters
    /// that appends no ledger row, so a batch read can tell a stale one.
    pub budget_version: i64,
    /// Automatic top-up's threshold while it is on (`auto_top_up` holds the
    /// rest), read with the head by the spend path.
    pub auto_top_up_threshold_credits: Option<i64>,
    /// The Stripe subscription whose plan the wallet follows; NULL: an
    /// operator set the plan (it renews as long as it is set).
    pub subscription_id: Option<String>,
    /// While the subscription is past due: when its grace ends and the paid
    /// plan with it, unless paid before.
    pub standing_until_at: Option<DateTimeUtc>,
    /// Credits its live holds pin (part of `balance_credits`).
    pub held_credits: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
