//! `GET /export/transactions.csv?workspaceId=…&from=…&to=…`: a period's
//! transactions as CSV for billing staff, authorized exactly like the
//! `wallet` query (the bearer token's workspace, or any for operators).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{AppState, authenticate_headers};
use crate::auth::{Operation, authorize};
use crate::error::AppError;
use crate::graphql::Authentication;
use crate::service::{Export, TransactionView};
use axum::body::{Body, Bytes};
use domain::ids::WorkspaceId;

/// The query string.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportQuery {
    workspace_id: Option<String>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

pub(super) fn refuse(error: AppError) -> Response {
    let status = super::status_of(&error);
    let body = serde_json::json!({ "errors": [{ "message": error.message(), "extensions": { "code": error.code() } }] });
    error.log();
    (status, axum::Json(body)).into_response()
}

/// A free-text cell a spreadsheet would read as a formula (`=`, `+`, `-`,
/// `@`, after any spaces or line breaks; or a tab, carriage return or line
/// feed at all) gets a leading `'`, as
/// OWASP's CSV-injection guidance says: `=HYPERLINK(…)` in a reference, a
/// key or a token's subject reaches billing staff as text. Numbers and
/// enum names are written by the service and need none.
fn neutralise(cell: String) -> String {
    // Whitespace before a formula does not make it text: spreadsheets trim it.
    let first = cell.trim_start_matches([' ', '\t', '\r', '\n']);
    if cell.starts_with(['\t', '\r', '\n']) || first.starts_with(['=', '+', '-', '@']) {
        format!("'{cell}")
    } else {
        cell
    }
}

const HEADER: [&str; 11] = [
    "id",
    "sequence",
    "created_at",
    "kind",
    "amount",
    "balance_after",
    "action",
    "reference",
    "actor",
    "idempotency_key",
    "reverses_transaction_id",
];

/// `rows` as CSV lines (with the header line first when `header`).
fn to_csv(rows: &[TransactionView], header: bool) -> Result<Vec<u8>, AppError> {
    let internal = |error: csv::Error| AppError::Internal(anyhow::Error::new(error));
    let mut writer = csv::Writer::from_writer(Vec::new());
    if header {
        writer.write_record(HEADER).map_err(internal)?;
    }
    for row in rows {
        writer
            .write_record([
                row.id.to_string(),
                row.sequence.to_string(),
                row.created_at.to_rfc3339(),
                row.kind.as_str().to_owned(),
                row.amount.to_string(),
                row.balance_after.to_string(),
                row.action
                    .map(|action| action.as_str().to_owned())
                    .unwrap_or_default(),
                neutralise(row.reference.clone().unwrap_or_default()),
                neutralise(row.actor.clone()),
                neutralise(row.idempotency_key.clone().unwrap_or_default()),
                row.reverses_transaction_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
            ])
            .map_err(internal)?;
    }
    writer
        .into_inner()
        .map_err(|error| AppError::Internal(anyhow::anyhow!("{error}")))
}

/// The export as a body written a page at a time: memory stays at one
/// page whatever the period. A failure after the first bytes ends the
/// body early (the client sees a cut transfer), logged.
fn streamed(export: Export) -> Body {
    let pages = futures_util::stream::unfold(Some((export, true)), |state| async move {
        let (mut export, first) = state?;
        match export.next_page().await {
            Ok(page) => {
                let rows = page.unwrap_or_default();
                if rows.is_empty() && !first {
                    return None;
                }
                match to_csv(&rows, first) {
                    Ok(bytes) => Some((Ok::<_, std::io::Error>(Bytes::from(bytes)), Some((export, false)))),
                    Err(error) => Some((Err(std::io::Error::other(error.message())), None)),
                }
            }
            Err(error) => {
                let message = error.message();
                error.log();
                Some((Err(std::io::Error::other(message)), None))
            }
        }
    });
    Body::from_stream(pages)
}

/// The handler.
pub async fn export_transactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let caller = match authenticate_headers(&state.verifier, &headers) {
        Authentication::Caller(caller) => caller,
        Authentication::Refused(reason) => return refuse(AppError::Unauthenticated(reason)),
        Authentication::Anonymous => {
            return refuse(AppError::Unauthenticated("no bearer token was presented"));
        }
    };
    let Ok(Query(query)) = query else {
        return refuse(AppError::invalid(
            "query",
            "needs from and to as RFC 3339 times, and optionally workspaceId",
        ));
    };
    for (field, instant) in [("from", query.from), ("to", query.to)] {
        if let Err(error) = domain::usage::check_instant(field, instant) {
            return refuse(error.into());
        }
    }
    let scope = match query
        .workspace_id
        .as_deref()
        .map(|raw| WorkspaceId::parse("workspaceId", raw))
        .transpose()
        .map_err(AppError::from)
        .and_then(|requested| authorize(&caller, requested, Operation::Read))
    {
        Ok(scope) => scope,
        Err(error) => return refuse(error),
    };
    match state.ledger.export(&scope, query.from, query.to).await {
        Ok(export) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"transactions-{}.csv\"",
                        scope.workspace_id()
                    ),
                ),
            ],
            streamed(export),
        )
            .into_response(),
        Err(error) => refuse(error),
    }
}

#[cfg(test)]
mod tests {
    use super::neutralise;

    #[test]
    fn formula_cells_become_text() {
        for (cell, written) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("\n=1", "'\n=1"),
            ("\nplain", "'\nplain"),
            ("   =1+1", "'   =1+1"),
            (" @SUM(A1)", "' @SUM(A1)"),
            (" ticket", " ticket"),
            ("ticket 7", "ticket 7"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(neutralise(cell.to_owned()), written, "{cell:?}");
        }
    }
}
