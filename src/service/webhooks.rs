//! Webhook endpoints, their deliveries, and the events no single write
//! causes: a trial ending and a runway too short (`docs/design/webhooks.md`).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::Ledger;
use crate::auth::WalletScope;
use crate::error::{AppError, AppResult};
use crate::store;
use crate::webhooks::{signing, target};
use domain::ids::WorkspaceId;
use domain::outbox::{self, DeliveryView, EndpointView, EventType, NewEvent};

/// Longest endpoint description.
pub const DESCRIPTION_LENGTH_MAX: usize = 500;
/// Most endpoints one workspace may have.
pub const ENDPOINTS_PER_WORKSPACE_MAX: u64 = 20;
/// Most endpoints for every workspace (operators').
pub const GLOBAL_ENDPOINTS_MAX: u64 = 20;
/// Most redeliveries one endpoint is asked for within an hour.
pub const REDELIVERIES_PER_HOUR_MAX: u64 = 100;
/// Most deliveries one page lists.
pub const DELIVERIES_PAGE_MAX: u64 = 100;
/// How long before a trial ends `credits.trial_ending` is sent.
pub const TRIAL_ENDING_NOTICE: Duration = Duration::hours(48);
/// How often one wallet's runway is examined at most.
const RUNWAY_CHECK_EVERY: Duration = Duration::hours(1);
/// How long events and their settled deliveries are kept.
pub const OUTBOX_RETENTION: Duration = Duration::days(30);
/// How often the outbox is pruned at most (per instance).
const PRUNE_EVERY: Duration = Duration::hours(1);

/// Whose endpoint: one workspace's, or every workspace's (operators).
#[derive(Debug, Clone)]
pub enum EndpointOwner {
    /// One workspace, by the caller's capability.
    Workspace(WalletScope),
    /// Every workspace; the caller is an operator.
    Everyone,
}

impl EndpointOwner {
    fn workspace_id(&self) -> Option<&str> {
        match self {
            EndpointOwner::Workspace(scope) => Some(scope.workspace_id().as_str()),
            EndpointOwner::Everyone => None,
        }
    }
}

/// A new endpoint as asked for.
#[derive(Debug, Clone)]
pub struct EndpointRequest {
    /// Where to post.
    pub url: String,
    /// The types to send; empty: all.
    pub event_types: Vec<EventType>,
    /// A note.
    pub description: String,
}

/// What the notices sweep remembers between runs.
#[derive(Debug, Default)]
pub struct NoticeCursor {
    /// Ledger rows up to this id were examined for spends.
    last_ledger_id: Option<i64>,
    /// When each wallet's runway was last examined.
    examined: HashMap<String, DateTime<Utc>>,
    /// When the outbox was last pruned.
    pruned_at: Option<DateTime<Utc>>,
}

impl Ledger {
    /// Creates an endpoint; its secret is answered here and by a rotation only.
    pub async fn create_webhook_endpoint(
        &self,
        owner: &EndpointOwner,
        request: EndpointRequest,
    ) -> AppResult<EndpointView> {
        if request.description.chars().count() > DESCRIPTION_LENGTH_MAX
            || domain::ids::has_control_or_bidi(&request.description)
        {
            return Err(AppError::invalid(
                "description",
                "must be at most 500 characters, without control or bidirectional formatting characters",
            ));
        }
        let url = target::check_url(&request.url, self.webhooks.allow_private).await?;
        if let Some(workspace_id) = owner.workspace_id() {
            store::wallets::find(&self.db, workspace_id)
                .await?
                .ok_or(AppError::NotFound("workspace"))?;
        }
        // Counted and created under the owner's lock: exact under concurrency.
        let txn = store::begin_write(&self.db).await?;
        store::endpoints::lock_endpoints_of(&txn, owner.workspace_id()).await?;
        let existing = store::endpoints::count_endpoints(&txn, owner.workspace_id()).await?;
        let (limit, whose) = match owner.workspace_id() {
            Some(_) => (ENDPOINTS_PER_WORKSPACE_MAX, "a workspace"),
            None => (GLOBAL_ENDPOINTS_MAX, "every workspace together"),
        };
        if existing >= limit {
            return Err(AppError::limit(
                format!("{whose} may have at most {limit} webhook endpoints; delete one first"),
                None,
            ));
        }
        let secret = signing::new_secret().map_err(AppError::Internal)?;
        let mut types: Vec<&str> = request
            .event_types
            .iter()
            .map(|event_type| event_type.as_str())
            .collect();
        types.sort_unstable();
        types.dedup();
        let endpoint = store::endpoints::create_endpoint(
            &txn,
            store::endpoints::NewEndpoint {
                workspace_id: owner.workspace_id(),
                url: url.as_str(),
                event_types: types.join(" "),
                description: &request.description,
                secret: &secret,
            },
            self.now(),
        )
        .await?;
        store::commit(txn).await?;
        Ok(endpoint)
    }

