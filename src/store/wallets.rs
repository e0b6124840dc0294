//! Wallets as `domain::wallet` sees them: locked for a change, or read.

use sea_orm::ConnectionTrait;

use super::Result;
use super::rows::{head, states};
use domain::wallet::{Head, WalletState};

/// Locks one wallet for the rest of the transaction (see
/// [`super::ledger::lock_wallet`]) and reads its live grants and its
/// automatic top-up.
pub async fn lock(txn: &impl ConnectionTrait, workspace_id: &str) -> Result<Option<WalletState>> {
    let Some(wallet) = super::ledger::lock_wallet(txn, workspace_id).await? else {
        return Ok(None);
    };
    let grants = super::batch::live_grants_of(txn, vec![wallet.id]).await?;
    let auto_top_up = super::auto_top_up::find(txn, wallet.id).await?;
    let holds = super::batch::live_holds_of(txn, [(wallet.id, wallet.held_credits)]).await?;
    Ok(states(vec![wallet], grants, holds)?
        .pop()
        .map(|state| WalletState { auto_top_up, ..state }))
}

/// Reads a wallet's head without locking it.
pub async fn find(db: &impl ConnectionTrait, workspace_id: &str) -> Result<Option<Head>> {
    super::ledger::find_wallet(db, workspace_id)
        .await?
        .map(head)
        .transpose()
}

/// Reads a wallet and its live grants as one consistent state, without
/// locking it.
pub async fn read(db: &super::Pool, workspace_id: &str) -> Result<Option<WalletState>> {
    use sea_orm::TransactionTrait;
    let txn = db.begin().await?;
    let Some(wallet) = super::ledger::find_wallet(&txn, workspace_id).await? else {
        return Ok(None);
    };
    let grants = super::batch::live_grants_of(&txn, vec![wallet.id]).await?;
    let holds = super::batch::live_holds_of(&txn, [(wallet.id, wallet.held_credits)]).await?;
    txn.commit().await?;
    Ok(states(vec![wallet], grants, holds)?.pop())
}
