//! Goal: over thousands of random operations the service agrees with a
//! plain in-memory model of the billing rules, answer by answer, balance
//! by balance and ledger row by ledger row.
//! Method: a generator draws spends (new keys, repeats, conflicting
//! reuse), top-ups (new and repeated payment references), operator
//! adjustments (credits and debits), reversals of spends, plan changes
//! (from the trial, upgrades, downgrades left pending, and their
//! cancellation), clock jumps (with and without the renewal sweep) that end
//! trials and renew periods, and concurrent bursts over several wallets
//! that mix new keys with repeats, over three workspaces. Each operation
//! goes through the HTTP API and through the model; the outcome (or error
//! code), the wallet's balance split and its ledger rows (kind, amount)
//! must agree after every one. The model keeps grants with their expiry
//! and applies the documented rules with its own arithmetic (nothing of
//! the service's code): settle first (expire, then renew into the period
//! containing now, on the pending plan if any), burn-down soonest expiry
//! first and never-expiring last (oldest first on a tie), keys bound per
//! wallet, upgrades raising the period's allocation by the difference.
//! Budgets too (`docs/design/budgets.md`): each workspace has a team cap,
//! per-agent caps (one overridden for one agent), a soft cap, in its own
//! time zone; spends name one of three agents or none; the model counts
//! each budget's window with its own calendar arithmetic, refuses with
//! BUDGET_EXCEEDED before looking at the balance, gives reversed spends
//! back to current windows, and its counters must equal
//! `wallet.budgetUsage` for a drawn agent every fourth step.
//! Holds too (`docs/design/holds.md`): reserves (new keys, repeats,
//! conflicting reuse) pinning credits in burn-down order and counted by the
//! HARD budgets, captures below, at and above what is held (the excess
//! taken as far as the balance and budgets allow), releases, extensions,
//! and expiries by the clock jumps; `available` and `held` are compared
//! with every balance, HOLD, RELEASE and HOLD_EXPIRED rows with the ledger.
//! Each run draws a fresh seed and prints it first; a failure (a panic
//! included) prints it again: `SEED=<n> cargo test model` replays it.
//! `MODEL_OPS` sets the number of operations (default 1500).

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::client::Answer;
use crate::helpers::{Random, TestApp};

mod holds;
mod rules;
mod run;

use rules::{Model, TIME_ZONES, WORKSPACES, Wallet, starting_budgets};
use run::Run;

/// Prints the seed again if the run panics (an assertion of the harness or
/// of the service, not only `check`).
struct SeedOnPanic(u64);

impl Drop for SeedOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "model run failed with seed {0}: replay with SEED={0} cargo test model",
                self.0
            );
        }
    }
}

async fn service_agrees_with_the_model(app: TestApp) {
    // A fresh seed each run (so CI explores), unless SEED replays one.
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(20_261_125, |elapsed| elapsed.as_nanos() as u64)
        });
    eprintln!(
        "model seed {seed} on {:?} (replay: SEED={seed} cargo test model)",
        app.backend
    );
    let _guard = SeedOnPanic(seed);
    let operations: usize = std::env::var("MODEL_OPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1500);
    let mut run = Run {
        service: WORKSPACES
            .iter()
            .map(|workspace| (*workspace, app.token("service", Some(workspace))))
            .collect(),
        admin: WORKSPACES
            .iter()
            .map(|workspace| (*workspace, app.token("admin", Some(workspace))))
            .collect(),
        operator: app.operator(),
        app,
        model: Model::default(),
        random: Random(seed.max(1)),
        seed,
        step: 0,
        keys: 0,
        budget_refusals: 0,
    };
    let start = run.now();
    for (workspace, time_zone) in WORKSPACES.into_iter().zip(TIME_ZONES) {
        run.app.create_workspace(workspace).await;
        let budgets = starting_budgets(&mut run.random);
        run.app
            .gql(
                Some(&run.admin[workspace]),
                "mutation($tz: String!) { setTimeZone(input: {timeZone: $tz}) { workspace { timeZone } } }",
                json!({ "tz": time_zone }),
            )
            .await
            .data();
        for budget in &budgets {
            run.set_budget(workspace, budget).await;
        }
        run.model.wallets.insert(
            workspace,
            Wallet {
                grants: Vec::new(),
                spend_keys: HashMap::new(),
                top_up_keys: HashMap::new(),
                anchor: None,
                period_end: None,
                plan: None,
                pending: None,
                allocation: None,
                charges: Vec::new(),
                rows: Vec::new(),
                trial_end: start + Duration::days(7),
                time_zone,
                budgets,
                counters: HashMap::new(),
                holds: Vec::new(),
                hold_keys: HashMap::new(),
            },
        );
        run.model
            .grant(workspace, "bonus", 300, Some(start + Duration::days(7)));
        run.model.row(workspace, "GRANT", 300);
    }
    for step in 0..operations {
        run.step = step;
        run.step().await;
    }
    for workspace in WORKSPACES {
        run.check_balance(workspace).await;
        run.check_rows(workspace).await;
    }
    eprintln!("model run: {} spends refused by a budget", run.budget_refusals);
    let states: Vec<&str> = run
        .model
        .wallets
        .values()
        .flat_map(|wallet| wallet.holds.iter().map(|hold| hold.state))
        .collect();
    let counts: Vec<(&str, usize)> = ["HELD", "CAPTURED", "RELEASED", "EXPIRED"]
        .into_iter()
        .map(|state| (state, states.iter().filter(|seen| **seen == state).count()))
        .collect();
    eprintln!("model run: holds by state {counts:?}");
    if operations >= 1000 {
        for (state, count) in &counts[1..] {
            assert!(*count > 0, "the run never saw a hold {state}");
        }
    }
    assert!(
        run.budget_refusals > operations / 50,
        "the run exercised budgets too rarely: {} refusals",
        run.budget_refusals
    );
}

both_backends!(service_agrees_with_the_model);
