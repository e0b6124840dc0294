//! The axum router: `/graphql` (POST; GET for queries and WebSocket
//! upgrades), GraphiQL at `/`, the live balance page at `/console`, the CSV
//! export, `/healthz`, `/readyz`, `/metrics`.
//!
//! Authentication happens here, once per request (or once per WebSocket
//! connection, from the `connection_init` payload); the result travels to
//! resolvers as [`Authentication`] in the request's data.

mod export;
mod pages;
mod protocol;
pub mod rate;
mod stripe;

mod ws;

pub use ws::{WS_KEEPALIVE_DEFAULT, WsShared};

use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::TokenVerifier;
use crate::error::AppError;
use crate::graphql::{AppSchema, Authentication, NotAdmitted, TrustedDocuments};
use crate::service::Ledger;

/// Largest request body accepted, in bytes.
pub const REQUEST_BODY_MAX: usize = 256 * 1024;
/// Longest time a request may run before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// WebSocket read buffer per connection. tungstenite's default is 128 KiB
/// for each of the read and write buffers, which would dominate the memory
/// of an idle subscriber; the protocol's messages here are small (a larger
/// one is read in several steps).
pub const WS_READ_BUFFER_BYTES: usize = 1024;
/// Largest WebSocket message accepted (same bound as an HTTP body).
pub const WS_MESSAGE_MAX_BYTES: usize = REQUEST_BODY_MAX;
/// Unsent bytes a slow client may hold on the server before its connection
/// is closed (backpressure beyond this is an error, not growth).
pub const WS_WRITE_BUFFER_MAX_BYTES: usize = 1024 * 1024;
/// Most WebSocket connections open at once for one subject and workspace
/// (however many tokens were minted for them).
pub const WS_CONNECTIONS_PER_SUBJECT_MAX: usize = 10;

/// Largest request head (request line and headers) accepted, in bytes:
/// hyper's read buffer, so a larger head is answered 431 and the
/// connection closed. A token is well under 4 KiB.
pub const REQUEST_HEAD_MAX: usize = 16 * 1024;
/// Longest request URI (path and query) answered, in bytes: a longer one
/// gets 414 and a JSON error. Well under [`REQUEST_HEAD_MAX`], so which of
/// the two refuses a long GET does not depend on how its bytes arrive
/// (hyper lets a head over its buffer through when it arrives whole).
pub const REQUEST_URI_MAX: usize = 8 * 1024;
/// Longest wait for open connections to finish after a shutdown signal.
pub const SHUTDOWN_DRAIN_MAX: Duration = Duration::from_secs(30);

/// Serves `router` over HTTP/1.1 (with upgrades, for WebSockets) until
/// `shutdown` completes, then lets open connections finish (at most
/// [`SHUTDOWN_DRAIN_MAX`]). A connection gets `idle_timeout` to send each
/// request's head, counted from the end of the previous answer: one that
/// trickles its headers, or sits idle between requests, is closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    idle_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout)
        .max_buf_size(REQUEST_HEAD_MAX);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of file descriptors, most likely: wait rather than spin.
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone());
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    // A client that goes away mid-request is not an error here.
                    let _ = connection.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_DRAIN_MAX, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown drain; closing them");
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The executable schema.
    pub schema: AppSchema,
    /// Verifies bearer tokens.
    pub verifier: Arc<TokenVerifier>,
    /// The service, for readiness.
    pub ledger: Ledger,
    /// What WebSocket connections share.
    pub ws: WsShared,
    /// `CORS_ALLOWED_ORIGINS`; empty: no cross-origin browser access.
    pub cors_allowed_origins: Arc<[String]>,
    /// `STRIPE_WEBHOOK_SECRET`; `None`: `/webhooks/stripe` answers 404.
    pub stripe_webhook_secret: Option<Arc<secrecy::SecretString>>,
    /// Request rates per subject and workspace (`RATE_LIMIT_*`).
    pub limiter: Arc<rate::RequestLimiter>,
    /// The trusted-documents manifest and policy (`TRUSTED_DOCUMENTS*`).
    pub trusted: TrustedDocuments,
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    let cors = cors(&state.cors_allowed_origins);
    let router = Router::new()
        .route("/", get(pages::graphiql))
        .route("/graphiql.js", get(pages::graphiql_js))
        .route("/live.js", get(pages::live_js))
        .route("/assets/{name}", get(pages::asset))
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/export/transactions.csv", get(export::export_transactions))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/console", get(pages::console))
        .route("/console.js", get(pages::console_js))
        .route("/webhooks/stripe", axum::routing::post(stripe::webhook))
        // A panic outside GraphQL execution (which catches its own) is a
        // 500 answer, never a dropped connection.
        .layer(CatchPanicLayer::new())
        .layer(RequestBodyLimitLayer::new(REQUEST_BODY_MAX))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        // Outside every layer that answers on its own (404, 405, 408, 413,
        // 500): those answers become GraphQL JSON errors too.
        .layer(axum::middleware::from_fn(protocol::json_refusals))
        // One span per request; the path only (no query string, no headers,
        // so neither tokens nor variables reach the logs).
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            tracing::info_span!("http.request", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state);
    match cors {
        // Outermost: a preflight is answered before routing.
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// Browsers on the listed origins may call the API with a token; without a
/// list, no CORS headers are sent and browsers keep other origins out.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::Method;
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
            .max_age(Duration::from_secs(600)),
    )
}

