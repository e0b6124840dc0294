//! The ledger invariant, checked in the service before commit (debug
//! builds) and across every wallet after every test and by `verify`.

/// The three totals that must agree for one wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalletTotals {
    /// The wallet's materialised balance.
    pub balance: i64,
    /// The sum of its ledger amounts.
    pub ledger_sum: i64,
    /// The sum of its live grants' remaining credits.
    pub live_grants_sum: i64,
    /// The balance after its newest ledger row (0 with no rows).
    pub last_balance_after: i64,
}

/// Checks the invariant; the error says which equality broke.
pub fn check_totals(totals: &WalletTotals) -> Result<(), String> {
    let WalletTotals {
        balance,
        ledger_sum,
        live_grants_sum,
        last_balance_after,
    } = *totals;
    if balance < 0 {
        return Err(format!("balance {balance} is negative"));
    }
    if balance != ledger_sum {
        return Err(format!("balance {balance} != sum of ledger amounts {ledger_sum}"));
    }
    if balance != live_grants_sum {
        return Err(format!(
            "balance {balance} != sum of live grants {live_grants_sum}"
        ));
    }
    if balance != last_balance_after {
        return Err(format!(
            "balance {balance} != newest row's balance after {last_balance_after}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_broken_equality_is_reported() {
        let good = WalletTotals {
            balance: 5,
            ledger_sum: 5,
            live_grants_sum: 5,
            last_balance_after: 5,
        };
        assert_eq!(check_totals(&good), Ok(()));
        // An empty wallet is fine: zero is not negative.
        let empty = WalletTotals {
            balance: 0,
            ledger_sum: 0,
            live_grants_sum: 0,
            last_balance_after: 0,
        };
        assert_eq!(check_totals(&empty), Ok(()));
        let table = [
            (
                WalletTotals {
                    ledger_sum: 4,
                    ..good
                },
                "balance 5 != sum of ledger amounts 4",
            ),
            (
                WalletTotals {
                    live_grants_sum: 6,
                    ..good
                },
                "balance 5 != sum of live grants 6",
            ),
            (
                WalletTotals {
                    last_balance_after: 1,
                    ..good
                },
                "balance 5 != newest row's balance after 1",
            ),
            (
                WalletTotals {
                    balance: -1,
                    ledger_sum: -1,
                    live_grants_sum: -1,
                    last_balance_after: -1,
                },
                "balance -1 is negative",
            ),
        ];
        for (totals, problem) in table {
            assert_eq!(check_totals(&totals), Err(problem.to_owned()), "{totals:?}");
        }
    }
}
