//! The GraphQL contract: schema roots, public types, and the boundary
//! between a request and the service.
//!
//! Resolvers stay short: get the [`Caller`], parse input into domain types,
//! ask `auth` for a capability, call `service`, convert the answer.

mod codes;
mod connection;
mod documents;
pub(crate) mod errors;
mod holds;
mod limits;
mod live;
mod mutation;
mod query;
mod start;
mod subscription;
mod trusted;
mod types;
mod webhooks;

use async_graphql::{Context, ID, Schema};

use crate::auth::{Caller, Operation, WalletScope, authorize};
use crate::error::AppError;
use crate::service::{Ledger, SpendRequest};
use domain::budget::check_agent_id;
use domain::catalogue::Role;
use domain::ids::{IdempotencyKey, WorkspaceId, parse_reference};

pub use documents::parse as parse_document;
pub use limits::{QUERY_ALIASES_MAX, QUERY_ERRORS_MAX, QUERY_FIELDS_MAX, QUERY_NESTING_MAX};
pub use live::Live;
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::{SUBSCRIPTIONS_PER_CONNECTION_MAX, SubscriptionRoot, SubscriptionSlots};
pub use trusted::{NotAdmitted, TrustedDocuments};

/// The served schema.
pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Deepest query accepted.
pub const QUERY_DEPTH_MAX: usize = 16;
/// Most complex query accepted (fields, weighted by page sizes).
pub const QUERY_COMPLEXITY_MAX: usize = 5_000;

/// How the request authenticated, attached to each request's data by the
/// HTTP or WebSocket layer.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// No token was presented.
    Anonymous,
    /// A valid token.
    Caller(Caller),
    /// A token was presented and refused, for this reason.
    Refused(&'static str),
}

/// Builds the schema. Without a `ledger` (as for `sdl`), it can print its
/// SDL but not execute. Without `introspection`, `__schema` and `__type`
/// are refused (`__typename` still answers).
pub fn build_schema(ledger: Option<Ledger>, introspection: bool) -> AppSchema {
    let mut builder = Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot)
        .limit_depth(QUERY_DEPTH_MAX)
        .limit_complexity(QUERY_COMPLEXITY_MAX)
        // Outermost: every error is labelled and every panic caught.
        .extension(codes::ErrorCodes {
            metrics: ledger.as_ref().map(|ledger| ledger.metrics().clone()),
        })
        // Every document is checked before async-graphql parses it.
        .extension(documents::Documents::new(introspection));
    if let Some(ledger) = ledger {
        builder = builder.data(ledger);
    }
    if !introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// The schema's SDL, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    build_schema(None, true).sdl()
}

/// The service, from the schema's data.
fn ledger<'a>(ctx: &Context<'a>) -> Result<&'a Ledger, AppError> {
    ctx.data::<Ledger>()
        .map_err(|_| AppError::Internal(anyhow::anyhow!("schema built without a ledger")))
}

/// The verified caller, or UNAUTHENTICATED.
fn caller<'a>(ctx: &Context<'a>) -> Result<&'a Caller, AppError> {
    match ctx.data_opt::<Authentication>() {
        Some(Authentication::Caller(caller)) => Ok(caller),
        Some(Authentication::Refused(reason)) => Err(AppError::Unauthenticated(reason)),
        Some(Authentication::Anonymous) | None => {
            Err(AppError::Unauthenticated("no bearer token was presented"))
        }
    }
}

/// The capability for `operation` on `workspace_id` (default: the caller's).
fn scope(
    ctx: &Context<'_>,
    workspace_id: Option<&async_graphql::ID>,
    operation: Operation,
) -> Result<WalletScope, AppError> {
    let caller = caller(ctx)?;
    let requested = workspace_id
        .map(|raw| WorkspaceId::parse("workspaceId", raw))
        .transpose()?;
    authorize(caller, requested, operation)
}

/// The scope and request of a spend or a hold: the caller may spend the
/// action in the workspace, and an agent spends for itself
/// (`docs/design/budgets.md`). `key`: the key's field name and value.
fn spender(
    ctx: &Context<'_>,
    workspace_id: Option<&ID>,
    action: domain::catalogue::Action,
    key: (&'static str, &str),
    reference: Option<&str>,
    agent_id: Option<ID>,
) -> Result<(WalletScope, SpendRequest), AppError> {
    let mut request = SpendRequest {
        action,
        idempotency_key: IdempotencyKey::parse(key.0, key.1)?,
        reference: parse_reference("reference", reference)?,
        agent_id: agent_id.map(|agent| agent.0),
    };
    if let Some(agent) = &request.agent_id {
        check_agent_id(agent)?;
    }
    let scope = scope(ctx, workspace_id, Operation::Spend(request.action))?;
    let caller = caller(ctx)?;
    if caller.role == Role::Agent {
        match &request.agent_id {
            None => request.agent_id = Some(caller.subject.clone()),
            Some(agent) if *agent == caller.subject => {}
            Some(_) => {
                return Err(AppError::Forbidden(
                    "spend for another agent (an agent token spends for its own sub)",
                ));
            }
        }
    }
    Ok((scope, request))
}
