//! Budgets: caps on what a wallet's spends may use per window, for the
//! whole workspace, for every agent, or for one agent
//! (`docs/design/budgets.md`).
//!
//! A budget counts a spend when it applies to the spend's agent and action;
//! its counter belongs to one window (a calendar day in the workspace's time
//! zone, or the wallet's billing period) and counts as 0 once that window is
//! over. Counters are kept in the wallet's state and decided here, under the
//! wallet's lock, with the charge: exact whatever the concurrency.

use std::str::FromStr;

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::DomainError;
use crate::catalogue::{Action, stored_enum};
use crate::head::Head;

/// Most budgets one workspace may have.
pub const BUDGETS_MAX: usize = 100;
/// Longest budget name.
pub const BUDGET_NAME_MAX: usize = 64;
/// Longest agent id.
pub const AGENT_ID_MAX: usize = 200;
/// Longest time zone name (the IANA database's longest is 32).
pub const TIME_ZONE_MAX: usize = 64;

stored_enum! {
    /// Whose spends a budget counts.
    BudgetTarget {
        /// Every spend of the workspace, as one counter.
        Workspace => "WORKSPACE",
        /// Each agent's spends, one counter per agent.
        EachAgent => "EACH_AGENT",
        /// One agent's spends (overrides an EACH_AGENT budget of the same
        /// action and window for that agent).
        Agent => "AGENT",
    }
}

stored_enum! {
    /// How long a budget's counter lasts.
    BudgetWindow {
        /// A calendar day in the workspace's time zone.
        Day => "DAY",
        /// The wallet's billing period (the trial is one period).
        BillingPeriod => "BILLING_PERIOD",
    }
}

stored_enum! {
    /// What a budget does at its limit.
    BudgetMode {
        /// Refuses spends that would go over (BUDGET_EXCEEDED).
        Hard => "HARD",
        /// Charges, and warns once over.
        Soft => "SOFT",
    }
}

/// A budget as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Its id.
    pub id: i64,
    /// Its name, unique per workspace.
    pub name: String,
    /// Whose spends it counts.
    pub applies_to: BudgetTarget,
    /// The agent, for `AGENT` budgets.
    pub agent_id: Option<String>,
    /// The action counted; `None` every action.
    pub action: Option<Action>,
    /// Its window.
    pub window: BudgetWindow,
    /// Credits per window.
    pub limit: i64,
    /// Hard or soft.
    pub mode: BudgetMode,
    /// Spends from this instant on count.
    pub counting_since: DateTime<Utc>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last set.
    pub updated_at: DateTime<Utc>,
}

/// A budget as `setBudget` sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetInput {
    /// Its name.
    pub name: String,
    /// Whose spends it counts.
    pub applies_to: BudgetTarget,
    /// The agent, for AGENT.
    pub agent_id: Option<String>,
    /// The action, or every one.
    pub action: Option<Action>,
    /// Its window.
    pub window: BudgetWindow,
    /// Credits per window.
    pub limit: i64,
    /// Hard or soft.
    pub mode: BudgetMode,
}

/// What a change writes of a wallet's budgets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetWrite {
    /// Create (`budget.id` is 0) or update a budget; `restart`: its
    /// counters are dropped and it counts from `budget.counting_since`.
    Save {
        /// The budget as it is to be stored.
        budget: Budget,
        /// Whether its counters start afresh.
        restart: bool,
    },
    /// Remove the budget of this id and its counters.
    Remove {
        /// The budget.
        id: i64,
    },
}

/// Setting `input` over the wallet's `existing` budgets at `now`, as it is
/// to be stored and whether its counters start afresh: a new
/// budget (at most [`BUDGETS_MAX`] a workspace) counts from now; one whose
/// scope (target, agent, action, window) changes starts counting afresh,
/// as what it counted is no longer what it counts; one whose limit or mode
/// changes keeps its counters.
pub fn revise(
    existing: &[Budget],
    input: BudgetInput,
    now: DateTime<Utc>,
) -> Result<(Budget, bool), DomainError> {
    let old = existing.iter().find(|budget| budget.name == input.name);
    if old.is_none() && existing.len() >= BUDGETS_MAX {
        return Err(DomainError::invalid(
            "name",
            format!("a workspace has at most {BUDGETS_MAX} budgets; remove one first"),
        ));
    }
    let restart = old.is_some_and(|old| {
        old.applies_to != input.applies_to
            || old.agent_id != input.agent_id
            || old.action != input.action
            || old.window != input.window
    });
    let budget = Budget {
        id: old.map_or(0, |old| old.id),
        name: input.name,
        applies_to: input.applies_to,
        agent_id: input.agent_id,
        action: input.action,
        window: input.window,
        limit: input.limit,
        mode: input.mode,
        counting_since: match old {
            Some(old) if !restart => old.counting_since,
            _ => now,
        },
        created_at: old.map_or(now, |old| old.created_at),
        updated_at: now,
    };
    Ok((budget, restart))
}