/// A WebSocket upgrade from a browser page: its `Origin` must be listed in
/// `CORS_ALLOWED_ORIGINS` or be this server's own (same host and port as
/// `Host`). Without a list, or without an `Origin` (not a browser), any.
fn origin_allowed(origins: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()) else {
        return true;
    };
    if origins.is_empty() || origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let own = origin.split_once("://").map(|(_, host)| host);
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok());
    matches!((own, host), (Some(own), Some(host)) if own.eq_ignore_ascii_case(host))
}

/// Prometheus text exposition.
async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.ledger.render_metrics(),
    )
        .into_response()
}

/// The HTTP status of an error answered outside GraphQL execution (an
/// export, a readiness probe, a Stripe event).
pub(crate) fn status_of(error: &AppError) -> StatusCode {
    match error {
        AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::InvalidInput { .. } => StatusCode::BAD_REQUEST,
        AppError::IdempotencyConflict(_) | AppError::HoldNotActive(_) => StatusCode::CONFLICT,
        AppError::LimitExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
        AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.ledger.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(error) => {
            let status = status_of(&error);
            error.log();
            (status, "database unreachable").into_response()
        }
    }
}

/// Reads `Authorization: Bearer <jwt>`.
fn authenticate_headers(verifier: &TokenVerifier, headers: &HeaderMap) -> Authentication {
    match headers.get(header::AUTHORIZATION) {
        None => Authentication::Anonymous,
        Some(value) => match value.to_str().ok().and_then(bearer_token) {
            Some(token) => authenticate_token(verifier, token),
            None => Authentication::Refused("the Authorization header must be `Bearer <token>`"),
        },
    }
}

fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

fn authenticate_token(verifier: &TokenVerifier, token: &str) -> Authentication {
    match verifier.verify(token) {
        Ok(caller) => Authentication::Caller(caller),
        Err(crate::error::AppError::Unauthenticated(reason)) => Authentication::Refused(reason),
        Err(_) => Authentication::Refused("the token could not be verified"),
    }
}

async fn graphql_post(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let media = match protocol::negotiate(&headers) {
        Ok(media) => media,
        Err(refused) => return refused.into_response(),
    };
    if let Err(refused) = protocol::check_content_type(&headers) {
        return refused.into_response();
    }
    let bytes = match axum::body::to_bytes(body, REQUEST_BODY_MAX).await {
        Ok(bytes) => bytes,
        Err(error) => return body_error(error),
    };
    let incoming = match protocol::read_post(&bytes) {
        Ok(incoming) => incoming,
        Err(refused) => return refused.into_response(),
    };
    let authentication = authenticate_headers(&state.verifier, &headers);
    if let Err(wait) = within_rate(&state, &authentication) {
        return rate::too_many(wait);
    }
    let request = match admit(&state, incoming, &authentication) {
        Ok(request) => request,
        Err(refused) => return not_admitted(&refused),
    };
    protocol::answer(media, state.schema.execute(request.data(authentication)).await)
}

/// The request to execute: a trusted document's, or a free-form one the
/// caller may send (`TRUSTED_DOCUMENTS`).
fn admit(
    state: &AppState,
    incoming: protocol::Incoming,
    authentication: &Authentication,
) -> Result<async_graphql::Request, NotAdmitted> {
    state
        .trusted
        .admit(incoming.request, incoming.document_id.as_deref(), authentication)
}

