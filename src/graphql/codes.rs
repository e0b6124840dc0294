//! Every error a client sees carries `extensions.code`.
//!
//! Errors raised by this service's resolvers already have one (see
//! `error.rs`). Errors raised by async-graphql itself (a query that does not
//! parse, fails validation, names an unknown enum value, or passes an `Int`
//! out of range) are all the client's doing, so they get BAD_USER_INPUT.
//!
//! Two more guarantees live here, as the outermost extension: a panic
//! anywhere in a request (parsing, validation, a resolver) becomes one
//! INTERNAL_SERVER_ERROR answer instead of a dropped connection, and an
//! answer carries at most [`QUERY_ERRORS_MAX`] errors.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest, NextSubscribe};
use async_graphql::futures_util::stream::BoxStream;
use async_graphql::futures_util::{FutureExt, StreamExt};
use async_graphql::{Response, ServerError};

use super::limits::QUERY_ERRORS_MAX;
use crate::metrics::Metrics;

/// The answer to a request that panicked; the panic is logged, not shown.
fn panicked(panic: &(dyn Any + Send)) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    tracing::error!(panic = message, "a GraphQL request panicked");
    let mut error = ServerError::new("internal error", None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", "INTERNAL_SERVER_ERROR");
    Response::from_errors(vec![error])
}

/// Keeps the first [`QUERY_ERRORS_MAX`] errors and says how many were left.
fn truncate(errors: &mut Vec<ServerError>) {
    if errors.len() > QUERY_ERRORS_MAX {
        let left = errors.len() - QUERY_ERRORS_MAX;
        errors.truncate(QUERY_ERRORS_MAX);
        errors.push(ServerError::new(
            format!("{left} more errors were left out; at most {QUERY_ERRORS_MAX} are listed"),
            None,
        ));
    }
}

/// The extension factory; errors are counted in `metrics` by code.
#[derive(Clone)]
pub struct ErrorCodes {
    pub metrics: Option<Metrics>,
}

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

impl ErrorCodes {
    fn label(&self, errors: &mut Vec<ServerError>) {
        truncate(errors);
        for error in errors {
            let extensions = error.extensions.get_or_insert_with(Default::default);
            if extensions.get("code").is_none() {
                extensions.set("code", "BAD_USER_INPUT");
            }
            if let (Some(metrics), Some(async_graphql::Value::String(code))) =
                (&self.metrics, extensions.get("code"))
            {
                metrics.error(code);
            }
        }
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = AssertUnwindSafe(next.run(ctx))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| panicked(&*panic));
        self.label(&mut response.errors);
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let this = self.clone();
        // A panic ends the stream after its one error answer.
        AssertUnwindSafe(next.run(ctx, stream))
            .catch_unwind()
            .map(move |response| {
                let mut response = response.unwrap_or_else(|panic| panicked(&*panic));
                this.label(&mut response.errors);
                response
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::futures_util::{Stream, stream};
    use async_graphql::{EmptyMutation, Object, Schema, Subscription};

    use super::*;

    struct Query;

    #[Object]
    impl Query {
        async fn fine(&self) -> i32 {
            1
        }

        async fn broken(&self, at: Option<i32>) -> i32 {
            // Panics for any argument: an out-of-bounds index, as a bug would.
            let values = [1];
            values[usize::try_from(at.unwrap_or(5)).unwrap_or(5)]
        }
    }

    struct Subscriptions;

    #[Subscription]
    impl Subscriptions {
        async fn ticks(&self) -> impl Stream<Item = i32> {
            stream::iter([1, 2, 3]).map(|tick| if tick == 2 { panic!("a stream bug") } else { tick })
        }
    }

    fn schema() -> Schema<Query, EmptyMutation, Subscriptions> {
        Schema::build(Query, EmptyMutation, Subscriptions)
            .extension(ErrorCodes { metrics: None })
            .finish()
    }

    fn code(response: &Response) -> Option<String> {
        let extensions = response.errors.first()?.extensions.as_ref()?;
        match extensions.get("code") {
            Some(async_graphql::Value::String(code)) => Some(code.clone()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_panicking_resolver_is_an_internal_error_answer() {
        let response = schema().execute("{ fine broken }").await;
        assert_eq!(code(&response).as_deref(), Some("INTERNAL_SERVER_ERROR"));
        assert_eq!(response.errors[0].message, "internal error");
        // The schema goes on answering.
        let response = schema().execute("{ fine }").await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
    }

    #[tokio::test]
    async fn a_panicking_subscription_ends_with_an_internal_error() {
        let responses: Vec<Response> = schema().execute_stream("subscription { ticks }").collect().await;
        assert_eq!(responses.len(), 2, "{responses:?}");
        assert!(responses[0].errors.is_empty());
        assert_eq!(code(&responses[1]).as_deref(), Some("INTERNAL_SERVER_ERROR"));
    }

    #[tokio::test]
    async fn errors_are_capped() {
        let fields: String = (0..QUERY_ERRORS_MAX + 5).map(|n| format!("f{n} ")).collect();
        let response = schema().execute(format!("{{ {fields} }}")).await;
        assert_eq!(response.errors.len(), QUERY_ERRORS_MAX + 1);
        assert_eq!(
            response.errors[QUERY_ERRORS_MAX].message,
            format!("5 more errors were left out; at most {QUERY_ERRORS_MAX} are listed")
        );
    }
}
