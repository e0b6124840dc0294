//! GraphQL over HTTP (graphql.github.io/graphql-over-http): reading a
//! request from a POST body or a GET query string, choosing the answer's
//! media type from `Accept`, and giving every refusal, GraphQL's or the
//! HTTP layer's, the shape `{"errors":[{"message","extensions":{"code"}}]}`
//! (`docs/design/hostile-input.md`).
//!
//! - POST bodies must be `application/json` (or
//!   `application/graphql-response+json`): text, form and multipart bodies
//!   are what a hostile page can send cross-site without a preflight, so
//!   they are refused (415) before they are read.
//! - With `Accept: application/graphql-response+json`, a request that
//!   never reached execution (it did not parse, validate or fit the
//!   limits) is answered 400 without `data`; with `application/json` (or
//!   no `Accept`, or `*/*`) every GraphQL answer is 200, as legacy clients
//!   expect.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// `application/json; charset=utf-8`.
const JSON: &str = "application/json; charset=utf-8";
/// `application/graphql-response+json; charset=utf-8`.
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json; charset=utf-8";

/// The media type of a GraphQL answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `application/json`: every GraphQL answer is 200.
    Json,
    /// `application/graphql-response+json`: request errors are 4xx.
    GraphqlResponseJson,
}

/// A refusal in GraphQL's error shape, with `code` as `extensions.code`.
pub fn refusal(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({ "errors": [{ "message": message.into(), "extensions": { "code": code } }] });
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

/// A refusal not yet rendered (small enough to travel in a `Result`).
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        refusal(self.status, "BAD_USER_INPUT", self.message)
    }
}

fn bad_request(message: impl Into<String>) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
    }
}

/// The media type `Accept` asks for: the first of ours it lists, with
/// `*/*` and `application/*` meaning `application/json`; no `Accept` means
/// `application/json`. Nothing acceptable: 406.
pub fn negotiate(headers: &HeaderMap) -> Result<MediaType, Refusal> {
    let accepts: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|item| item.split(';').next().unwrap_or("").trim())
        .filter(|item| !item.is_empty())
        .collect();
    if accepts.is_empty() {
        return Ok(MediaType::Json);
    }
    for item in accepts {
        if item.eq_ignore_ascii_case("application/graphql-response+json") {
            return Ok(MediaType::GraphqlResponseJson);
        }
        if ["application/json", "*/*", "application/*"]
            .iter()
            .any(|ours| item.eq_ignore_ascii_case(ours))
        {
            return Ok(MediaType::Json);
        }
    }
    Err(Refusal {
        status: StatusCode::NOT_ACCEPTABLE,
        message: "Accept must allow application/graphql-response+json or application/json".to_owned(),
    })
}

/// Checks a POST's `Content-Type`: JSON, in UTF-8.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), Refusal> {
    let unsupported = || Refusal {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        message: "Content-Type must be application/json".to_owned(),
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(unsupported)?;
    let mut parts = value.split(';').map(str::trim);
    let essence = parts.next().unwrap_or("");
    let json = ["application/json", "application/graphql-response+json"]
        .iter()
        .any(|ours| essence.eq_ignore_ascii_case(ours));
    let utf8 = parts.all(|parameter| match parameter.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    });
    if json && utf8 { Ok(()) } else { Err(unsupported()) }
}

/// A request read off the wire, and the trusted document it names
/// (`documentId`, graphql-codegen's persisted documents) instead of a `query`.
#[derive(Debug)]
pub struct Incoming {
    pub request: async_graphql::Request,
    pub document_id: Option<String>,
}

/// Builds a request from its parameters, each checked for its type first
/// (async-graphql's own deserialiser would name Rust types in its errors).
fn request_from(
    query: Option<&Value>,
    document_id: Option<&Value>,
    variables: Option<&Value>,
    operation_name: Option<&Value>,
    extensions: Option<&Value>,
) -> Result<Incoming, Refusal> {
    let mut checked = Map::new();
    let present = |value: Option<&Value>| value.is_some_and(|value| !value.is_null());
    let document_id = match (query, document_id) {
        (query, document_id) if present(query) && present(document_id) => {
            return Err(bad_request("send either `query` or `documentId`, not both"));
        }
        (Some(Value::String(query)), _) => {
            checked.insert("query".into(), Value::String(query.clone()));
            None
        }
        (_, Some(Value::String(id))) => Some(id.clone()),
        (_, document_id) if present(document_id) => return Err(bad_request("`documentId` must be a string")),
        (query, _) if present(query) => return Err(bad_request("`query` must be a string")),
        _ => {
            return Err(bad_request(
                "the request must carry a `query` string (or a trusted document's `documentId`)",
            ));
        }
    };
    for (name, value, what) in [
        ("variables", variables, "an object"),
        ("operationName", operation_name, "a string"),
        ("extensions", extensions, "an object"),
    ] {
        match (name, value) {
            (_, None | Some(Value::Null)) => {}
            ("operationName", Some(value @ Value::String(_)))
            | ("variables" | "extensions", Some(value @ Value::Object(_))) => {
                checked.insert(name.into(), value.clone());
            }
            (_, Some(_)) => return Err(bad_request(format!("`{name}` must be {what}"))),
        }
    }
    let request = serde_json::from_value(Value::Object(checked))
        .map_err(|_| bad_request("the request's parameters could not be read"))?;
    Ok(Incoming { request, document_id })
}

