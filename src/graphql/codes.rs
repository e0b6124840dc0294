//! Every error a client sees carries `extensions.code`.
//!
//! Errors raised by this service's resolvers already have one (see
//! `error.rs`). Errors raised by async-graphql itself (a query that does not
//! parse, fails validation, names an unknown enum value, or passes an `Int`
//! out of range) are all the client's doing, so they get BAD_USER_INPUT.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest, NextSubscribe};
use async_graphql::futures_util::StreamExt;
use async_graphql::futures_util::stream::BoxStream;
use async_graphql::{Response, ServerError};

use crate::metrics::Metrics;

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
    fn label(&self, errors: &mut [ServerError]) {
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
        let mut response = next.run(ctx).await;
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
        next.run(ctx, stream)
            .map(move |mut response| {
                this.label(&mut response.errors);
                response
            })
            .boxed()
    }
}