/// The answer to a request not admitted: an unknown id is the client's
/// mistake (400), a free-form document where only trusted ones go is 403.
fn not_admitted(refused: &NotAdmitted) -> Response {
    let status = match refused {
        NotAdmitted::Unknown(_) => StatusCode::BAD_REQUEST,
        NotAdmitted::Required => StatusCode::FORBIDDEN,
    };
    protocol::refusal(status, refused.code(), refused.message())
}

/// Whether an authenticated caller is within its request rates.
fn within_rate(state: &AppState, authentication: &Authentication) -> Result<(), std::time::Duration> {
    match authentication {
        Authentication::Caller(caller) => state.limiter.check(caller),
        _ => Ok(()),
    }
}

/// A body that could not be read: past the limit (413, and the connection
/// is closed, as the rest of the body is never read), or cut short.
fn body_error(error: axum::Error) -> Response {
    let too_large = error
        .into_inner()
        .downcast_ref::<http_body_util::LengthLimitError>()
        .is_some();
    if !too_large {
        return protocol::refusal(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "the body could not be read",
        );
    }
    let mut response = protocol::refusal(
        StatusCode::PAYLOAD_TOO_LARGE,
        "BAD_USER_INPUT",
        format!("the body exceeds {REQUEST_BODY_MAX} bytes"),
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// GET serves both WebSocket upgrades and read-only queries.
async fn graphql_get(State(state): State<AppState>, request: Request) -> Response {
    let is_upgrade = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if is_upgrade {
        return websocket(state, request).await;
    }
    let media = match protocol::negotiate(request.headers()) {
        Ok(media) => media,
        Err(refused) => return refused.into_response(),
    };
    let incoming = match protocol::read_get(request.uri().query()) {
        Ok(incoming) => incoming,
        Err(refused) => return refused.into_response(),
    };
    let authentication = authenticate_headers(&state.verifier, request.headers());
    let graphql = match admit(&state, incoming, &authentication) {
        Ok(graphql) => graphql,
        Err(refused) => return not_admitted(&refused),
    };
    // A document that does not scan or parse is refused by the schema's
    // own checks below, as over POST.
    let is_mutation = crate::graphql::parse_document(&graphql.query).is_ok_and(|document| {
        document
            .operations
            .iter()
            .any(|(_, operation)| operation.node.ty != OperationType::Query)
    });
    if is_mutation {
        let mut refused = protocol::refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_USER_INPUT",
            "only queries may be sent with GET; send mutations with POST",
        );
        refused
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return refused;
    }
    if let Err(wait) = within_rate(&state, &authentication) {
        return rate::too_many(wait);
    }
    protocol::answer(media, state.schema.execute(graphql.data(authentication)).await)
}

async fn websocket(state: AppState, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    if !origin_allowed(&state.cors_allowed_origins, &parts.headers) {
        return protocol::refusal(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "this Origin is not in CORS_ALLOWED_ORIGINS",
        );
    }
    let offered = parts
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|protocol| protocol.trim().eq_ignore_ascii_case(ws::WS_PROTOCOL));
    if !offered {
        let message = format!("Sec-WebSocket-Protocol must offer {}", ws::WS_PROTOCOL);
        return protocol::refusal(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", message);
    }
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let shared = state.ws.clone();
    upgrade
        .protocols([ws::WS_PROTOCOL])
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        // 0: every message is written out at once, no buffer kept idle.
        .write_buffer_size(0)
        .max_write_buffer_size(WS_WRITE_BUFFER_MAX_BYTES)
        .max_message_size(WS_MESSAGE_MAX_BYTES)
        .max_frame_size(WS_MESSAGE_MAX_BYTES)
        .on_upgrade(move |socket| ws::serve(shared, socket))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        headers
    }

    #[test]
    fn websocket_origins_follow_the_list() {
        let listed = ["https://app.example.com".to_owned()];
        let table = [
            (&listed[..], Some("https://app.example.com"), true),
            (&listed[..], Some("https://evil.example.com"), false),
            (&listed[..], Some("http://app.example.com"), false),
            // The server's own pages (GraphiQL, the console).
            (&listed[..], Some("http://credits.internal:8080"), true),
            (&listed[..], Some("http://credits.internal:9090"), false),
            // Not a browser.
            (&listed[..], None, true),
            // No list: the token is the only gate, as over HTTP.
            (&[][..], Some("https://evil.example.com"), true),
        ];
        for (origins, origin, allowed) in table {
            assert_eq!(
                origin_allowed(origins, &headers(origin, "credits.internal:8080")),
                allowed,
                "{origin:?} with {origins:?}"
            );
        }
    }
}
