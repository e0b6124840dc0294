//! The ledger invariant over stored data: used before commit in debug
//! builds, after every test, and by operators.

use entity::{credit_grant, credit_hold, ledger_entry, wallet};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::Result;
use domain::catalogue::LedgerKind;
use domain::hold::HoldState;
use domain::invariant::{WalletTotals, check_totals};

async fn sum(
    db: &impl ConnectionTrait,
    select: sea_orm::Select<impl EntityTrait>,
    column: impl sea_orm::ColumnTrait,
) -> Result<i64> {
    let total: Option<Option<i64>> = select
        .select_only()
        .column_as(
            Expr::expr(Func::sum(Expr::col(column))).cast_as("BIGINT"),
            "total",
        )
        .into_tuple()
        .one(db)
        .await?;
    Ok(total.flatten().unwrap_or(0))
}

/// The totals of one wallet, read in one consistent view when run inside a
/// transaction.
pub async fn wallet_totals(db: &impl ConnectionTrait, wallet: &wallet::Model) -> Result<WalletTotals> {
    let ledger_sum = sum(
        db,
        ledger_entry::Entity::find().filter(ledger_entry::Column::WalletId.eq(wallet.id)),
        ledger_entry::Column::AmountCredits,
    )
    .await?;
    let live_grants_sum = sum(
        db,
        credit_grant::Entity::find()
            .filter(credit_grant::Column::WalletId.eq(wallet.id))
            .filter(credit_grant::Column::ExpiredAt.is_null()),
        credit_grant::Column::RemainingCredits,
    )
    .await?;
    let last_balance_after = ledger_entry::Entity::find()
        .filter(ledger_entry::Column::WalletId.eq(wallet.id))
        .order_by_desc(ledger_entry::Column::Sequence)
        .one(db)
        .await?
        .map_or(0, |entry| entry.balance_after_credits);
    Ok(WalletTotals {
        balance: wallet.balance_credits,
        ledger_sum,
        live_grants_sum,
        last_balance_after,
    })
}

