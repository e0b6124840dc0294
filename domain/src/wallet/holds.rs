//! Holds on a wallet: placed by the spend rules (`Wallet::take`), then
//! captured, released, extended or expired (`docs/design/holds.md`).
//!
//! A hold pins credits in the grants that would pay for it, in burn-down
//! order; its HOLD row moves nothing (amount 0). A capture burns the pinned
//! credits first and the rest, if it asks more, from what is available as
//! far as the balance and the HARD budgets allow; its SPEND row names the
//! hold. A release (or an expiry) unpins them with a RELEASE row. Credits
//! given back to a grant that expired meanwhile expire at once (an EXPIRE
//! row), so the hold never lengthens a grant's life.

use chrono::{DateTime, Utc};

use super::{Entry, Wallet};
use crate::DomainError;
use crate::burn_down::{Burn, plan_burn};
use crate::catalogue::LedgerKind;
use crate::hold::{Hold, HoldState, NEW_HOLD_ID_BASE, check_credits, check_reason};
use crate::settlement::{expiry_reference, is_grant_due};

/// What a spend's rules do with the credits they find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taking {
    /// Burn them: a SPEND row.
    Charge,
    /// Pin them in a hold that expires at `expires_at`: a HOLD row.
    Hold {
        /// When the hold expires unless captured, released or extended.
        expires_at: DateTime<Utc>,
    },
}

/// Why a hold operation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldRefusal {
    /// The wallet holds no live hold of that id: captured, released,
    /// expired or unknown (the caller reads the stored hold to say which).
    NotHeld,
    /// An input is out of bounds.
    Invalid(DomainError),
}

impl From<DomainError> for HoldRefusal {
    fn from(error: DomainError) -> Self {
        Self::Invalid(error)
    }
}

/// A capture's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The SPEND row's index in the change.
    pub row: usize,
    /// The hold as it ends.
    pub hold: Hold,
}

impl Wallet {
    /// The wallet's holds read or placed in this change, live or not.
    pub fn holds(&self) -> &[Hold] {
        &self.state.holds
    }

