use sea_orm::entity::prelude::*;

/// One append-only ledger row. `sequence` is dense per wallet (1, 2, 3…);
/// `amount_credits` is signed; `balance_after_credits` is the wallet balance
/// once this row applied, and split by bucket in the `*_after_credits`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Deserialize)]
#[sea_orm(table_name = "ledger_entry")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub wallet_id: i64,
    pub sequence: i64,
    pub kind: String,
    pub amount_credits: i64,
    pub balance_after_credits: i64,
    pub action: Option<String>,
    pub reference: Option<String>,
    pub actor: String,
    pub idempotency_key: Option<String>,
    pub reverses_entry_id: Option<i64>,
    pub created_at: DateTimeUtc,
    pub allocation_after_credits: i64,
    pub purchased_after_credits: i64,
    pub bonus_after_credits: i64,
    /// The identity of the request that bound `idempotency_key` (action and
    /// reference for a spend, the pack for a top-up): a repeat carries the
    /// same, a conflicting reuse does not.
    pub idempotency_fingerprint: Option<String>,
    /// The agent a spend was for (and its reversal), when it named one.
    pub agent_id: Option<String>,
    /// Credits held by live holds after this row.
    pub held_after_credits: i64,
    /// The hold a capture (SPEND) or RELEASE row concerns; a HOLD row is
    /// the hold itself (`credit_hold.id` is its id).
    pub hold_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
