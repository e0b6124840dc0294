//! Live subscriptions without an executor per subscriber.
//!
//! async-graphql's own subscription path keeps, for every subscriber, an
//! execution (the parsed document, its environment and a boxed resolver
//! stream) alive for the subscription's whole life: about 11 KiB each, more
//! than half of an idle subscriber's budget. Here a subscription runs in two
//! phases instead:
//! - **start**: the request goes through the served schema once, as any
//!   subscription would (parsing, limits, validation, the resolver's
//!   authorization and reads). The resolver finds a [`StartSlot`] in the
//!   request's data, leaves its balance stream there and returns an empty
//!   stream, so the execution ends and is freed. Errors come out of this
//!   phase exactly as async-graphql reports them.
//! - **live**: the balance stream's items are rendered through a second,
//!   private schema whose query root has the same `balanceChanged` field,
//!   answering with the item at hand: the subscriber's own document (with
//!   its aliases, fragments, directives and variables), turned into a query,
//!   gives each event's payload. A rendering is shared by every subscriber
//!   with the same document and variables ([`Renderer`]), so a change
//!   watched by a hundred subscribers is rendered once.
//!
//! What stays per subscriber is the balance stream's state (a cursor and a
//! bus receiver) and a handle on its shared renderer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use async_graphql::Name;
use async_graphql::parser::Positioned;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::{
    Context, Data, EmptyMutation, EmptySubscription, ID, Object, Request, Response, Schema, Variables,
};
use futures_util::stream::{self, BoxStream};
use futures_util::{FutureExt, StreamExt};

use super::AppSchema;
use super::codes::ErrorCodes;
use super::start::StartSlot;
use super::subscription::BalanceChange;
use crate::error::{AppError, AppResult};
use crate::graphql::errors::IntoGraphql;
use crate::metrics::Metrics;
use crate::service::BalanceChange as Change;

/// Renderings kept per document, so the subscribers of one wallet share them.
const RENDERINGS_KEPT: usize = 16;
/// Operations in their start phase at once, per instance.
pub const STARTS_AT_ONCE: usize = 32;
/// Size of the renderer map from which unused renderers are swept.
const RENDERERS_SWEEP_AT: usize = 256;

/// What the event schema's resolver answers with (request data).
enum Phase {
    Event(Change),
    Failed(async_graphql::Error),
}

/// The query root of the event schema: the subscription root's field,
/// answering with the event at hand. Named like the subscription root, so
/// fragments `on SubscriptionRoot` keep their meaning.
struct EventRoot;

#[Object(name = "SubscriptionRoot")]
impl EventRoot {
    /// The event being rendered.
    async fn balance_changed(
        &self,
        ctx: &Context<'_>,
        workspace_id: Option<ID>,
        after_sequence: Option<i32>,
    ) -> async_graphql::Result<BalanceChange> {
        // The arguments were checked in the start phase.
        let _ = (workspace_id, after_sequence);
        match ctx.data::<Phase>()? {
            Phase::Event(change) => Ok(change.clone().into()),
            Phase::Failed(error) => Err(error.clone()),
        }
    }
}

type EventSchema = Schema<EventRoot, EmptyMutation, EmptySubscription>;

/// Identifies a document and its variables: subscribers with the same key
/// get the same payload for the same change.
#[derive(Clone, PartialEq, Eq, Hash)]
struct RenderKey {
    query: String,
    operation_name: Option<String>,
    variables: String,
}

/// Renders one subscription document's events, for all its subscribers.
struct Renderer {
    schema: EventSchema,
    document: ExecutableDocument,
    variables: Variables,
    recent: Mutex<VecDeque<(Change, Arc<str>)>>,
}

