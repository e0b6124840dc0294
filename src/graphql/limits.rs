//! Size limits checked right after parsing, before validation: a document
//! with too many fields or aliases is refused before any rule runs over it
//! (validation's overlapping-fields rule is quadratic in the fields of one
//! selection set, so 10,000 aliases would cost seconds). Depth and
//! complexity are async-graphql's own limits, set in `build_schema`.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

/// Most aliased fields in one document.
pub const QUERY_ALIASES_MAX: usize = 30;
/// Most fields in one document (fragments counted once each).
pub const QUERY_FIELDS_MAX: usize = 500;

/// The extension factory; without `introspection`, a document that asks
/// for `__schema` or `__type` is refused with a clear error (async-graphql
/// alone would answer `null`).
#[derive(Clone, Copy)]
pub struct QueryLimits {
    pub introspection: bool,
}

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

#[derive(Default)]
struct Count {
    fields: usize,
    aliases: usize,
    introspection: bool,
}

impl Count {
    fn selection_set(&mut self, set: &SelectionSet) {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    self.fields += 1;
                    if matches!(field.node.name.node.as_str(), "__schema" | "__type") {
                        self.introspection = true;
                    }
                    if field.node.alias.is_some() {
                        self.aliases += 1;
                    }
                    self.selection_set(&field.node.selection_set.node);
                }
                Selection::InlineFragment(fragment) => {
                    self.selection_set(&fragment.node.selection_set.node);
                }
                Selection::FragmentSpread(_) => {}
            }
        }
    }

    fn document(document: &ExecutableDocument) -> Self {
        let mut count = Self::default();
        for (_, operation) in document.operations.iter() {
            count.selection_set(&operation.node.selection_set.node);
        }
        for fragment in document.fragments.values() {
            count.selection_set(&fragment.node.selection_set.node);
        }
        count
    }
}

fn refused(message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", "BAD_USER_INPUT");
    error
}

#[async_graphql::async_trait::async_trait]
impl Extension for QueryLimits {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let count = Count::document(&document);
        if count.introspection && !self.introspection {
            return Err(refused(
                "introspection is switched off on this server (GRAPHQL_INTROSPECTION=off); the schema is published as schema.graphql".to_owned(),
            ));
        }
        if count.aliases > QUERY_ALIASES_MAX {
            return Err(refused(format!(
                "the query has {} aliases; at most {QUERY_ALIASES_MAX} are accepted",
                count.aliases
            )));
        }
        if count.fields > QUERY_FIELDS_MAX {
            return Err(refused(format!(
                "the query has {} fields; at most {QUERY_FIELDS_MAX} are accepted",
                count.fields
            )));
        }
        Ok(document)
    }
}
