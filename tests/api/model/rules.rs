//! The model: the billing rules in plain arithmetic of its own (periods,
//! burn-down, keys, plan changes), nothing of the service's code.

use super::*;

/// Credits per period of each paid plan (the catalogue's).
pub(super) const PLANS: [(&str, i64); 3] = [("STARTER", 250), ("PRO", 1000), ("BUSINESS", 2500)];

pub(super) fn monthly(plan: &str) -> i64 {
    PLANS
        .iter()
        .find(|(code, _)| *code == plan)
        .map_or(0, |(_, credits)| *credits)
}

/// The start of the `n`th period after `anchor`: `n` calendar months on,
/// on the anchor's day clamped to the month's length, at the anchor's time
/// of day. The model's own arithmetic, not the service's.
pub(super) fn nth_period_start(anchor: DateTime<Utc>, n: i32) -> DateTime<Utc> {
    let months = anchor.year() * 12 + anchor.month0() as i32 + n;
    let (year, month) = (months.div_euclid(12), months.rem_euclid(12) as u32 + 1);
    let first = NaiveDate::from_ymd_opt(year, month, 1).unwrap();
    let next_first = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1).unwrap()
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1).unwrap()
    };
    let days = (next_first - first).num_days() as u32;
    let date = NaiveDate::from_ymd_opt(year, month, anchor.day().min(days)).unwrap();
    Utc.from_utc_datetime(&date.and_time(anchor.time()))
}

/// The period (start, end) of the anchor's series that contains `now`.
pub(super) fn period_containing(anchor: DateTime<Utc>, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let mut n = (now.year() - anchor.year()) * 12 + now.month0() as i32 - anchor.month0() as i32 - 1;
    while nth_period_start(anchor, n + 1) <= now {
        n += 1;
    }
    while nth_period_start(anchor, n) > now {
        n -= 1;
    }
    (nth_period_start(anchor, n), nth_period_start(anchor, n + 1))
}

/// Ledger rows with each run of consecutive EXPIRE rows sorted: grants
/// expiring in one settle may be closed in either order.
pub(super) fn normalised(rows: &[(String, i64)]) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = Vec::with_capacity(rows.len());
    let mut run: Vec<(String, i64)> = Vec::new();
    for row in rows {
        if row.0 == "EXPIRE" {
            run.push(row.clone());
            continue;
        }
        run.sort();
        out.append(&mut run);
        out.push(row.clone());
    }
    run.sort();
    out.append(&mut run);
    out
}

pub(super) const WORKSPACES: [&str; 3] = ["m-0", "m-1", "m-2"];

pub(super) const PACKS: [(&str, i64); 3] = [("PACK_100", 100), ("PACK_500", 500), ("PACK_2500", 2500)];

pub(super) const ACTIONS: [&str; 3] = ["TRIAGE", "AUTO_RESOLVE", "SIDEKICK"];

#[derive(Debug, Clone)]
pub(super) struct Grant {
    /// Creation order (the service's ids grow the same way).
    pub(super) order: u64,
    /// allocation, purchased or bonus.
    pub(super) bucket: &'static str,
    pub(super) remaining: i64,
    pub(super) expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub(super) struct Charge {
    pub(super) transaction_id: String,
    pub(super) grant_order: u64,
    pub(super) reversed: bool,
    pub(super) agent: Option<&'static str>,
    pub(super) action: &'static str,
    pub(super) at: DateTime<Utc>,
}

#[derive(Debug)]
pub(super) struct Wallet {
    pub(super) grants: Vec<Grant>,
    pub(super) spend_keys: HashMap<String, String>,
    pub(super) top_up_keys: HashMap<String, String>,
    pub(super) anchor: Option<DateTime<Utc>>,
    pub(super) period_end: Option<DateTime<Utc>>,
    /// The paid plan (none during the trial).
    pub(super) plan: Option<&'static str>,
    /// A downgrade waiting for the next reset.
    pub(super) pending: Option<&'static str>,
    /// The current period's allocation grant and what it was granted.
    pub(super) allocation: Option<(u64, i64)>,
    /// Spends that may be reversed (their grant is known exactly).
    pub(super) charges: Vec<Charge>,
    /// The ledger as (kind, amount), oldest first.
    pub(super) rows: Vec<(String, i64)>,
    /// When the trial ends.
    pub(super) trial_end: DateTime<Utc>,
    /// The workspace's time zone.
    pub(super) time_zone: &'static str,
    /// Its budgets.
    pub(super) budgets: Vec<Budget>,
    /// (budget, subject) → (window start, used in it).
    pub(super) counters: HashMap<(&'static str, String), (DateTime<Utc>, i64)>,
}

#[derive(Default)]
pub(super) struct Model {
    pub(super) wallets: HashMap<&'static str, Wallet>,
    pub(super) next_order: u64,
}

impl Model {
    pub(super) fn grant(
        &mut self,
        workspace: &str,
        bucket: &'static str,
        credits: i64,
        expires_at: Option<DateTime<Utc>>,
    ) -> u64 {
        self.next_order += 1;
        let order = self.next_order;
        if let Some(wallet) = self.wallets.get_mut(workspace) {
            wallet.grants.push(Grant {
                order,
                bucket,
                remaining: credits,
                expires_at,
            });
        }
        order
    }