impl Renderer {
    /// The payload (a GraphQL response, as JSON) of one stream item.
    async fn render(self: Arc<Self>, item: AppResult<Change>) -> Arc<str> {
        let change = match item {
            Ok(change) => change,
            Err(error) => return self.execute(Phase::Failed(error.into_graphql())).await,
        };
        if let Some(payload) = self
            .recent()
            .iter()
            .find(|(seen, _)| *seen == change)
            .map(|(_, p)| p.clone())
        {
            return payload;
        }
        let payload = self.execute(Phase::Event(change.clone())).await;
        let mut recent = self.recent();
        if recent.len() == RENDERINGS_KEPT {
            recent.pop_front();
        }
        recent.push_back((change, payload.clone()));
        payload
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, VecDeque<(Change, Arc<str>)>> {
        self.recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn execute(&self, phase: Phase) -> Arc<str> {
        let mut request = Request::new(String::new())
            .variables(self.variables.clone())
            .data(phase);
        request.set_parsed_query(self.document.clone());
        payload(&self.schema.execute(request).await)
    }
}

/// A response as the JSON of a `next` payload.
fn payload(response: &Response) -> Arc<str> {
    serde_json::to_string(response)
        .unwrap_or_else(|_| r#"{"data":null,"errors":[{"message":"the event could not be encoded"}]}"#.into())
        .into()
}

/// Runs subscriptions (and the odd query or mutation sent over a
/// WebSocket) for the WebSocket layer. Cheap to clone.
#[derive(Clone)]
pub struct Live {
    schema: AppSchema,
    events: EventSchema,
    renderers: Arc<Mutex<HashMap<RenderKey, Weak<Renderer>>>>,
    starting: Arc<tokio::sync::Semaphore>,
}

impl Live {
    /// Serves `schema`'s subscriptions; errors are counted in `metrics`.
    pub fn new(schema: AppSchema, metrics: Option<Metrics>) -> Self {
        let events = Schema::build(EventRoot, EmptyMutation, EmptySubscription)
            .extension(ErrorCodes { metrics })
            .disable_introspection()
            .finish();
        Self {
            schema,
            events,
            renderers: Arc::default(),
            starting: Arc::new(tokio::sync::Semaphore::new(STARTS_AT_ONCE)),
        }
    }

    /// Executes one `subscribe` request with the connection's data: the
    /// payloads of its `next` messages, in order; the stream ends when the
    /// operation is complete.
    pub fn execute(&self, request: Request, connection: Arc<Data>) -> BoxStream<'static, Arc<str>> {
        let key = RenderKey {
            query: request.query.clone(),
            operation_name: request.operation_name.clone(),
            variables: serde_json::to_string(&request.variables).unwrap_or_default(),
        };
        let slot = StartSlot::default();
        let schema = self.schema.clone();
        let starting = self.starting.clone();
        let start_slot = slot.clone();
        // The start phase runs whole, with a permit: a reconnect storm
        // executes a bounded number of starts at once.
        let start = async move {
            let _permit = starting.acquire_owned().await;
            schema
                .execute_stream_with_session_data(request.data(start_slot), connection)
                .map(|response| payload(&response))
                .collect::<Vec<_>>()
                .await
        };
        let live = self.clone();
        let events = async move {
            let Some(changes) = slot.take() else {
                return stream::empty().boxed();
            };
            match live.renderer(key) {
                Ok(renderer) => changes.then(move |item| renderer.clone().render(item)).boxed(),
                Err(error) => {
                    let error = error.into_graphql().into_server_error(Default::default());
                    stream::once(async move { payload(&Response::from_errors(vec![error])) }).boxed()
                }
            }
        };
        start
            .into_stream()
            .flat_map(stream::iter)
            .chain(events.into_stream().flatten())
            .boxed()
    }

    /// The shared renderer of `key`'s document, made on first use.
    fn renderer(&self, key: RenderKey) -> AppResult<Arc<Renderer>> {
        let mut renderers = self
            .renderers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(renderer) = renderers.get(&key).and_then(Weak::upgrade) {
            return Ok(renderer);
        }
        if renderers.len() >= RENDERERS_SWEEP_AT && renderers.len().is_power_of_two() {
            renderers.retain(|_, renderer| renderer.strong_count() > 0);
        }
        let internal = |what: &str| AppError::Internal(anyhow::anyhow!("subscription document: {what}"));
        let mut document =
            async_graphql::parser::parse_query(&key.query).map_err(|_| internal("no longer parses"))?;
        // The start phase validated the document and chose its operation;
        // keep that one only, as a query of the event schema.
        let mut operation = match document.operations {
            DocumentOperations::Single(operation) => operation,
            DocumentOperations::Multiple(mut operations) => key
                .operation_name
                .as_deref()
                .and_then(|name| operations.remove(name))
                .or_else(|| operations.into_values().next())
                .ok_or_else(|| internal("no operation"))?,
        };
        operation.node.ty = OperationType::Query;
        let used = used_fragments(&operation.node.selection_set.node, &document.fragments);
        document.fragments.retain(|name, _| used.contains(name));
        document.operations = DocumentOperations::Single(operation);
        let renderer = Arc::new(Renderer {
            schema: self.events.clone(),
            document,
            variables: serde_json::from_str(&key.variables).unwrap_or_default(),
            recent: Mutex::default(),
        });
        renderers.insert(key, Arc::downgrade(&renderer));
        Ok(renderer)
    }
}

/// The fragments a selection set spreads, directly or through other fragments.
fn used_fragments(
    selection_set: &SelectionSet,
    fragments: &HashMap<Name, Positioned<FragmentDefinition>>,
) -> HashSet<Name> {
    let mut used = HashSet::new();
    let mut pending = vec![selection_set];
    while let Some(set) = pending.pop() {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => pending.push(&field.node.selection_set.node),
                Selection::InlineFragment(inline) => pending.push(&inline.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if used.insert(name.clone())
                        && let Some(fragment) = fragments.get(name)
                    {
                        pending.push(&fragment.node.selection_set.node);
                    }
                }
            }
        }
    }
    used
}