    /// The endpoint `id` if `owner` may see it; another workspace's is
    /// NOT_FOUND, as if it did not exist.
    pub async fn webhook_endpoint(&self, owner: &EndpointOwner, id: i64) -> AppResult<EndpointView> {
        let endpoint = store::endpoints::endpoint(&self.db, id)
            .await?
            .ok_or(AppError::NotFound("webhook endpoint"))?;
        let visible = match owner {
            EndpointOwner::Everyone => true,
            EndpointOwner::Workspace(scope) => {
                endpoint.workspace_id.as_deref() == Some(scope.workspace_id().as_str())
            }
        };
        if !visible {
            return Err(AppError::NotFound("webhook endpoint"));
        }
        Ok(endpoint)
    }

    /// A new secret for an endpoint, answered once; the old one stops at once.
    pub async fn rotate_webhook_secret(&self, owner: &EndpointOwner, id: i64) -> AppResult<EndpointView> {
        let mut endpoint = self.webhook_endpoint(owner, id).await?;
        let secret = signing::new_secret().map_err(AppError::Internal)?;
        store::endpoints::set_secret(&self.db, id, &secret).await?;
        endpoint.secret = secret;
        Ok(endpoint)
    }

    /// Deletes an endpoint and its delivery history.
    pub async fn delete_webhook_endpoint(&self, owner: &EndpointOwner, id: i64) -> AppResult<()> {
        self.webhook_endpoint(owner, id).await?;
        let txn = store::begin_write(&self.db).await?;
        store::endpoints::delete_endpoint(&txn, id).await?;
        store::commit(txn).await.map_err(AppError::from)
    }

    /// The workspace's endpoints (an operator's list without a workspace:
    /// the endpoints for every workspace).
    pub async fn webhook_endpoints(&self, owner: &EndpointOwner) -> AppResult<Vec<EndpointView>> {
        let workspace_id = owner.workspace_id();
        store::endpoints::endpoints(&self.db, workspace_id, workspace_id.is_none())
            .await
            .map_err(AppError::from)
    }

    /// A page of an endpoint's deliveries, newest first, with each event's type.
    pub async fn webhook_deliveries(
        &self,
        owner: &EndpointOwner,
        endpoint_id: i64,
        first: u64,
        after: Option<i64>,
    ) -> AppResult<Vec<DeliveryView>> {
        self.webhook_endpoint(owner, endpoint_id).await?;
        store::deliveries::deliveries(&self.db, endpoint_id, after, first.min(DELIVERIES_PAGE_MAX))
            .await
            .map_err(AppError::from)
    }

    /// Sends a stored event to an endpoint again, as a new delivery due now:
    /// only an event the endpoint could have received (its workspace's, of
    /// a type it subscribes to), at most [`REDELIVERIES_PER_HOUR_MAX`] an
    /// hour per endpoint.
    pub async fn redeliver_webhook_event(
        &self,
        owner: &EndpointOwner,
        endpoint_id: i64,
        event_id: i64,
    ) -> AppResult<DeliveryView> {
        let endpoint = self.webhook_endpoint(owner, endpoint_id).await?;
        let (workspace, event_type) = store::outbox::event_owner(&self.db, event_id)
            .await?
            .ok_or(AppError::NotFound("event"))?;
        if endpoint
            .workspace_id
            .as_ref()
            .is_some_and(|own| *own != workspace)
        {
            return Err(AppError::NotFound("event"));
        }
        if !endpoint.event_types.is_empty() && !endpoint.event_types.contains(&event_type) {
            return Err(AppError::invalid(
                "eventId",
                format!("is a {event_type} event, which this endpoint does not subscribe to"),
            ));
        }
        let now = crate::clock::wall();
        let txn = store::begin_write(&self.db).await?;
        store::endpoints::lock_endpoints_of(&txn, endpoint.workspace_id.as_deref()).await?;
        let recent = store::deliveries::redeliveries_since(
            &txn,
            endpoint_id,
            now - Duration::hours(1),
            REDELIVERIES_PER_HOUR_MAX,
        )
        .await?;
        if recent >= REDELIVERIES_PER_HOUR_MAX {
            return Err(AppError::limit(
                format!("an endpoint is redelivered at most {REDELIVERIES_PER_HOUR_MAX} events an hour"),
                Some(60),
            ));
        }
        let delivery = store::deliveries::redeliver(&txn, endpoint_id, event_id, now)
            .await?
            .ok_or(AppError::NotFound("event"))?;
        store::commit(txn).await?;
        Ok(delivery)
    }

