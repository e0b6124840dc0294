use sea_orm::entity::prelude::*;

/// Credits reserved for an action that started (`docs/design/holds.md`).
/// `id` is the id of its HOLD ledger row; `pins` is JSON
/// `[[grant_id, credits], …]`, the grants that hold its credits while it is
/// HELD, in burn-down order.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Deserialize)]
#[sea_orm(table_name = "credit_hold")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i64,
    pub wallet_id: i64,
    pub hold_key: String,
    pub state: String,
    pub action: String,
    pub agent_id: Option<String>,
    pub reference: Option<String>,
    pub actor: String,
    pub credits: i64,
    pub captured_credits: i64,
    pub uncollected_credits: i64,
    pub pins: String,
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub resolved_at: Option<DateTimeUtc>,
    pub reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The wallet holding it (a capture finds the hold and its workspace
    /// in one read).
    #[sea_orm(
        belongs_to = "super::wallet::Entity",
        from = "Column::WalletId",
        to = "super::wallet::Column::Id"
    )]
    Wallet,
}

impl Related<super::wallet::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Wallet.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
