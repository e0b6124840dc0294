//! Plans from the payment provider's subscriptions
//! (`docs/design/payments.md`, the lifecycle table).
//!
//! Each subscription's latest state is stored; an event older than the one
//! last applied changes nothing ("older": the event's `created`, then the
//! subscription's current period start, then how far along its lifecycle
//! the status is; a canceled or expired subscription never comes back).
//! Each event id is handled once, recorded in the transaction that applies
//! it. The wallet is then brought to what the stored state says: the plan
//! of its price and its current period while paid, a grace while past due,
//! the paid plan ended otherwise. Lock order: the wallet, then the
//! subscription.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Ledger, Locked};
use crate::error::{AppError, AppResult};
use crate::store;
use crate::store::subscriptions::Subscription;
use domain::catalogue::PlanCode;
use domain::ids::WorkspaceId;
use domain::outbox;
use domain::period::Period;
use domain::subscription::{Shown, Standing, is_newer, standing, status_rank};
use domain::wallet::PaidPlan;

/// A subscription as an event shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    /// Its id (`sub_…`).
    pub id: String,
    /// Its customer.
    pub customer: Option<String>,
    /// Its status (`trialing`, `active`, `past_due`, `canceled`…).
    pub status: String,
    /// The price of its first item.
    pub price_id: Option<String>,
    /// Its current period.
    pub period: Option<Period>,
    /// Its billing cycle anchor.
    pub anchor: Option<DateTime<Utc>>,
    /// Whether it ends at the period's end.
    pub cancel_at_period_end: bool,
    /// The workspace its metadata names.
    pub workspace: Option<WorkspaceId>,
}

/// A subscription event.
#[derive(Debug, Clone)]
pub struct SubscriptionEvent {
    /// The event's id (`evt_…`).
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// Its `created` (unix seconds).
    pub created: i64,
    /// The subscription it carries.
    pub state: SubscriptionState,
}

/// What a subscription event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionOutcome {
    /// The wallet follows it.
    Applied,
    /// This event id was handled before.
    Duplicate,
    /// Older than the state already applied: nothing changed.
    Stale,
    /// No workspace is known for the subscription yet: its state is kept
    /// and applied when the Checkout Session naming the workspace arrives.
    Recorded,
    /// Its price buys no plan of the catalogue (or it has no period): an
    /// operator was told; the wallet is unchanged.
    NeedsReview,
}

impl SubscriptionOutcome {
    /// The answered name.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionOutcome::Applied => "APPLIED",
            SubscriptionOutcome::Duplicate => "DUPLICATE",
            SubscriptionOutcome::Stale => "STALE",
            SubscriptionOutcome::Recorded => "RECORDED",
            SubscriptionOutcome::NeedsReview => "NEEDS_REVIEW",
        }
    }
}

/// The subscription behind a wallet, as `Wallet.subscription` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionView {
    /// Its id.
    pub id: String,
    /// Its status, as the provider names it.
    pub status: String,
    /// When its current period ends.
    pub current_period_end: Option<DateTime<Utc>>,
    /// Whether it ends then.
    pub cancel_at_period_end: bool,
    /// While past due: when the grace, and the plan with it, ends.
    pub grace_ends_at: Option<DateTime<Utc>>,
}

/// The state a stored row last applied (`None`: none yet).
fn applied(stored: &Subscription) -> Option<Shown<'_>> {
    (!stored.event_id.is_empty()).then_some(Shown {
        created: stored.event_created,
        period_start: stored.current_period_start,
        status: &stored.status,
    })
}

/// The state an event shows.
fn shown(event: &SubscriptionEvent) -> Shown<'_> {
    Shown {
        created: event.created,
        period_start: event.state.period.map(|period| period.start),
        status: &event.state.status,
    }
}