    /// Removes events older than [`OUTBOX_RETENTION`] whose deliveries are
    /// all settled, with those deliveries, at most once an hour; returns how
    /// many events were removed. Their once-keys stay (`outbox_once`), so an
    /// occasion is never told twice, however long its period.
    pub async fn prune_outbox(&self, cursor: &mut NoticeCursor, now: DateTime<Utc>) -> AppResult<u64> {
        if cursor.pruned_at.is_some_and(|at| at + PRUNE_EVERY > now) {
            return Ok(0);
        }
        let txn = store::begin_write(&self.db).await?;
        let removed = store::outbox::prune(&txn, now - OUTBOX_RETENTION).await?;
        store::commit(txn).await?;
        cursor.pruned_at = Some(now);
        Ok(removed)
    }

    /// A stored workspace's wallet, read as the system.
    async fn system_view(&self, workspace_id: &str) -> AppResult<(WalletScope, super::WalletView)> {
        let scope = WalletScope::system(WorkspaceId::parse("workspaceId", workspace_id)?);
        let view = self.wallet(&scope).await?;
        Ok((scope, view))
    }

    /// Writes the events no single ledger write causes, each once per
    /// occasion: `credits.trial_ending` for trials ending within 48 hours,
    /// and `credits.runway_low` for wallets that spent since the last run
    /// and, at their burn, run out before their next reset. Returns how
    /// many events were written.
    pub async fn send_notices(&self, cursor: &mut NoticeCursor, now: DateTime<Utc>) -> AppResult<usize> {
        let mut events: Vec<NewEvent> = Vec::new();
        for (workspace_id, ends_at) in
            store::notices::trials_ending(&self.db, now, now + TRIAL_ENDING_NOTICE).await?
        {
            let (_, view) = self.system_view(&workspace_id).await?;
            events.push(outbox::trial_ending(&workspace_id, ends_at, &view.balance));
        }
        let after = match cursor.last_ledger_id {
            Some(id) => id,
            None => store::notices::last_ledger_id(&self.db).await?,
        };
        let (spenders, last) = store::notices::wallets_spending_since(&self.db, after).await?;
        let due: Vec<String> = {
            cursor.last_ledger_id = Some(last);
            cursor.examined.retain(|_, at| *at + RUNWAY_CHECK_EVERY > now);
            spenders
                .into_iter()
                .filter(|workspace_id| match cursor.examined.entry(workspace_id.clone()) {
                    std::collections::hash_map::Entry::Occupied(_) => false,
                    std::collections::hash_map::Entry::Vacant(vacant) => {
                        vacant.insert(now);
                        true
                    }
                })
                .collect()
        };
        for workspace_id in due {
            let (scope, view) = self.system_view(&workspace_id).await?;
            let Some(period) = view.current_period else {
                continue;
            };
            // Told already this period: no need to forecast.
            if store::outbox::once_key_exists(&self.db, &outbox::runway_low_key(&workspace_id, period.end))
                .await?
            {
                continue;
            }
            let forecast = self.forecast(&scope, &view).await?;
            if let (Some(false), Some(depletes_at)) = (forecast.covers_until_reset, forecast.depletes_at) {
                events.push(outbox::runway_low(
                    &workspace_id,
                    period.end,
                    depletes_at,
                    forecast.daily_burn,
                    &view.balance,
                ));
            }
        }
        if events.is_empty() {
            return Ok(0);
        }
        let txn = store::begin_write(&self.db).await?;
        let written = store::apply::apply_events(&txn, &events, now).await?;
        store::commit(txn).await?;
        Ok(written)
    }
}