/// Reads a POST's request from its body (already size-limited by the
/// router, its content type checked): JSON, and each parameter's type.
pub fn read_post(body: &Bytes) -> Result<Incoming, Refusal> {
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        // serde_json's syntax messages name a line and column, never a type.
        bad_request(format!("the body is not valid JSON: {error}"))
    })?;
    let object: &Map<String, Value> = match &value {
        Value::Object(object) => object,
        Value::Array(_) => {
            return Err(bad_request(
                "batched requests are not supported; send one operation per request",
            ));
        }
        _ => {
            return Err(bad_request(
                "the body must be a JSON object with a `query` string",
            ));
        }
    };
    request_from(
        object.get("query"),
        object.get("documentId"),
        object.get("variables"),
        object.get("operationName"),
        object.get("extensions"),
    )
}

/// Reads a GET's request from its query string; `variables` and
/// `extensions` are JSON texts.
pub fn read_get(raw_query: Option<&str>) -> Result<Incoming, Refusal> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw_query.unwrap_or(""))
        .map_err(|_| bad_request("the query string is not URL-encoded"))?;
    let mut parameters = Map::new();
    for (name, text) in pairs {
        let value = match name.as_str() {
            "query" | "operationName" | "documentId" => Value::String(text),
            "variables" | "extensions" => serde_json::from_str(&text)
                .map_err(|error| bad_request(format!("`{name}` is not valid JSON: {error}")))?,
            _ => continue,
        };
        if parameters.insert(name.clone(), value).is_some() {
            return Err(bad_request(format!("`{name}` is given more than once")));
        }
    }
    request_from(
        parameters.get("query"),
        parameters.get("documentId"),
        parameters.get("variables"),
        parameters.get("operationName"),
        parameters.get("extensions"),
    )
}

/// Errors before execution (a document that did not parse, validate or
/// fit the limits) carry no `path`; field errors always do.
fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
}

/// The HTTP answer to an executed request, in `media`.
pub fn answer(media: MediaType, response: async_graphql::Response) -> Response {
    let (status, content_type) = match media {
        MediaType::Json => (StatusCode::OK, JSON),
        MediaType::GraphqlResponseJson if is_request_error(&response) => {
            (StatusCode::BAD_REQUEST, GRAPHQL_RESPONSE_JSON)
        }
        MediaType::GraphqlResponseJson => (StatusCode::OK, GRAPHQL_RESPONSE_JSON),
    };
    let body = if media == MediaType::GraphqlResponseJson && status == StatusCode::BAD_REQUEST {
        serde_json::to_string(&json!({ "errors": response.errors }))
    } else {
        serde_json::to_string(&response)
    };
    let body = match body {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "serialising a GraphQL answer");
            return refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                "internal error",
            );
        }
    };
    let mut http = Response::new(Body::from(body));
    *http.status_mut() = status;
    let headers = http.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if response.errors.is_empty()
        && let Some(cache_control) = response.cache_control.value()
        && let Ok(value) = HeaderValue::from_str(&cache_control)
    {
        headers.insert(header::CACHE_CONTROL, value);
    }
    headers.extend(response.http_headers);
    http
}