impl Ledger {
    /// Applies a subscription event (see the module's rules).
    pub async fn apply_subscription_event(
        &self,
        event: &SubscriptionEvent,
    ) -> AppResult<SubscriptionOutcome> {
        let now = self.now();
        for _ in 0..2 {
            let workspace = match &event.state.workspace {
                Some(workspace) => Some(workspace.as_str().to_owned()),
                None => store::subscriptions::subscription(&self.db, &event.state.id)
                    .await?
                    .and_then(|stored| stored.workspace_id),
            };
            let Some(workspace) = workspace else {
                // No workspace known yet: keep the state for the session.
                let txn = store::begin_write(&self.db).await?;
                if !store::subscriptions::record_event(&txn, &event.event_id, &event.event_type, now).await? {
                    store::commit(txn).await?;
                    return Ok(SubscriptionOutcome::Duplicate);
                }
                let stored = store::subscriptions::lock_subscription(&txn, &event.state.id, now).await?;
                if stored.workspace_id.is_some() {
                    // Linked meanwhile: apply it under the wallet's lock.
                    store::rollback(txn).await?;
                    continue;
                }
                let outcome = self.store_state(&txn, stored, event, None, now).await?;
                store::commit(txn).await?;
                return Ok(match outcome {
                    Some(_) => SubscriptionOutcome::Recorded,
                    None => SubscriptionOutcome::Stale,
                });
            };
            let mut locked = self.lock_settled(&workspace, now).await?;
            if !store::subscriptions::record_event(&locked.txn, &event.event_id, &event.event_type, now)
                .await?
            {
                self.finish(locked, now).await?;
                return Ok(SubscriptionOutcome::Duplicate);
            }
            let stored = store::subscriptions::lock_subscription(&locked.txn, &event.state.id, now).await?;
            let Some(state) = self
                .store_state(&locked.txn, stored, event, Some(&workspace), now)
                .await?
            else {
                self.finish(locked, now).await?;
                return Ok(SubscriptionOutcome::Stale);
            };
            let outcome = self.follow(&mut locked, &state, now).await?;
            self.finish(locked, now).await?;
            return Ok(outcome);
        }
        Err(AppError::Unavailable(anyhow::anyhow!(
            "the subscription was linked twice while this event was handled; retry"
        )))
    }

    /// A Checkout Session in subscription mode names the workspace of its
    /// subscription: the stored state (if any came first) applies now.
    pub async fn link_subscription(
        &self,
        event_id: &str,
        subscription_id: &str,
        workspace: &WorkspaceId,
    ) -> AppResult<SubscriptionOutcome> {
        let now = self.now();
        let mut locked = self.lock_settled(workspace.as_str(), now).await?;
        if !store::subscriptions::record_event(&locked.txn, event_id, "checkout.session.completed", now)
            .await?
        {
            self.finish(locked, now).await?;
            return Ok(SubscriptionOutcome::Duplicate);
        }
        let mut stored = store::subscriptions::lock_subscription(&locked.txn, subscription_id, now).await?;
        let outcome = match stored.workspace_id.as_deref() {
            Some(other) if other != workspace.as_str() => {
                let event = outbox::payment_needs_review(
                    workspace.as_str(),
                    subscription_id,
                    "subscription_of_another_workspace",
                    json!({ "subscriptionId": subscription_id, "workspaceId": other }),
                );
                locked.wallet.tell(event);
                SubscriptionOutcome::NeedsReview
            }
            _ => {
                stored.workspace_id = Some(workspace.as_str().to_owned());
                store::subscriptions::save_subscription(&locked.txn, stored.clone()).await?;
                if stored.event_id.is_empty() {
                    // Its own events follow and find the workspace here.
                    SubscriptionOutcome::Recorded
                } else {
                    // Its state came first: it applies now.
                    self.follow(&mut locked, &stored, now).await?
                }
            }
        };
        self.finish(locked, now).await?;
        Ok(outcome)
    }

    /// The subscription `subscription_id` names (a wallet's), as `Wallet.subscription` shows it.
    pub async fn subscription_of(
        &self,
        subscription_id: Option<&str>,
        grace_ends_at: Option<DateTime<Utc>>,
    ) -> AppResult<Option<SubscriptionView>> {
        let Some(id) = subscription_id else {
            return Ok(None);
        };
        let stored = store::subscriptions::subscription(&self.db, id).await?;
        Ok(stored.map(|stored| SubscriptionView {
            id: stored.subscription_id,
            status: stored.status,
            current_period_end: stored.current_period_end,
            cancel_at_period_end: stored.cancel_at_period_end,
            grace_ends_at,
        }))
    }