    pub(super) fn row(&mut self, workspace: &str, kind: &str, amount: i64) {
        self.wallets
            .get_mut(workspace)
            .unwrap()
            .rows
            .push((kind.to_owned(), amount));
    }

    /// Grants the allocation of the period ending `end` (a GRANT row).
    pub(super) fn grant_allocation(&mut self, workspace: &str, credits: i64, end: DateTime<Utc>) {
        if credits <= 0 {
            self.wallets.get_mut(workspace).unwrap().allocation = None;
            return;
        }
        let order = self.grant(workspace, "allocation", credits, Some(end));
        self.row(workspace, "GRANT", credits);
        self.wallets.get_mut(workspace).unwrap().allocation = Some((order, credits));
    }

    /// Expire what is due (an EXPIRE row for what each grant still held),
    /// then renew an ended period into the one containing `now`, on the
    /// pending plan if there is one.
    pub(super) fn settle(&mut self, workspace: &str, now: DateTime<Utc>) {
        let wallet = self.wallets.get_mut(workspace).unwrap();
        let (due, live): (Vec<Grant>, Vec<Grant>) = std::mem::take(&mut wallet.grants)
            .into_iter()
            .partition(|grant| grant.expires_at.is_some_and(|at| at <= now));
        wallet.grants = live;
        for grant in due.iter().filter(|grant| grant.remaining > 0) {
            wallet.rows.push(("EXPIRE".to_owned(), -grant.remaining));
        }
        if let (Some(anchor), Some(end)) = (wallet.anchor, wallet.period_end)
            && end <= now
        {
            let (_, end) = period_containing(anchor, now);
            wallet.period_end = Some(end);
            if let Some(pending) = wallet.pending.take() {
                wallet.plan = Some(pending);
            }
            let credits = monthly(wallet.plan.unwrap_or_default());
            self.grant_allocation(workspace, credits, end);
        }
    }

    pub(super) fn total(&self, workspace: &str) -> i64 {
        self.wallets[workspace]
            .grants
            .iter()
            .map(|grant| grant.remaining)
            .sum()
    }

    pub(super) fn split(&self, workspace: &str) -> Value {
        let sum = |bucket: &str| -> i64 {
            self.wallets[workspace]
                .grants
                .iter()
                .filter(|grant| grant.bucket == bucket)
                .map(|grant| grant.remaining)
                .sum()
        };
        json!({ "total": self.total(workspace), "allocation": sum("allocation"),
                "purchased": sum("purchased"), "bonus": sum("bonus") })
    }

    /// Takes `credits` in burn-down order; which grant paid the last one.
    pub(super) fn burn(&mut self, workspace: &str, credits: i64) -> Option<u64> {
        if self.total(workspace) < credits {
            return None;
        }
        let wallet = self.wallets.get_mut(workspace).unwrap();
        wallet
            .grants
            .sort_by_key(|grant| (grant.expires_at.is_none(), grant.expires_at, grant.order));
        let mut left = credits;
        let mut last = None;
        for grant in &mut wallet.grants {
            let take = grant.remaining.min(left);
            if take > 0 {
                grant.remaining -= take;
                left -= take;
                last = Some(grant.order);
            }
        }
        last
    }
}

/// The agents spends are drawn for (`None`: a spend naming no agent).
pub(super) const AGENTS: [Option<&str>; 4] = [None, Some("ana"), Some("bob"), Some("cy")];

/// Each workspace's time zone (budgets' days end at its midnight).
pub(super) const TIME_ZONES: [&str; 3] = ["UTC", "America/Los_Angeles", "Asia/Kolkata"];

/// A budget as the model keeps it.
#[derive(Debug, Clone)]
pub(super) struct Budget {
    pub(super) name: &'static str,
    /// WORKSPACE, EACH_AGENT or AGENT.
    pub(super) applies_to: &'static str,
    pub(super) agent: Option<&'static str>,
    pub(super) action: Option<&'static str>,
    /// DAY or BILLING_PERIOD.
    pub(super) window: &'static str,
    pub(super) limit: i64,
    pub(super) hard: bool,
}

/// The budgets every model workspace starts with (limits drawn per
/// workspace): a team cap, a per-agent cap per period, a per-agent
/// Sidekick cap per day with a higher override for ana, a soft cap.
pub(super) fn starting_budgets(random: &mut Random) -> Vec<Budget> {
    let mut limit = |from: usize, to: usize| (from + random.below(to - from + 1)) as i64;
    vec![
        Budget {
            name: "team",
            applies_to: "WORKSPACE",
            agent: None,
            action: None,
            window: "DAY",
            limit: limit(1, 5),
            hard: true,
        },
        Budget {
            name: "each",
            applies_to: "EACH_AGENT",
            agent: None,
            action: None,
            window: "BILLING_PERIOD",
            limit: limit(2, 8),
            hard: true,
        },
        Budget {
            name: "each-sidekick",
            applies_to: "EACH_AGENT",
            agent: None,
            action: Some("SIDEKICK"),
            window: "DAY",
            limit: limit(0, 2),
            hard: true,
        },
        Budget {
            name: "ana-sidekick",
            applies_to: "AGENT",
            agent: Some("ana"),
            action: Some("SIDEKICK"),
            window: "DAY",
            limit: limit(1, 4),
            hard: true,
        },
        Budget {
            name: "soft-triage",
            applies_to: "WORKSPACE",
            agent: None,
            action: Some("TRIAGE"),
            window: "DAY",
            limit: limit(0, 2),
            hard: false,
        },
    ]
}

impl Budget {
    /// Whether it counts `agent`'s spends of some action, overrides applied.
    fn applies(&self, all: &[Budget], agent: Option<&str>) -> bool {
        match self.applies_to {
            "WORKSPACE" => true,
            "EACH_AGENT" => {
                agent.is_some()
                    && !all.iter().any(|other| {
                        other.applies_to == "AGENT"
                            && other.agent == agent
                            && other.action == self.action
                            && other.window == self.window
                    })
            }
            _ => agent.is_some() && self.agent == agent,
        }
    }

