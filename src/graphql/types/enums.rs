//! Enumerations: the catalogue's names, outcomes and bucket sizes.

use async_graphql::Enum;

use crate::service;
use domain::catalogue as rules;
use domain::spend::SpendOutcome as DomainSpendOutcome;

/// An AI action that costs credits.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "rules::Action")]
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
#[graphql(remote = "rules::PlanCode")]
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
#[graphql(remote = "rules::PackCode")]
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
#[graphql(remote = "rules::LedgerKind")]
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
    /// Credits held for an action that started (amount 0: `held` rises).
    Hold,
    /// A hold released by its caller (amount 0: `held` falls).
    Release,
    /// A hold that expired before anyone captured or released it (amount 0).
    HoldExpired,
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
    /// A HARD budget would go over its limit: nothing was charged (the
    /// payload's `budget` names it; a top-up would not help).
    BudgetExceeded,
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

/// A usage bucket size; buckets are calendar periods in UTC.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::usage::Bucket")]
pub enum UsageBucketSize {
    /// Midnight to midnight.
    Day,
    /// ISO weeks, from Monday.
    Week,
    /// Calendar months.
    Month,
}