impl Budget {
    /// The counter's subject for `agent`: the agent, or `""` for the
    /// workspace.
    pub fn subject(&self, agent: Option<&str>) -> String {
        match self.applies_to {
            BudgetTarget::Workspace => String::new(),
            BudgetTarget::EachAgent | BudgetTarget::Agent => agent.unwrap_or_default().to_owned(),
        }
    }
}

/// The budgets that count an agent's spends (of some action), by name: an
/// `AGENT` budget replaces the `EACH_AGENT` budgets of the same action and
/// window for its agent. With no agent, only `WORKSPACE` budgets.
pub fn applying_to<'a>(budgets: &'a [Budget], agent: Option<&str>) -> Vec<&'a Budget> {
    let mut found: Vec<&Budget> = budgets
        .iter()
        .filter(|budget| match budget.applies_to {
            BudgetTarget::Workspace => true,
            BudgetTarget::EachAgent => {
                agent.is_some()
                    && !budgets.iter().any(|other| {
                        other.applies_to == BudgetTarget::Agent
                            && other.agent_id.as_deref() == agent
                            && other.action == budget.action
                            && other.window == budget.window
                    })
            }
            BudgetTarget::Agent => agent.is_some() && budget.agent_id.as_deref() == agent,
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// The budgets that count a spend of `action` by `agent`, by name.
pub fn applicable<'a>(budgets: &'a [Budget], agent: Option<&str>, action: Action) -> Vec<&'a Budget> {
    let mut found = applying_to(budgets, agent);
    found.retain(|budget| budget.action.is_none_or(|counted| counted == action));
    found
}

/// One budget's counter for one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// The budget.
    pub budget_id: i64,
    /// The agent, or `""`.
    pub subject: String,
    /// The window it counts.
    pub window_start: DateTime<Utc>,
    /// Credits used in it.
    pub used: i64,
    /// When the window was first exhausted.
    pub exhausted_at: Option<DateTime<Utc>>,
}

/// A window: from `start` until `resets_at` (`None`: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Its first instant.
    pub start: DateTime<Utc>,
    /// Its end, when the counter starts again.
    pub resets_at: Option<DateTime<Utc>>,
}

/// A time zone name, checked against the IANA database.
pub fn parse_time_zone(name: &str) -> Result<Tz, DomainError> {
    if name.len() > TIME_ZONE_MAX {
        return Err(DomainError::invalid("timeZone", "is not an IANA time zone name"));
    }
    Tz::from_str(name).map_err(|_| {
        DomainError::invalid(
            "timeZone",
            format!("{name:?} is not an IANA time zone name (for example Europe/Paris)"),
        )
    })
}

