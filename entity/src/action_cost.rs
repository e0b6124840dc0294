use sea_orm::entity::prelude::*;

/// What one AI action costs, in credits.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Deserialize)]
#[sea_orm(table_name = "action_cost")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub action: String,
    pub credits: i64,
    pub description: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
