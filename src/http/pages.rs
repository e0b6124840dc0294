//! The HTML pages, GraphiQL at `/` and the live balance page at `/console`,
//! and everything they load, compiled into the binary: no CDN, nothing
//! fetched from elsewhere, so the pages work on a network without
//! internet. Each page carries a Content-Security-Policy that allows this
//! origin only (`docs/design/hostile-input.md`). The GraphiQL bundle is
//! rebuilt by `assets/graphiql/vendor.sh`.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::protocol::refusal;

/// Scripts and styles from this origin only (styles may be inline: the
/// pages' own `<style>` and GraphiQL's style attributes); fonts and images
/// may be `data:` (GraphiQL embeds its fonts); nothing may frame a page.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// An HTML page with the security headers.
fn page(html: &'static str) -> Response {
    let mut response = html.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn script(js: &'static str) -> Response {
    let mut response = js.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// GraphiQL.
pub async fn graphiql() -> Response {
    page(include_str!("pages/graphiql.html"))
}

/// GraphiQL's set-up: the fetcher for this endpoint.
pub async fn graphiql_js() -> Response {
    script(include_str!("pages/graphiql.js"))
}

/// The live balance page.
pub async fn console() -> Response {
    page(include_str!("pages/console.html"))
}

/// The live balance page's script.
pub async fn console_js() -> Response {
    script(include_str!("pages/console.js"))
}

/// The client kit's live balance (`clients/typescript/src/live.ts`,
/// bundled by its `npm run build`), which the console imports.
pub async fn live_js() -> Response {
    script(include_str!("pages/live.js"))
}

/// The vendored GraphiQL and React bundles, stored gzip-compressed (every
/// browser accepts gzip; a client that says it does not gets 406).
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let (body, content_type): (&'static [u8], &'static str) = match name.as_str() {
        "graphiql.js" => (
            include_bytes!("../../assets/graphiql/graphiql.js.gz"),
            "text/javascript; charset=utf-8",
        ),
        "graphiql.css" => (
            include_bytes!("../../assets/graphiql/graphiql.css.gz"),
            "text/css; charset=utf-8",
        ),
        "react.js" => (
            include_bytes!("../../assets/graphiql/react.js.gz"),
            "text/javascript; charset=utf-8",
        ),
        "react-dom.js" => (
            include_bytes!("../../assets/graphiql/react-dom.js.gz"),
            "text/javascript; charset=utf-8",
        ),
        _ => return refusal(StatusCode::NOT_FOUND, "NOT_FOUND", "no such asset"),
    };
    let gzip = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|parameter| parameter.trim().replace(' ', "") == "q=0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        });
    if !gzip {
        return refusal(
            StatusCode::NOT_ACCEPTABLE,
            "BAD_USER_INPUT",
            "this asset is served gzip-compressed; send Accept-Encoding: gzip",
        );
    }
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    // The bundles change only with the binary.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}
