//! Trusted documents: the client kit's operations, named by hash.
//!
//! The manifest is graphql-codegen's persisted documents (`hash ->
//! document`, `clients/typescript`'s `npm run build` writes it; the
//! service's copy is `assets/trusted-documents.json`). A request names one
//! with `documentId` instead of sending `query`. Its document was parsed
//! once, at start: it skips the text scan and the parser, and goes straight
//! to validation. With `TRUSTED_DOCUMENTS=enforce`, only operators may send
//! free-form documents (GraphiQL keeps working with an operator token); see
//! `docs/design/client-kit.md`.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::Request;
use async_graphql::parser::types::ExecutableDocument;

use super::Authentication;
use crate::auth::may_send_free_form_documents;

/// Request data: the request's document came from the manifest, parsed
/// (shared, so admitting a request does not copy it).
#[derive(Clone)]
pub(crate) struct Trusted(Arc<ExecutableDocument>);

/// The parsed document of a request marked [`Trusted`], if it is.
pub(crate) fn trusted_document(request: &Request) -> Option<ExecutableDocument> {
    request
        .data
        .get(&TypeId::of::<Trusted>())
        .and_then(|data| data.downcast_ref::<Trusted>())
        .map(|trusted| ExecutableDocument::clone(&trusted.0))
}

/// One manifest entry.
struct Entry {
    text: Arc<str>,
    document: Arc<ExecutableDocument>,
}

/// The manifest and whether free-form documents are refused.
#[derive(Clone, Default)]
pub struct TrustedDocuments {
    entries: Arc<HashMap<String, Entry>>,
    enforce: bool,
}

/// Why a request was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub enum NotAdmitted {
    /// `documentId` names no document of the manifest.
    Unknown(String),
    /// A free-form document under `enforce`, from a caller not an operator.
    Required,
}

impl NotAdmitted {
    /// The error code (`extensions.code`).
    pub fn code(&self) -> &'static str {
        match self {
            NotAdmitted::Unknown(_) => "UNKNOWN_DOCUMENT",
            NotAdmitted::Required => "TRUSTED_DOCUMENT_REQUIRED",
        }
    }

    /// What the client is told.
    pub fn message(&self) -> String {
        match self {
            NotAdmitted::Unknown(id) => format!(
                "no trusted document has the id {:?}; send the document's text as `query`, or update the manifest",
                id.chars().take(100).collect::<String>()
            ),
            NotAdmitted::Required => "this service accepts only trusted documents (send `documentId`); free-form documents need an operator token".to_owned(),
        }
    }
}

impl TrustedDocuments {
    /// Reads a manifest: a JSON object of id -> document text. Every
    /// document must parse; `enforce` refuses free-form documents.
    pub fn from_manifest(json: &str, enforce: bool) -> Result<Self, String> {
        let manifest: HashMap<String, String> = serde_json::from_str(json)
            .map_err(|error| format!("the manifest must be a JSON object of id -> document: {error}"))?;
        let mut entries = HashMap::with_capacity(manifest.len());
        for (id, text) in manifest {
            let document = async_graphql::parser::parse_query(&text)
                .map_err(|error| format!("trusted document {id} does not parse: {error}"))?;
            entries.insert(
                id,
                Entry {
                    text: Arc::from(text),
                    document: Arc::new(document),
                },
            );
        }
        Ok(Self {
            entries: Arc::new(entries),
            enforce,
        })
    }

    /// Documents in the manifest.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the manifest is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The request to execute: the manifest's document for `document_id`
    /// (marked [`Trusted`]), or the free-form one if the caller may send it.
    pub fn admit(
        &self,
        mut request: Request,
        document_id: Option<&str>,
        authentication: &Authentication,
    ) -> Result<Request, NotAdmitted> {
        match document_id {
            Some(id) => {
                let entry = self
                    .entries
                    .get(id)
                    .ok_or_else(|| NotAdmitted::Unknown(id.to_owned()))?;
                request.query = entry.text.to_string();
                Ok(request.data(Trusted(Arc::clone(&entry.document))))
            }
            None if self.enforce && !is_operator(authentication) => Err(NotAdmitted::Required),
            None => Ok(request),
        }
    }
}

