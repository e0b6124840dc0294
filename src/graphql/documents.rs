//! Parsed documents, kept by their text.
//!
//! Clients send the same few documents over and over (a worker's
//! `spendCredit`, a dashboard's balance query); parsing one with
//! async-graphql's pest grammar is the largest single cost of a small
//! request. This extension, innermost of the parse hooks, answers a text
//! it has parsed before with a copy of its document; the limits of
//! `limits.rs` and every validation rule still run on each request.
//! Only documents that parsed are kept, only short ones, and at most
//! [`DOCUMENTS_MAX`]: when full, an arbitrary one makes room, so clients
//! sending ever-new texts cost an insert each and nothing more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerResult, Variables};

/// Most documents kept.
pub const DOCUMENTS_MAX: usize = 512;
/// Longest text kept, in bytes.
pub const DOCUMENT_BYTES_MAX: usize = 8 * 1024;

/// The extension factory; its clones share one store.
#[derive(Clone, Default)]
pub struct ParsedDocuments {
    kept: Arc<Mutex<HashMap<Arc<str>, ExecutableDocument>>>,
}

impl ExtensionFactory for ParsedDocuments {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

impl ParsedDocuments {
    fn get(&self, query: &str) -> Option<ExecutableDocument> {
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(query)
            .cloned()
    }

    fn keep(&self, query: &str, document: &ExecutableDocument) {
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.len() >= DOCUMENTS_MAX
            && let Some(any) = kept.keys().next().cloned()
        {
            kept.remove(&any);
        }
        kept.insert(Arc::from(query), document.clone());
    }

    /// Documents kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.kept.lock().map_or(0, |kept| kept.len())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ParsedDocuments {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if query.len() > DOCUMENT_BYTES_MAX {
            return next.run(ctx, query, variables).await;
        }
        if let Some(document) = self.get(query) {
            return Ok(document);
        }
        let document = next.run(ctx, query, variables).await?;
        self.keep(query, &document);
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Request, Schema};

    use super::*;

    struct Root;

    #[Object]
    impl Root {
        async fn echo(&self, text: String) -> String {
            text
        }
    }

    fn schema(documents: &ParsedDocuments) -> Schema<Root, EmptyMutation, EmptySubscription> {
        Schema::build(Root, EmptyMutation, EmptySubscription)
            .extension(documents.clone())
            .finish()
    }

    #[tokio::test]
    async fn a_kept_document_answers_as_a_fresh_parse_does() {
        let documents = ParsedDocuments::default();
        let schema = schema(&documents);
        let query = "query($t: String!) { echo(text: $t) again: echo(text: \"x\") }";
        for text in ["one", "two"] {
            let response = schema
                .execute(
                    Request::new(query).variables(Variables::from_json(serde_json::json!({ "t": text }))),
                )
                .await;
            assert!(response.errors.is_empty(), "{:?}", response.errors);
            assert_eq!(
                response.data.into_json().unwrap(),
                serde_json::json!({ "echo": text, "again": "x" })
            );
        }
        assert_eq!(documents.len(), 1);
        // Validation still runs on a kept document.
        let invalid = "{ echo }";
        for _ in 0..2 {
            let response = schema.execute(invalid).await;
            assert_eq!(response.errors.len(), 1, "{:?}", response.errors);
        }
        // A text that does not parse is not kept.
        let response = schema.execute("{ echo(").await;
        assert_eq!(response.errors.len(), 1);
        assert_eq!(documents.len(), 2);
    }

    #[tokio::test]
    async fn the_store_stays_bounded() {
        let documents = ParsedDocuments::default();
        let schema = schema(&documents);
        for n in 0..DOCUMENTS_MAX + 40 {
            let response = schema.execute(format!("{{ echo(text: \"{n}\") }}")).await;
            assert!(response.errors.is_empty());
        }
        assert_eq!(documents.len(), DOCUMENTS_MAX);
    }
}