/// What is wrong with a wallet's holds (`docs/design/holds.md`): `held`
/// is what its live holds hold, and what its newest row says; each live
/// hold's pins add up to it and sit in live grants that hold them; every
/// hold has its HOLD row, and exactly the rows its state calls for (one
/// SPEND of what a capture charged, one RELEASE, one HOLD_EXPIRED).
pub async fn hold_problems(db: &impl ConnectionTrait, wallet: &wallet::Model) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let holds = credit_hold::Entity::find()
        .filter(credit_hold::Column::WalletId.eq(wallet.id))
        .all(db)
        .await?;
    let rows = ledger_entry::Entity::find()
        .filter(ledger_entry::Column::WalletId.eq(wallet.id))
        .filter(
            ledger_entry::Column::HoldId
                .is_not_null()
                .or(ledger_entry::Column::Kind.eq(LedgerKind::Hold.as_str())),
        )
        .all(db)
        .await?;
    let grants = credit_grant::Entity::find()
        .filter(credit_grant::Column::WalletId.eq(wallet.id))
        .filter(credit_grant::Column::ExpiredAt.is_null())
        .all(db)
        .await?;
    let newest_held = ledger_entry::Entity::find()
        .filter(ledger_entry::Column::WalletId.eq(wallet.id))
        .order_by_desc(ledger_entry::Column::Sequence)
        .one(db)
        .await?
        .map_or(0, |entry| entry.held_after_credits);
    let live: i64 = holds
        .iter()
        .filter(|hold| hold.state == HoldState::Held.as_str())
        .map(|hold| hold.credits)
        .sum();
    if wallet.held_credits != live || wallet.held_credits != newest_held {
        problems.push(format!(
            "held {} != live holds {live} or the newest row's held {newest_held}",
            wallet.held_credits
        ));
    }
    // (A negative balance is reported by the totals' check.)
    if wallet.held_credits < 0
        || (wallet.balance_credits >= 0 && wallet.held_credits > wallet.balance_credits)
    {
        problems.push(format!(
            "held {} outside 0..={}",
            wallet.held_credits, wallet.balance_credits
        ));
    }
    let mut pinned: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    for model in holds {
        let id = model.id;
        let (state, credits, captured) = (model.state.clone(), model.credits, model.captured_credits);
        let hold = super::rows::hold(model)?;
        let of = |kind: LedgerKind| -> Vec<&ledger_entry::Model> {
            rows.iter()
                .filter(|row| row.kind == kind.as_str() && row.hold_id == Some(id))
                .collect()
        };
        if !rows
            .iter()
            .any(|row| row.id == id && row.kind == LedgerKind::Hold.as_str())
        {
            problems.push(format!("hold {id} has no HOLD row of its wallet"));
        }
        let spends = of(LedgerKind::Spend);
        let releases = of(LedgerKind::Release);
        let expiries = of(LedgerKind::HoldExpired);
        let expected = match hold.state {
            HoldState::Held => (0, 0, 0),
            HoldState::Captured => (1, 0, 0),
            HoldState::Released => (0, 1, 0),
            HoldState::Expired => (0, 0, 1),
        };
        if (spends.len(), releases.len(), expiries.len()) != expected {
            problems.push(format!(
                "hold {id} ({state}) has {} captures, {} releases, {} expiries",
                spends.len(),
                releases.len(),
                expiries.len()
            ));
        }
        if let Some(spend) = spends.first()
            && -spend.amount_credits != captured
        {
            problems.push(format!(
                "hold {id} captured {captured} but its SPEND is {}",
                spend.amount_credits
            ));
        }
        if hold.is_held() {
            let sum: i64 = hold.pins.iter().map(|(_, credits)| credits).sum();
            if sum != credits {
                problems.push(format!("hold {id} holds {credits} but pins {sum}"));
            }
            for (grant_id, credits) in &hold.pins {
                *pinned.entry(*grant_id).or_default() += credits;
            }
        }
    }
    for (grant_id, credits) in pinned {
        match grants.iter().find(|grant| grant.id == grant_id) {
            Some(grant) if grant.remaining_credits >= credits => {}
            Some(grant) => problems.push(format!(
                "grant {grant_id} holds {} but holds pin {credits}",
                grant.remaining_credits
            )),
            None => problems.push(format!(
                "holds pin {credits} in grant {grant_id}, which is not live"
            )),
        }
    }
    Ok(problems)
}

/// Every wallet, for a full audit.
pub async fn all_wallets(db: &impl ConnectionTrait) -> Result<Vec<wallet::Model>> {
    wallet::Entity::find()
        .order_by_asc(wallet::Column::Id)
        .all(db)
        .await
        .map_err(Into::into)
}

/// Rows whose sequence numbers are not dense 1..=n for the wallet: the
/// count of rows and the highest sequence must both equal `last_sequence`.
pub async fn sequence_is_dense(db: &impl ConnectionTrait, wallet: &wallet::Model) -> Result<bool> {
    let count = ledger_entry::Entity::find()
        .filter(ledger_entry::Column::WalletId.eq(wallet.id))
        .count(db)
        .await?;
    let max: Option<Option<i64>> = ledger_entry::Entity::find()
        .filter(ledger_entry::Column::WalletId.eq(wallet.id))
        .select_only()
        .column_as(ledger_entry::Column::Sequence.max(), "max")
        .into_tuple()
        .one(db)
        .await?;
    let max = max.flatten().unwrap_or(0);
    Ok(count as i64 == wallet.last_sequence && max == wallet.last_sequence)
}

