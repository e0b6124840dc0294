//! SQLite's single write lock, taken before a batch reads.

use entity::wallet;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::store::Result;

/// SQLite: an UPDATE that matches nothing still makes the transaction the
/// writer, waiting through the busy timeout, so what it reads next is read
/// under the lock.
pub(super) async fn take_sqlite_write_lock(txn: &impl ConnectionTrait) -> Result<()> {
    wallet::Entity::update_many()
        .col_expr(
            wallet::Column::LastSequence,
            Expr::col(wallet::Column::LastSequence),
        )
        .filter(wallet::Column::Id.eq(-1))
        .exec(txn)
        .await?;
    Ok(())
}
