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
    /// Credits left, held ones included.
    pub(super) remaining: i64,
    /// Credits of `remaining` that live holds pin.
    pub(super) held: i64,
    pub(super) expires_at: Option<DateTime<Utc>>,
}

/// A hold as the model keeps it.
#[derive(Debug, Clone)]
pub(super) struct Hold {
    /// The service's id.
    pub(super) id: String,
    pub(super) credits: i64,
    /// (grant order, credits), in burn-down order at the time it was placed.
    pub(super) pins: Vec<(u64, i64)>,
    pub(super) expires_at: DateTime<Utc>,
    pub(super) at: DateTime<Utc>,
    pub(super) agent: Option<&'static str>,
    pub(super) action: &'static str,
    /// HELD, CAPTURED, RELEASED or EXPIRED.
    pub(super) state: &'static str,
    /// What a capture asked (captured + uncollected).
    pub(super) asked: i64,
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
    /// Holds, oldest first.
    pub(super) holds: Vec<Hold>,
    /// Hold keys → the fingerprint that bound them and the hold's index.
    pub(super) hold_keys: HashMap<String, (String, usize)>,
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
                held: 0,
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
    /// Holds due expire first (oldest expiry first), each giving its
    /// budgets back; a grant whose credits are pinned expires only what is
    /// free and stays until its holds end.
    pub(super) fn settle(&mut self, workspace: &str, now: DateTime<Utc>) {
        let mut due: Vec<usize> = (0..self.wallets[workspace].holds.len())
            .filter(|&index| {
                let hold = &self.wallets[workspace].holds[index];
                hold.state == "HELD" && hold.expires_at <= now
            })
            .collect();
        due.sort_by_key(|&index| (self.wallets[workspace].holds[index].expires_at, index));
        for index in due {
            self.give_back(workspace, index, "EXPIRED", now);
        }
        let wallet = self.wallets.get_mut(workspace).unwrap();
        let mut kept = Vec::new();
        for mut grant in std::mem::take(&mut wallet.grants) {
            if grant.expires_at.is_none_or(|at| at > now) {
                kept.push(grant);
                continue;
            }
            let free = grant.remaining - grant.held;
            if free > 0 {
                wallet.rows.push(("EXPIRE".to_owned(), -free));
            }
            if grant.held > 0 {
                grant.remaining = grant.held;
                kept.push(grant);
            }
        }
        wallet.grants = kept;
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

    /// Credits pinned by live holds.
    pub(super) fn held(&self, workspace: &str) -> i64 {
        self.wallets[workspace]
            .holds
            .iter()
            .filter(|hold| hold.state == "HELD")
            .map(|hold| hold.credits)
            .sum()
    }

    /// What spends and holds may take.
    pub(super) fn available(&self, workspace: &str) -> i64 {
        self.total(workspace) - self.held(workspace)
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
                "purchased": sum("purchased"), "bonus": sum("bonus"),
                "available": self.available(workspace), "held": self.held(workspace) })
    }

    /// Takes `credits` of what no hold pins, in burn-down order; which
    /// grant paid the last one.
    pub(super) fn burn(&mut self, workspace: &str, credits: i64) -> Option<u64> {
        let pins = self.pick(workspace, credits)?;
        let wallet = self.wallets.get_mut(workspace).unwrap();
        for (order, take) in &pins {
            let grant = wallet
                .grants
                .iter_mut()
                .find(|grant| grant.order == *order)
                .unwrap();
            grant.remaining -= take;
        }
        pins.last().map(|(order, _)| *order)
    }

    /// The (grant, credits) that would pay `credits` of what no hold pins,
    /// in burn-down order; `None` when less is available.
    pub(super) fn pick(&mut self, workspace: &str, credits: i64) -> Option<Vec<(u64, i64)>> {
        if self.available(workspace) < credits {
            return None;
        }
        let wallet = self.wallets.get_mut(workspace).unwrap();
        wallet
            .grants
            .sort_by_key(|grant| (grant.expires_at.is_none(), grant.expires_at, grant.order));
        let mut left = credits;
        let mut pins = Vec::new();
        for grant in &wallet.grants {
            let take = (grant.remaining - grant.held).min(left);
            if take > 0 {
                left -= take;
                pins.push((grant.order, take));
            }
        }
        Some(pins)
    }

    /// Hold `index`'s credits back to its grants, its budgets given back,
    /// a RELEASE (or HOLD_EXPIRED) row; then what it gave back to grants
    /// already expired expires.
    pub(super) fn give_back(
        &mut self,
        workspace: &str,
        index: usize,
        state: &'static str,
        now: DateTime<Utc>,
    ) {
        let hold = self.unpin(workspace, index);
        self.wallets.get_mut(workspace).unwrap().holds[index].state = state;
        self.recount(workspace, &hold, -hold.credits, 0, now);
        self.row(
            workspace,
            if state == "EXPIRED" {
                "HOLD_EXPIRED"
            } else {
                "RELEASE"
            },
            0,
        );
        if state != "EXPIRED" {
            self.expire_freed(workspace, &hold.pins, now);
        }
    }

    /// Takes hold `index`'s pins off its grants; the hold.
    pub(super) fn unpin(&mut self, workspace: &str, index: usize) -> Hold {
        let wallet = self.wallets.get_mut(workspace).unwrap();
        let hold = wallet.holds[index].clone();
        for (order, credits) in &hold.pins {
            if let Some(grant) = wallet.grants.iter_mut().find(|grant| grant.order == *order) {
                grant.held -= credits;
            }
        }
        hold
    }

    /// Credits given back to grants past their expiry expire (an EXPIRE
    /// row each); such a grant left with nothing pinned is gone.
    pub(super) fn expire_freed(&mut self, workspace: &str, pins: &[(u64, i64)], now: DateTime<Utc>) {
        let wallet = self.wallets.get_mut(workspace).unwrap();
        for (order, _) in pins {
            let Some(position) = wallet.grants.iter().position(|grant| grant.order == *order) else {
                continue;
            };
            let grant = &mut wallet.grants[position];
            if grant.expires_at.is_none_or(|at| at > now) {
                continue;
            }
            let free = grant.remaining - grant.held;
            if free > 0 {
                grant.remaining -= free;
                wallet.rows.push(("EXPIRE".to_owned(), -free));
            }
            if wallet.grants[position].held == 0 {
                wallet.grants.remove(position);
            }
        }
    }

    /// Budgets that count `hold`'s action by its agent now move by
    /// `counted` where their window counted the hold, by `fresh` elsewhere.
    pub(super) fn recount(
        &mut self,
        workspace: &str,
        hold: &Hold,
        counted: i64,
        fresh: i64,
        now: DateTime<Utc>,
    ) {
        for (budget, subject, start, used) in self.counting(workspace, hold.agent, Some(hold.action), now) {
            let delta = if start <= hold.at { counted } else { fresh };
            if delta != 0 && (delta > 0 || used > 0) {
                self.wallets
                    .get_mut(workspace)
                    .unwrap()
                    .counters
                    .insert((budget.name, subject), (start, (used + delta).max(0)));
            }
        }
    }

    /// What the HARD budgets counting `action` by `agent` still allow.
    pub(super) fn room(&self, workspace: &str, agent: Option<&str>, action: &str, now: DateTime<Utc>) -> i64 {
        self.counting(workspace, agent, Some(action), now)
            .into_iter()
            .filter(|(budget, ..)| budget.hard)
            .map(|(budget, _, _, used)| (budget.limit - used).max(0))
            .min()
            .unwrap_or(i64::MAX)
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

    /// The first HARD budget a spend of `credits` would take over its limit.
    pub(super) fn blocking(
        &self,
        workspace: &str,
        agent: Option<&str>,
        action: &str,
        now: DateTime<Utc>,
        credits: i64,
    ) -> Option<&'static str> {
        self.counting(workspace, agent, Some(action), now)
            .into_iter()
            .find(|(budget, _, _, used)| budget.hard && used + credits > budget.limit)
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