    /// Pins `burns` in a new hold and appends its HOLD row (amount 0);
    /// returns the row's index. The caller's spend rules chose the burns
    /// and counted the budgets.
    pub(super) fn place_hold(
        &mut self,
        mut entry: Entry,
        burns: &[Burn],
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> usize {
        let id = NEW_HOLD_ID_BASE + self.state.holds.iter().filter(|hold| hold.is_new()).count() as i64;
        let credits: i64 = burns.iter().map(|burn| burn.credits).sum();
        let pins: Vec<(i64, i64)> = burns.iter().map(|burn| (burn.grant_id, burn.credits)).collect();
        self.pin(&pins, 1);
        self.state.head.held += credits;
        entry.hold = Some(id);
        self.state.holds.push(Hold {
            id,
            key: entry
                .key
                .as_ref()
                .map(|binding| binding.key.clone())
                .unwrap_or_default(),
            state: HoldState::Held,
            // Holds are placed only for actions (`Wallet::reserve`).
            action: entry.action.unwrap_or(crate::catalogue::Action::Triage),
            agent_id: entry.agent_id.clone(),
            reference: entry.reference.clone(),
            actor: entry.actor.clone(),
            credits,
            captured: 0,
            uncollected: 0,
            pins,
            expires_at,
            created_at: now,
            resolved_at: None,
            reason: None,
        });
        entry.kind = LedgerKind::Hold;
        self.record(entry, Vec::new())
    }

    /// Captures live hold `hold_id`: charges `credits` (default: what it
    /// holds) in one SPEND row naming the hold. The pinned credits pay
    /// first; more than was held is taken from what is available as far as
    /// it and the HARD budgets allow, and what could not be collected is
    /// reported on the hold (`uncollected`). What was held and not charged
    /// is given back.
    pub fn capture(
        &mut self,
        hold_id: i64,
        credits: Option<i64>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Captured, HoldRefusal> {
        if let Some(credits) = credits {
            check_credits(credits)?;
        }
        let index = self.live_hold(hold_id)?;
        let hold = self.unpin(index);
        let asked = credits.unwrap_or(hold.credits);
        let mut left = asked.min(hold.credits);
        let mut burns = Vec::new();
        for (grant_id, pinned) in &hold.pins {
            if left == 0 {
                break;
            }
            let take = left.min(*pinned);
            burns.push(Burn {
                grant_id: *grant_id,
                credits: take,
            });
            left -= take;
        }
        let from_hold = asked.min(hold.credits);
        let excess = asked - from_hold;
        let mut collected_excess = 0;
        if excess > 0 {
            // What is available besides the hold's own credits, which the
            // burns above already take.
            let mut spendable = self.spendable();
            for burn in &burns {
                if let Some(grant) = spendable.iter_mut().find(|grant| grant.id == burn.grant_id) {
                    grant.remaining -= burn.credits;
                }
            }
            let available: i64 = spendable.iter().map(|grant| grant.remaining).sum();
            let room = self.budget_room(hold.agent_id.as_deref(), hold.action, now);
            let wanted = excess.min(room).min(available);
            if wanted > 0
                && let Some(more) = plan_burn(&spendable, wanted)
            {
                burns.extend(more);
                collected_excess = wanted;
            }
        }
        let collected = from_hold + collected_excess;
        // One move per grant (a grant may pay pinned and free credits).
        let mut merged: Vec<Burn> = Vec::with_capacity(burns.len());
        for burn in burns {
            match merged.iter_mut().find(|seen| seen.grant_id == burn.grant_id) {
                Some(seen) => seen.credits += burn.credits,
                None => merged.push(burn),
            }
        }
        let entry = Entry {
            kind: LedgerKind::Spend,
            action: Some(hold.action),
            reference: hold.reference.clone(),
            actor: actor.to_owned(),
            key: None,
            reverses: None,
            agent_id: hold.agent_id.clone(),
            hold: Some(hold.id),
        };
        let row = self.burn(entry, &merged);
        // The hold was counted in full when placed: budgets that counted it
        // move by what the capture changed; a window opened since counts
        // only what was taken beyond the hold.
        self.recount(
            hold.agent_id.as_deref(),
            hold.action,
            hold.created_at,
            collected - hold.credits,
            collected_excess,
            now,
        );
        self.expire_freed(&hold.pins, now);
        let hold = self.resolve(
            index,
            Hold {
                state: HoldState::Captured,
                captured: collected,
                uncollected: asked - collected,
                ..hold
            },
            now,
        );
        Ok(Captured { row, hold })
    }

    /// Releases live hold `hold_id` (its caller's `reason`): a RELEASE row,
    /// the budgets given back; returns the row's index.
    pub fn release(
        &mut self,
        hold_id: i64,
        reason: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, HoldRefusal> {
        check_reason(reason)?;
        let index = self.live_hold(hold_id)?;
        let row = self.give_back(index, HoldState::Released, reason, actor, now);
        let pins = self.state.holds[index].pins.clone();
        self.expire_freed(&pins, now);
        Ok(row)
    }

    /// Moves live hold `hold_id`'s expiry to `expires_at` (a heartbeat of
    /// a long action); no row, so the head's version moves instead (a
    /// batch that read the hold before sees that it changed).
    pub fn extend(&mut self, hold_id: i64, expires_at: DateTime<Utc>) -> Result<&Hold, HoldRefusal> {
        let index = self.live_hold(hold_id)?;
        self.budgets_changed();
        let hold = &mut self.state.holds[index];
        hold.expires_at = expires_at;
        Ok(hold)
    }

    /// Expires every live hold due at `now`, oldest first (settling does
    /// this before grants expire, so the credits they give back to an
    /// expired grant expire with it).
    pub(super) fn expire_holds(&mut self, now: DateTime<Utc>) {
        let mut due: Vec<usize> = (0..self.state.holds.len())
            .filter(|&index| self.state.holds[index].is_due(now))
            .collect();
        due.sort_by_key(|&index| (self.state.holds[index].expires_at, self.state.holds[index].id));
        for index in due {
            self.give_back(index, HoldState::Expired, "expired", "system", now);
        }
    }

    /// The index of live hold `hold_id`.
    fn live_hold(&self, hold_id: i64) -> Result<usize, HoldRefusal> {
        self.state
            .holds
            .iter()
            .position(|hold| hold.id == hold_id && hold.is_held())
            .ok_or(HoldRefusal::NotHeld)
    }

    /// Unpins hold `index`'s credits and gives back its budgets; appends
    /// its RELEASE row and marks it `state`.
    fn give_back(
        &mut self,
        index: usize,
        state: HoldState,
        reason: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> usize {
        let hold = self.unpin(index);
        self.recount(
            hold.agent_id.as_deref(),
            hold.action,
            hold.created_at,
            -hold.credits,
            0,
            now,
        );
        let entry = Entry {
            kind: match state {
                HoldState::Expired => LedgerKind::HoldExpired,
                _ => LedgerKind::Release,
            },
            action: Some(hold.action),
            reference: Some(reason.to_owned()),
            actor: actor.to_owned(),
            key: None,
            reverses: None,
            agent_id: hold.agent_id.clone(),
            hold: Some(hold.id),
        };
        let row = self.record(entry, Vec::new());
        self.resolve(
            index,
            Hold {
                state,
                reason: Some(reason.to_owned()),
                ..hold
            },
            now,
        );
        row
    }

    /// Takes hold `index`'s pins off its grants and the head; returns the
    /// hold as it was.
    fn unpin(&mut self, index: usize) -> Hold {
        let hold = self.state.holds[index].clone();
        self.pin(&hold.pins, -1);
        self.state.head.held -= hold.credits;
        hold
    }

    /// Adds (`sign` 1) or removes (-1) pins on the grants.
    fn pin(&mut self, pins: &[(i64, i64)], sign: i64) {
        for (grant_id, credits) in pins {
            if let Some(grant) = self.state.grants.iter_mut().find(|grant| grant.id == *grant_id) {
                grant.held += sign * credits;
            }
        }
    }

    /// Stores `hold` as hold `index` now resolved; returns it.
    fn resolve(&mut self, index: usize, hold: Hold, now: DateTime<Utc>) -> Hold {
        let hold = Hold {
            resolved_at: Some(now),
            ..hold
        };
        self.state.holds[index] = hold.clone();
        hold
    }

    /// Expires what a resolved hold gave back to grants that expired while
    /// it held them (an EXPIRE row each), and closes those left empty and
    /// unpinned.
    fn expire_freed(&mut self, pins: &[(i64, i64)], now: DateTime<Utc>) {
        for (grant_id, _) in pins {
            let Some(grant) = self.state.grants.iter().find(|grant| grant.id == *grant_id) else {
                continue;
            };
            if !is_grant_due(grant.expires_at, now) {
                continue;
            }
            let (free, source, held) = (grant.free(), grant.source, grant.held);
            if free > 0 {
                self.record(
                    Entry::by(LedgerKind::Expire, "system", expiry_reference(source, *grant_id)),
                    vec![(*grant_id, -free)],
                );
            }
            if held == 0 {
                self.state.grants.retain(|grant| grant.id != *grant_id);
                self.closes.push(*grant_id);
            }
        }
    }
}