/// The first instant of `date` in `zone` (the first one after a gap when
/// midnight does not exist there that day).
fn local_midnight(zone: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut local = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    for _ in 0..4 {
        if let Some(at) = zone.from_local_datetime(&local).earliest() {
            return at.with_timezone(&Utc);
        }
        local += chrono::Duration::minutes(30);
    }
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// The calendar day containing `now` in `zone`.
pub fn day_window(zone: Tz, now: DateTime<Utc>) -> Window {
    let today = now.with_timezone(&zone).date_naive();
    Window {
        start: local_midnight(zone, today),
        resets_at: today
            .checked_add_days(Days::new(1))
            .map(|next| local_midnight(zone, next)),
    }
}

/// The billing period the head is in at `now`: the paid period; else the
/// trial as one period until it ends, then the time since it ended (until
/// a paid period starts).
pub fn period_window(head: &Head, now: DateTime<Utc>) -> Window {
    match (head.period_start, head.period_end, head.trial_ends_at) {
        (Some(start), end, _) => Window {
            start,
            resets_at: end,
        },
        (None, _, Some(ends)) if now < ends => Window {
            start: DateTime::<Utc>::UNIX_EPOCH,
            resets_at: Some(ends),
        },
        (None, _, Some(ends)) => Window {
            start: ends,
            resets_at: None,
        },
        (None, _, None) => Window {
            start: DateTime::<Utc>::UNIX_EPOCH,
            resets_at: None,
        },
    }
}

/// The window of `budget` at `now`, for a wallet with this head.
pub fn window_of(budget: &Budget, head: &Head, now: DateTime<Utc>) -> Window {
    match budget.window {
        BudgetWindow::Day => day_window(parse_time_zone(&head.time_zone).unwrap_or(Tz::UTC), now),
        BudgetWindow::BillingPeriod => period_window(head, now),
    }
}

/// A budget's standing for one subject in its current window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetUsage {
    /// The budget.
    pub budget: Budget,
    /// The agent counted, or `None` for a workspace budget.
    pub agent_id: Option<String>,
    /// Credits used in the window.
    pub used: i64,
    /// Credits left before the limit (0 when over).
    pub remaining: i64,
    /// When the window ends.
    pub resets_at: Option<DateTime<Utc>>,
}

/// What `counter` (if any) used in `window`: 0 when it counts an older one.
pub fn used_in(counter: Option<&Counter>, window: Window) -> i64 {
    counter
        .filter(|counter| counter.window_start == window.start)
        .map_or(0, |counter| counter.used)
}

/// The standing of `budget` for `subject` given its counter.
pub fn usage(budget: &Budget, subject: &str, used: i64, window: Window) -> BudgetUsage {
    BudgetUsage {
        budget: budget.clone(),
        agent_id: (!subject.is_empty()).then(|| subject.to_owned()),
        used,
        remaining: (budget.limit - used).max(0),
        resets_at: window.resets_at,
    }
}

/// Checks a budget's input: name, agent for AGENT only, limit.
pub fn check_budget(
    name: &str,
    applies_to: BudgetTarget,
    agent_id: Option<&str>,
    limit: i64,
) -> Result<(), DomainError> {
    if name.trim().is_empty()
        || name.chars().count() > BUDGET_NAME_MAX
        || super::ids::has_control_or_bidi(name)
    {
        return Err(DomainError::invalid(
            "name",
            format!(
                "must be 1 to {BUDGET_NAME_MAX} characters, without control or bidirectional formatting characters"
            ),
        ));
    }
    match (applies_to, agent_id) {
        (BudgetTarget::Agent, None) => {
            return Err(DomainError::invalid("agentId", "is required for an AGENT budget"));
        }
        (BudgetTarget::Workspace | BudgetTarget::EachAgent, Some(_)) => {
            return Err(DomainError::invalid(
                "agentId",
                "applies only to AGENT budgets (EACH_AGENT counts every agent)",
            ));
        }
        _ => {}
    }
    if limit < 0 {
        return Err(DomainError::invalid("limit", "must be 0 or more credits"));
    }
    Ok(())
}