    fn subject(&self, agent: Option<&str>) -> String {
        if self.applies_to == "WORKSPACE" {
            String::new()
        } else {
            agent.unwrap_or_default().to_owned()
        }
    }
}

impl Model {
    /// The start of the window `budget` counts in at `now`: the local day,
    /// or the billing period (the trial as one, then the time after it).
    pub(super) fn window_start(&self, workspace: &str, budget: &Budget, now: DateTime<Utc>) -> DateTime<Utc> {
        let wallet = &self.wallets[workspace];
        if budget.window == "DAY" {
            let zone: chrono_tz::Tz = wallet.time_zone.parse().unwrap();
            let midnight = now
                .with_timezone(&zone)
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .unwrap();
            return zone
                .from_local_datetime(&midnight)
                .earliest()
                .unwrap()
                .with_timezone(&Utc);
        }
        match (wallet.anchor, wallet.trial_end) {
            (Some(anchor), _) => period_containing(anchor, now).0,
            (None, end) if now < end => DateTime::<Utc>::UNIX_EPOCH,
            (None, end) => end,
        }
    }

    /// The budgets counting a spend of `action` by `agent`, by name, with
    /// (subject, window start, used in that window).
    pub(super) fn counting(
        &self,
        workspace: &str,
        agent: Option<&str>,
        action: Option<&str>,
        now: DateTime<Utc>,
    ) -> Vec<(Budget, String, DateTime<Utc>, i64)> {
        let wallet = &self.wallets[workspace];
        let mut found: Vec<_> = wallet
            .budgets
            .iter()
            .filter(|budget| budget.applies(&wallet.budgets, agent))
            .filter(|budget| action.is_none() || budget.action.is_none() || budget.action == action)
            .map(|budget| {
                let subject = budget.subject(agent);
                let start = self.window_start(workspace, budget, now);
                let used = match wallet.counters.get(&(budget.name, subject.clone())) {
                    Some((counted, used)) if *counted == start => *used,
                    _ => 0,
                };
                (budget.clone(), subject, start, used)
            })
            .collect();
        found.sort_by_key(|(budget, ..)| budget.name);
        found
    }

    /// The first HARD budget a spend of 1 would take over its limit.
    pub(super) fn blocking(
        &self,
        workspace: &str,
        agent: Option<&str>,
        action: &str,
        now: DateTime<Utc>,
    ) -> Option<&'static str> {
        self.counting(workspace, agent, Some(action), now)
            .into_iter()
            .find(|(budget, _, _, used)| budget.hard && used + 1 > budget.limit)
            .map(|(budget, ..)| budget.name)
    }

    /// Counts a charged spend in every budget that applies.
    pub(super) fn count(
        &mut self,
        workspace: &str,
        agent: Option<&str>,
        action: &str,
        now: DateTime<Utc>,
        by: i64,
    ) {
        for (budget, subject, start, used) in self.counting(workspace, agent, Some(action), now) {
            let counted = (used + by).max(0);
            self.wallets
                .get_mut(workspace)
                .unwrap()
                .counters
                .insert((budget.name, subject), (start, counted));
        }
    }

    /// A reversal at `now` of a spend charged at `at`: each budget gives one
    /// back when the spend is in its current window.
    pub(super) fn uncount(&mut self, workspace: &str, charge: &Charge, now: DateTime<Utc>) {
        for (budget, subject, start, used) in self.counting(workspace, charge.agent, Some(charge.action), now)
        {
            if start <= charge.at && used > 0 {
                self.wallets
                    .get_mut(workspace)
                    .unwrap()
                    .counters
                    .insert((budget.name, subject), (start, used - 1));
            }
        }
    }
}