/// Sums of ledger amounts and of live grants' remaining credits for many
/// wallets at once, as (wallet id, ledger sum, live grants sum).
pub async fn batch_sums(db: &impl ConnectionTrait, wallet_ids: Vec<i64>) -> Result<Vec<(i64, i64, i64)>> {
    let ledger: Vec<(i64, Option<i64>)> = ledger_entry::Entity::find()
        .select_only()
        .column(ledger_entry::Column::WalletId)
        .column_as(
            Expr::expr(Func::sum(Expr::col(ledger_entry::Column::AmountCredits))).cast_as("BIGINT"),
            "total",
        )
        .filter(ledger_entry::Column::WalletId.is_in(wallet_ids.clone()))
        .group_by(ledger_entry::Column::WalletId)
        .into_tuple()
        .all(db)
        .await?;
    let grants: Vec<(i64, Option<i64>)> = credit_grant::Entity::find()
        .select_only()
        .column(credit_grant::Column::WalletId)
        .column_as(
            Expr::expr(Func::sum(Expr::col(credit_grant::Column::RemainingCredits))).cast_as("BIGINT"),
            "total",
        )
        .filter(credit_grant::Column::WalletId.is_in(wallet_ids.clone()))
        .filter(credit_grant::Column::ExpiredAt.is_null())
        .group_by(credit_grant::Column::WalletId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(wallet_ids
        .into_iter()
        .map(|id| {
            let ledger_sum = ledger
                .iter()
                .find(|(w, _)| *w == id)
                .and_then(|(_, s)| *s)
                .unwrap_or(0);
            let grants_sum = grants
                .iter()
                .find(|(w, _)| *w == id)
                .and_then(|(_, s)| *s)
                .unwrap_or(0);
            (id, ledger_sum, grants_sum)
        })
        .collect())
}

/// A wallet that breaks the ledger invariant, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The wallet's workspace.
    pub workspace_id: String,
    /// What is broken.
    pub problem: String,
}

/// The result of a full audit.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// Wallets examined.
    pub wallets: u64,
    /// Every broken invariant found.
    pub violations: Vec<Violation>,
}

/// Checks every wallet: balance = sum of the ledger = sum of live grants =
/// the newest row's balance after, never negative; sequences dense 1..=n;
/// at most one allocation grant per wallet and period. Reads only.
pub async fn audit(db: &impl ConnectionTrait) -> Result<Audit> {
    let mut audit = Audit::default();
    let wallets = all_wallets(db).await?;
    let workspaces: std::collections::HashMap<i64, String> = wallets
        .iter()
        .map(|wallet| (wallet.id, wallet.workspace_id.clone()))
        .collect();
    for wallet in wallets {
        audit.wallets += 1;
        let mut broken = |problem: String| {
            audit.violations.push(Violation {
                workspace_id: wallet.workspace_id.clone(),
                problem,
            });
        };
        if let Err(problem) = check_totals(&wallet_totals(db, &wallet).await?) {
            broken(problem);
        }
        if !sequence_is_dense(db, &wallet).await? {
            broken(format!(
                "ledger sequences are not dense 1..={}",
                wallet.last_sequence
            ));
        }
        for problem in hold_problems(db, &wallet).await? {
            broken(problem);
        }
    }
    let doubled: Vec<(i64, Option<chrono::DateTime<chrono::Utc>>)> = credit_grant::Entity::find()
        .select_only()
        .column(credit_grant::Column::WalletId)
        .column(credit_grant::Column::PeriodStartAt)
        .filter(credit_grant::Column::Source.eq("ALLOCATION"))
        .group_by(credit_grant::Column::WalletId)
        .group_by(credit_grant::Column::PeriodStartAt)
        .having(Expr::col(credit_grant::Column::Id).count().gt(1))
        .into_tuple()
        .all(db)
        .await?;
    for (wallet_id, period_start) in doubled {
        audit.violations.push(Violation {
            workspace_id: workspaces.get(&wallet_id).cloned().unwrap_or_default(),
            problem: format!(
                "the allocation of the period starting {} was granted more than once",
                period_start.map_or_else(|| "(none)".to_owned(), |at| at.to_rfc3339())
            ),
        });
    }
    Ok(audit)
}