/// What the router's own refusals (404, 405, 408, 413, …) say, as JSON.
fn routing_refusal(status: StatusCode) -> Option<(&'static str, String)> {
    let refusal = match status {
        StatusCode::NOT_FOUND => (
            "NOT_FOUND",
            "no such path; GraphQL is served at /graphql".to_owned(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "BAD_USER_INPUT",
            "this method is not allowed here; /graphql takes POST, and GET for queries".to_owned(),
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "SERVICE_UNAVAILABLE",
            format!(
                "the request took longer than {} s; retry later",
                super::REQUEST_TIMEOUT.as_secs()
            ),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "BAD_USER_INPUT",
            format!("the body exceeds {} bytes", super::REQUEST_BODY_MAX),
        ),
        StatusCode::URI_TOO_LONG => (
            "BAD_USER_INPUT",
            format!(
                "the URL is longer than {} bytes; send the query with POST",
                super::REQUEST_URI_MAX
            ),
        ),
        StatusCode::INTERNAL_SERVER_ERROR => ("INTERNAL_SERVER_ERROR", "internal error".to_owned()),
        _ => return None,
    };
    Some(refusal)
}

/// Middleware: a URI over [`super::REQUEST_URI_MAX`] is refused (414);
/// an error answer from the router or a layer (not already JSON) is
/// replaced by the same status with a GraphQL JSON error. After a 413 the
/// rest of the body is unread, so the connection is closed.
pub async fn json_refusals(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let uri_length = request
        .uri()
        .path_and_query()
        .map_or(0, |path| path.as_str().len());
    if uri_length > super::REQUEST_URI_MAX {
        let (code, message) = routing_refusal(StatusCode::URI_TOO_LONG).unwrap_or_default();
        return refusal(StatusCode::URI_TOO_LONG, code, message);
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("json"));
    let Some((code, message)) = routing_refusal(status).filter(|_| !is_json) else {
        return response;
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut replaced = refusal(status, code, message);
    if let Some(allow) = allow {
        replaced.headers_mut().insert(header::ALLOW, allow);
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        replaced
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    replaced
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    /// The layers' own answers (here a 408 and a 500 as plain text) leave
    /// as GraphQL JSON errors with the same status; JSON answers pass.
    #[tokio::test]
    async fn layer_answers_become_json_errors() {
        use axum::Router;
        use axum::routing::get;
        use tower::ServiceExt;
        let router = Router::new()
            .route(
                "/slow",
                get(|| async { (StatusCode::REQUEST_TIMEOUT, "timed out") }),
            )
            .route(
                "/boom",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "panicked") }),
            )
            .route(
                "/json",
                get(|| async { refusal(StatusCode::NOT_FOUND, "NOT_FOUND", "kept") }),
            )
            .layer(axum::middleware::from_fn(json_refusals));
        for (path, status, code, message) in [
            (
                "/slow",
                408,
                "SERVICE_UNAVAILABLE",
                "the request took longer than 30 s; retry later",
            ),
            ("/boom", 500, "INTERNAL_SERVER_ERROR", "internal error"),
            ("/json", 404, "NOT_FOUND", "kept"),
        ] {
            let request = axum::http::Request::get(path).body(Body::empty()).unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{path}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], JSON, "{path}");
            let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["errors"][0]["extensions"]["code"], code, "{path}");
            assert_eq!(body["errors"][0]["message"], message, "{path}");
        }
    }

    #[test]
    fn accept_chooses_the_media_type() {
        let table = [
            ("", Some(MediaType::Json)),
            ("application/json", Some(MediaType::Json)),
            ("*/*", Some(MediaType::Json)),
            (
                "application/graphql-response+json",
                Some(MediaType::GraphqlResponseJson),
            ),
            (
                "application/graphql-response+json, application/json;q=0.9",
                Some(MediaType::GraphqlResponseJson),
            ),
            (
                "application/json, application/graphql-response+json",
                Some(MediaType::Json),
            ),
            ("text/html", None),
        ];
        for (accept, expected) in table {
            let map = if accept.is_empty() {
                HeaderMap::new()
            } else {
                headers(&[(header::ACCEPT, accept)])
            };
            assert_eq!(negotiate(&map).ok(), expected, "Accept: {accept}");
        }
    }

    #[test]
    fn only_json_bodies_are_read() {
        let body = Bytes::from_static(br#"{"query":"{ __typename }"}"#);
        for (content_type, accepted) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("application/graphql-response+json", true),
            ("application/json; charset=latin1", false),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("multipart/form-data; boundary=x", false),
        ] {
            let read = check_content_type(&headers(&[(header::CONTENT_TYPE, content_type)]));
            assert_eq!(read.is_ok(), accepted, "{content_type}");
            if let Err(refused) = read {
                assert_eq!(refused.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
        }
        assert!(check_content_type(&HeaderMap::new()).is_err());
        assert!(read_post(&body).is_ok());
    }

    #[test]
    fn malformed_parameters_are_400s() {
        for body in [
            "{\"query\":",
            "null",
            "[]",
            "[{\"query\":\"{ __typename }\"}]",
            "\"text\"",
            "{}",
            "{\"query\":1}",
            "{\"query\":\"{ a }\",\"variables\":[]}",
            "{\"query\":\"{ a }\",\"operationName\":{}}",
            "{\"query\":\"{ a }\",\"extensions\":\"x\"}",
            "{\"documentId\":1}",
            "{\"query\":\"{ a }\",\"documentId\":\"sha256:x\"}",
        ] {
            let refused = read_post(&Bytes::from(body)).expect_err(body);
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}");
        }
        for query in ["variables=%7Bx", "query=%7Ba%7D&variables=1", "query=a&query=b"] {
            let refused = read_get(Some(query)).expect_err(query);
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{query}");
        }
        assert!(read_get(Some("query=%7Ba%7D&variables=%7B%22x%22%3A1%7D&operationName=A")).is_ok());
    }

    #[test]
    fn a_document_id_stands_for_the_query() {
        let incoming = read_post(&Bytes::from(r#"{"documentId":"sha256:ab","variables":{"x":1}}"#)).unwrap();
        assert_eq!(incoming.document_id.as_deref(), Some("sha256:ab"));
        assert_eq!(incoming.request.query, "");
        let incoming = read_get(Some("documentId=sha256%3Aab")).unwrap();
        assert_eq!(incoming.document_id.as_deref(), Some("sha256:ab"));
        assert!(
            read_post(&Bytes::from(r#"{"query":"{ a }"}"#))
                .unwrap()
                .document_id
                .is_none()
        );
    }
}
