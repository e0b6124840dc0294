//! The answer types of `domain::views` (the store builds them from stored
//! rows).

pub use domain::views::{
    ActionCostView, BalanceView, EntryFilter, PackView, PeriodView, PlanView, TransactionPage,
    TransactionView, WalletView,
};