    /// Stores the event's state when it is newer than the stored one;
    /// `None` when it is not.
    async fn store_state(
        &self,
        txn: &store::Tx,
        stored: Subscription,
        event: &SubscriptionEvent,
        workspace: Option<&str>,
        now: DateTime<Utc>,
    ) -> AppResult<Option<Subscription>> {
        if !is_newer(applied(&stored), shown(event)) {
            return Ok(None);
        }
        let past_due_since = match event.state.status.as_str() {
            "past_due" if stored.status == "past_due" => stored.past_due_since,
            "past_due" => DateTime::from_timestamp(event.created, 0),
            _ => None,
        };
        let state = event.state.clone();
        let subscription = Subscription {
            subscription_id: state.id,
            workspace_id: workspace.map(str::to_owned).or(stored.workspace_id),
            customer_id: state.customer,
            event_rank: status_rank(&state.status),
            status: state.status,
            price_id: state.price_id,
            current_period_start: state.period.map(|period| period.start),
            current_period_end: state.period.map(|period| period.end),
            billing_cycle_anchor: state.anchor,
            cancel_at_period_end: state.cancel_at_period_end,
            event_created: event.created,
            event_id: event.event_id.clone(),
            past_due_since,
            updated_at: now,
        };
        store::subscriptions::save_subscription(txn, subscription.clone()).await?;
        Ok(Some(subscription))
    }

    /// Brings the locked wallet to what the subscription's state says.
    async fn follow(
        &self,
        locked: &mut Locked,
        state: &Subscription,
        now: DateTime<Utc>,
    ) -> AppResult<SubscriptionOutcome> {
        let standing = standing(&state.status, state.past_due_since, self.subscription_grace, now);
        let head = locked.wallet.head();
        let followed = head.subscription_id.as_deref();
        let workspace = head.workspace_id.clone();
        let grace_ends_at = match standing {
            Standing::NotStarted => return Ok(SubscriptionOutcome::Applied),
            Standing::Ended => {
                if followed == Some(state.subscription_id.as_str()) {
                    locked.wallet.end_paid_plan();
                }
                return Ok(SubscriptionOutcome::Applied);
            }
            Standing::Good => None,
            Standing::Grace(until) => Some(until),
        };
        if let Some(other) = followed.filter(|other| *other != state.subscription_id) {
            tracing::warn!(
                workspace,
                replaced = other,
                subscription_id = state.subscription_id,
                "a second subscription in good standing takes over the wallet"
            );
        }
        let plan = match &state.price_id {
            Some(price) => store::subscriptions::plan_of_price(&locked.txn, price)
                .await?
                .and_then(|code| code.parse::<PlanCode>().ok()),
            None => None,
        };
        let catalogue = match plan {
            Some(plan) => store::catalogue::plan(&locked.txn, plan.as_str())
                .await?
                .and_then(|row| row.monthly_credits.map(|credits| (plan, credits))),
            None => None,
        };
        let period = state
            .current_period_start
            .zip(state.current_period_end)
            .map(|(start, end)| Period { start, end })
            .filter(|period| period.start < period.end);
        if period.is_some_and(|period| period.end <= now) {
            // A period already over (a backlog delivered late): its
            // allocation would expire at once; the next event, or the
            // scheduler, brings the wallet to the current one.
            return Ok(SubscriptionOutcome::Applied);
        }
        let (Some((plan, allocation)), Some(period)) = (catalogue, period) else {
            let event = outbox::payment_needs_review(
                &workspace,
                &state.subscription_id,
                "subscription_price_not_mapped",
                json!({ "subscriptionId": state.subscription_id, "priceId": state.price_id }),
            );
            tracing::error!(
                workspace,
                subscription_id = state.subscription_id,
                price_id = state.price_id,
                "a subscription's price maps to no plan (STRIPE_PRICE_PLANS), or it has no period; the wallet is unchanged"
            );
            locked.wallet.tell(event);
            return Ok(SubscriptionOutcome::NeedsReview);
        };
        let used_in_period = if head.period_start.is_none() {
            store::subscriptions::allocation_used(&locked.txn, head.id, period.start).await?
        } else {
            0
        };
        let paid = PaidPlan {
            subscription_id: state.subscription_id.clone(),
            plan,
            allocation,
            period,
            anchor: state.billing_cycle_anchor.unwrap_or(period.start),
            grace_ends_at,
            used_in_period,
        };
        locked.wallet.follow_subscription(&paid, "stripe", now)?;
        Ok(SubscriptionOutcome::Applied)
    }
}