/// Checks an agent id: 1 to 200 characters, no control characters.
pub fn check_agent_id(agent_id: &str) -> Result<(), DomainError> {
    if agent_id.is_empty()
        || agent_id.chars().count() > AGENT_ID_MAX
        || super::ids::has_control_or_bidi(agent_id)
    {
        return Err(DomainError::invalid(
            "agentId",
            format!(
                "must be 1 to {AGENT_ID_MAX} characters, without control or bidirectional formatting characters"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn budget(name: &str, applies_to: BudgetTarget, agent: Option<&str>, action: Option<Action>) -> Budget {
        Budget {
            id: name.len() as i64,
            name: name.to_owned(),
            applies_to,
            agent_id: agent.map(str::to_owned),
            action,
            window: BudgetWindow::Day,
            limit: 5,
            mode: BudgetMode::Hard,
            counting_since: utc("2026-01-01T00:00:00Z"),
            created_at: utc("2026-01-01T00:00:00Z"),
            updated_at: utc("2026-01-01T00:00:00Z"),
        }
    }

    /// Days end at local midnight: Los Angeles is UTC−8 in winter and −7 in
    /// summer; Kolkata is UTC+5:30 all year.
    #[test]
    fn days_end_at_the_workspace_midnight() {
        let los_angeles = parse_time_zone("America/Los_Angeles").unwrap();
        let window = day_window(los_angeles, utc("2026-12-03T07:59:00Z"));
        assert_eq!(window.start, utc("2026-12-02T08:00:00Z"));
        assert_eq!(window.resets_at, Some(utc("2026-12-03T08:00:00Z")));
        let window = day_window(los_angeles, utc("2026-07-01T07:00:00Z"));
        assert_eq!(window.start, utc("2026-07-01T07:00:00Z"));

        let kolkata = parse_time_zone("Asia/Kolkata").unwrap();
        let window = day_window(kolkata, utc("2026-12-03T18:29:59Z"));
        assert_eq!(window.start, utc("2026-12-02T18:30:00Z"));
        assert_eq!(window.resets_at, Some(utc("2026-12-03T18:30:00Z")));
        assert_eq!(
            day_window(kolkata, utc("2026-12-03T18:30:00Z")).start,
            utc("2026-12-03T18:30:00Z")
        );

        // The day DST starts in Los Angeles has 23 hours.
        let spring = day_window(los_angeles, utc("2026-03-08T12:00:00Z"));
        assert_eq!(
            spring.resets_at.unwrap() - spring.start,
            chrono::Duration::hours(23)
        );
    }

    /// Where midnight does not exist (Santiago's spring-forward at 00:00),
    /// the day starts at the first instant after the gap.
    #[test]
    fn a_day_without_midnight_starts_after_the_gap() {
        let santiago = parse_time_zone("America/Santiago").unwrap();
        let window = day_window(santiago, utc("2026-09-06T12:00:00Z"));
        assert_eq!(
            window.start.with_timezone(&santiago).time().to_string(),
            "01:00:00"
        );
    }

    #[test]
    fn unknown_time_zones_are_refused() {
        assert!(parse_time_zone("Mars/Olympus_Mons").is_err());
        assert!(parse_time_zone("").is_err());
        assert!(parse_time_zone(&"x".repeat(100)).is_err());
        assert!(parse_time_zone("UTC").is_ok());
    }

    /// An AGENT budget replaces the EACH_AGENT budget of the same action and
    /// window for its agent only; a spend with no agent counts only in
    /// WORKSPACE budgets; an action-specific budget ignores other actions.
    #[test]
    fn overrides_agents_and_actions() {
        let budgets = vec![
            budget("team", BudgetTarget::Workspace, None, None),
            budget("each", BudgetTarget::EachAgent, None, Some(Action::Sidekick)),
            budget("lead", BudgetTarget::Agent, Some("ana"), Some(Action::Sidekick)),
            budget("each-triage", BudgetTarget::EachAgent, None, Some(Action::Triage)),
        ];
        let names = |agent: Option<&str>, action: Action| -> Vec<String> {
            applicable(&budgets, agent, action)
                .into_iter()
                .map(|budget| budget.name.clone())
                .collect()
        };
        assert_eq!(names(Some("ana"), Action::Sidekick), ["lead", "team"]);
        assert_eq!(names(Some("bob"), Action::Sidekick), ["each", "team"]);
        assert_eq!(names(Some("bob"), Action::Triage), ["each-triage", "team"]);
        assert_eq!(names(None, Action::Sidekick), ["team"]);

        let mut other_window = budgets.clone();
        other_window[2].window = BudgetWindow::BillingPeriod;
        let names: Vec<&str> = applicable(&other_window, Some("ana"), Action::Sidekick)
            .into_iter()
            .map(|budget| budget.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["each", "lead", "team"],
            "another window overrides nothing"
        );
    }

    #[test]
    fn budget_input_is_checked() {
        assert!(check_budget("daily", BudgetTarget::Agent, None, 5).is_err());
        assert!(check_budget("daily", BudgetTarget::EachAgent, Some("ana"), 5).is_err());
        assert!(check_budget("daily", BudgetTarget::Workspace, None, -1).is_err());
        assert!(check_budget("", BudgetTarget::Workspace, None, 1).is_err());
        assert!(check_budget(&"n".repeat(65), BudgetTarget::Workspace, None, 1).is_err());
        assert!(check_budget(&"n".repeat(64), BudgetTarget::Workspace, None, 0).is_ok());
        assert!(check_agent_id("").is_err());
        assert!(check_agent_id("a\u{0}b").is_err());
    }

    #[test]
    fn a_new_scope_counts_afresh_and_a_new_limit_keeps_the_count() {
        let now = utc("2026-03-01T12:00:00Z");
        let mut stored = budget("cap", BudgetTarget::EachAgent, None, None);
        stored.id = 4;
        let input = |applies_to, action, limit| BudgetInput {
            name: "cap".to_owned(),
            applies_to,
            agent_id: None,
            action,
            window: BudgetWindow::Day,
            limit,
            mode: BudgetMode::Hard,
        };
        let existing = [stored.clone()];
        let (kept, restart) = revise(&existing, input(BudgetTarget::EachAgent, None, 9), now).expect("valid");
        assert!(!restart);
        assert_eq!(
            (kept.id, kept.limit, kept.counting_since),
            (4, 9, stored.counting_since)
        );
        assert_eq!((kept.created_at, kept.updated_at), (stored.created_at, now));
        let (moved, restart) = revise(
            &existing,
            input(BudgetTarget::EachAgent, Some(Action::Triage), 5),
            now,
        )
        .expect("valid");
        assert!(restart, "another action: what it counted is not what it counts");
        for changed in [
            input(BudgetTarget::Workspace, None, 5),
            BudgetInput {
                agent_id: Some("ana".to_owned()),
                ..input(BudgetTarget::EachAgent, None, 5)
            },
            BudgetInput {
                window: BudgetWindow::BillingPeriod,
                ..input(BudgetTarget::EachAgent, None, 5)
            },
        ] {
            let (_, restart) = revise(&existing, changed.clone(), now).expect("valid");
            assert!(restart, "{changed:?}");
        }
        assert_eq!((moved.id, moved.counting_since), (4, now));
        let (new, restart) = revise(&[], input(BudgetTarget::Workspace, None, 5), now).expect("valid");
        assert!(!restart);
        assert_eq!((new.id, new.counting_since, new.created_at), (0, now, now));
        let full: Vec<Budget> = (0..BUDGETS_MAX)
            .map(|n| Budget {
                name: format!("b{n}"),
                ..stored.clone()
            })
            .collect();
        assert!(
            revise(&full, input(BudgetTarget::Workspace, None, 5), now).is_err(),
            "a 101st"
        );
        assert!(
            revise(
                &full,
                BudgetInput {
                    name: "b7".to_owned(),
                    ..input(BudgetTarget::Workspace, None, 5)
                },
                now
            )
            .is_ok(),
            "an existing one of 100"
        );
    }

    #[test]
    fn the_trial_is_one_window_then_the_time_after_it() {
        let ends = utc("2026-02-07T10:00:00Z");
        let head = crate::head::Head {
            id: 1,
            workspace_id: "ws".to_owned(),
            balance: 0,
            held: 0,
            last_sequence: 1,
            plan: crate::catalogue::PlanCode::ProTrial,
            pending_plan: None,
            trial_ends_at: Some(ends),
            anchor: None,
            period_start: None,
            period_end: None,
            enterprise_allocation: None,
            threshold: None,
            alerted_at: None,
            time_zone: "UTC".to_owned(),
            budget_version: 0,
            auto_top_up_threshold: None,
            subscription_id: None,
            standing_until: None,
        };
        let during = period_window(&head, ends - chrono::Duration::seconds(1));
        assert_eq!(
            (during.start, during.resets_at),
            (DateTime::<Utc>::UNIX_EPOCH, Some(ends))
        );
        for after in [ends, ends + chrono::Duration::days(3)] {
            let window = period_window(&head, after);
            assert_eq!((window.start, window.resets_at), (ends, None), "{after}");
        }
    }

    #[test]
    fn agent_ids_hold_one_to_two_hundred_characters() {
        assert!(
            check_agent_id(&"é".repeat(AGENT_ID_MAX)).is_ok(),
            "200 characters, 400 bytes"
        );
        assert!(check_agent_id(&"a".repeat(AGENT_ID_MAX + 1)).is_err());
        assert!(check_agent_id("").is_err());
        assert!(check_agent_id("bot\u{202E}").is_err());
    }
}
