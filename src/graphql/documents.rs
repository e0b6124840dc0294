//! Documents, checked and parsed once per text.
//!
//! Every request's document goes through [`Documents::prepare_request`]
//! before async-graphql touches it: the text is scanned
//! ([`limits::scan`]), parsed, and measured ([`limits::measure`]), so the
//! parser never meets deep nesting and validation never meets an
//! exponential fragment expansion (`docs/design/hostile-input.md`).
//!
//! Clients send the same few documents over and over (a worker's
//! `spendCredit`, a dashboard's balance query); parsing one with
//! async-graphql's pest grammar is the largest single cost of a small
//! request. A text accepted before is answered with a copy of its
//! document; every validation rule still runs on each request. Only
//! accepted documents are kept, only short ones, and at most
//! [`DOCUMENTS_MAX`]: when full, an arbitrary one makes room, so clients
//! sending ever-new texts cost an insert each and nothing more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, ServerError, ServerResult};

use super::limits;

/// Most documents kept.
pub const DOCUMENTS_MAX: usize = 512;
/// Longest text kept, in bytes.
pub const DOCUMENT_BYTES_MAX: usize = 8 * 1024;

/// The extension factory; its clones share one store. Without
/// `introspection`, documents asking for `__schema` or `__type` are
/// refused.
#[derive(Clone)]
pub struct Documents {
    introspection: bool,
    kept: Arc<Mutex<HashMap<Arc<str>, ExecutableDocument>>>,
}

impl ExtensionFactory for Documents {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

/// A document refused before validation: the client's doing.
fn refused(message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", "BAD_USER_INPUT");
    error
}

/// Scans and parses `text` (no limit on what it measures): for a caller
/// that only needs to know the document's operations before execution.
pub fn parse(text: &str) -> ServerResult<ExecutableDocument> {
    limits::scan(text).map_err(refused)?;
    Ok(async_graphql::parser::parse_query(text)?)
}

impl Documents {
    /// An empty store.
    pub fn new(introspection: bool) -> Self {
        Self {
            introspection,
            kept: Arc::default(),
        }
    }

    fn get(&self, query: &str) -> Option<ExecutableDocument> {
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(query)
            .cloned()
    }

    fn keep(&self, query: &str, document: &ExecutableDocument) {
        if query.len() > DOCUMENT_BYTES_MAX {
            return;
        }
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

    /// The checked document of `request`'s text.
    fn document(&self, request: &Request) -> ServerResult<ExecutableDocument> {
        if let Some(document) = self.get(&request.query) {
            return Ok(document);
        }
        let document = parse(&request.query)?;
        limits::measure(&document, self.introspection).map_err(refused)?;
        self.keep(&request.query, &document);
        Ok(document)
    }

    /// Documents kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.kept.lock().map_or(0, |kept| kept.len())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for Documents {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        // A trusted document was parsed when the manifest was loaded.
        let document = match super::trusted::trusted_document(&request) {
            Some(document) => document,
            None => self.document(&request)?,
        };
        request.set_parsed_query(document);
        next.run(ctx, request).await
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, Variables};

    use super::*;

    struct Root;

    #[Object]
    impl Root {
        async fn echo(&self, text: String) -> String {
            text
        }
    }

    fn schema(documents: &Documents) -> Schema<Root, EmptyMutation, EmptySubscription> {
        Schema::build(Root, EmptyMutation, EmptySubscription)
            .extension(documents.clone())
            .finish()
    }

    #[tokio::test]
    async fn a_kept_document_answers_as_a_fresh_parse_does() {
        let documents = Documents::new(true);
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
        let documents = Documents::new(true);
        let schema = schema(&documents);
        for n in 0..DOCUMENTS_MAX + 40 {
            let response = schema.execute(format!("{{ echo(text: \"{n}\") }}")).await;
            assert!(response.errors.is_empty());
        }
        assert_eq!(documents.len(), DOCUMENTS_MAX);
    }
}