fn is_operator(authentication: &Authentication) -> bool {
    matches!(authentication, Authentication::Caller(caller) if may_send_free_form_documents(caller))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"{"sha256:abc": "query Plans { plans { code } }"}"#;

    #[test]
    fn a_known_id_gives_its_parsed_document_and_an_unknown_one_is_refused() {
        let trusted = TrustedDocuments::from_manifest(MANIFEST, false).unwrap();
        let request = trusted
            .admit(Request::new(""), Some("sha256:abc"), &Authentication::Anonymous)
            .unwrap();
        assert_eq!(request.query, "query Plans { plans { code } }");
        assert!(trusted_document(&request).is_some());
        let refused = trusted
            .admit(Request::new(""), Some("sha256:nope"), &Authentication::Anonymous)
            .unwrap_err();
        assert_eq!(refused.code(), "UNKNOWN_DOCUMENT");
        // Not enforcing: free-form documents pass, unmarked.
        let free = trusted
            .admit(
                Request::new("{ plans { code } }"),
                None,
                &Authentication::Anonymous,
            )
            .unwrap();
        assert!(trusted_document(&free).is_none());
    }

    #[test]
    fn enforcing_refuses_free_form_documents_but_an_operators() {
        let trusted = TrustedDocuments::from_manifest(MANIFEST, true).unwrap();
        let caller = |role| {
            Authentication::Caller(crate::auth::Caller {
                subject: "someone".to_owned(),
                workspace_id: None,
                role,
            })
        };
        for refused in [
            Authentication::Anonymous,
            caller(domain::catalogue::Role::Admin),
            caller(domain::catalogue::Role::Service),
        ] {
            assert_eq!(
                trusted
                    .admit(Request::new("{ plans { code } }"), None, &refused)
                    .unwrap_err(),
                NotAdmitted::Required
            );
        }
        let operator = caller(domain::catalogue::Role::Operator);
        assert!(
            trusted
                .admit(Request::new("{ plans { code } }"), None, &operator)
                .is_ok()
        );
        // A trusted document passes for anyone.
        assert!(
            trusted
                .admit(Request::new(""), Some("sha256:abc"), &Authentication::Anonymous)
                .is_ok()
        );
    }

    struct Root;

    #[async_graphql::Object]
    impl Root {
        async fn echo(&self) -> &str {
            "echo"
        }
    }

    #[tokio::test]
    async fn a_trusted_document_skips_the_scan_that_refuses_its_text_sent_free_form() {
        // Past the scan's 64 KiB: refused as text, answered by id.
        let text = format!("# {}\nquery Echo {{ echo }}", "x".repeat(70 * 1024));
        let manifest = serde_json::json!({ "sha256:big": text }).to_string();
        let trusted = TrustedDocuments::from_manifest(&manifest, false).unwrap();
        let schema = async_graphql::Schema::build(
            Root,
            async_graphql::EmptyMutation,
            async_graphql::EmptySubscription,
        )
        .extension(super::super::documents::Documents::new(true))
        .finish();
        let free_form = schema.execute(Request::new(text.clone())).await;
        assert_eq!(free_form.errors.len(), 1, "the scan refuses the text");
        let by_id = trusted
            .admit(Request::new(""), Some("sha256:big"), &Authentication::Anonymous)
            .unwrap();
        let answered = schema.execute(by_id).await;
        assert!(answered.errors.is_empty(), "{:?}", answered.errors);
        assert_eq!(
            answered.data.into_json().unwrap(),
            serde_json::json!({ "echo": "echo" })
        );
    }

    #[test]
    fn a_manifest_that_does_not_parse_is_refused_naming_the_document() {
        let error = TrustedDocuments::from_manifest(r#"{"sha256:x": "query {"}"#, false)
            .err()
            .unwrap();
        assert!(error.contains("sha256:x"), "{error}");
        assert!(TrustedDocuments::from_manifest("[]", false).is_err());
    }
}
