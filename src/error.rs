//! `AppError`: the one error type at the boundary: its stable code (the
//! contract's `extensions.code`) and the message a client sees. How it is
//! answered is chosen where it is answered: `graphql::errors` builds the
//! GraphQL error, `http::status_of` the HTTP status.
//!
//! Internal and Unavailable causes are logged here, once, and never shown:
//! a client sees a generic message, never SQL or another workspace's id.

use domain::DomainError;

/// Everything that can stop a request from being carried out. Expected
/// refusals of a spend (insufficient credits, duplicates) are outcomes, not
/// errors.
///
/// It deliberately implements neither `Display` nor `std::error::Error`:
/// async-graphql converts any `Display` into a client-visible error with `?`,
/// which would drop the code and could leak a cause. Resolvers go through
/// `graphql::errors` (`.gql()`).
#[derive(Debug)]
pub enum AppError {
    /// No valid token.
    Unauthenticated(&'static str),
    /// A valid token whose role may not do this.
    Forbidden(&'static str),
    /// No such thing, or another workspace's thing (indistinguishable).
    NotFound(&'static str),
    /// Bad input: which field, what was wrong.
    InvalidInput {
        /// The public name of the field.
        field: &'static str,
        /// What was wrong, with the limit.
        reason: String,
    },
    /// An idempotency key reused with a different request.
    IdempotencyConflict(String),
    /// A hold already captured, released or expired (the message says
    /// which and when); nothing was written.
    HoldNotActive(String),
    /// A quota that protects other workspaces is used up (`what` says
    /// which, with its limit); `retry_after_seconds` when it frees itself.
    LimitExceeded {
        /// The quota and its limit.
        what: String,
        /// When retrying may succeed, if it frees itself with time.
        retry_after_seconds: Option<u64>,
    },
    /// The database is unreachable or overloaded; retry later.
    Unavailable(anyhow::Error),
    /// A bug or an impossible state.
    Internal(anyhow::Error),
}

impl AppError {
    /// Shorthand for a quota used up.
    pub fn limit(what: impl Into<String>, retry_after_seconds: Option<u64>) -> Self {
        Self::LimitExceeded {
            what: what.into(),
            retry_after_seconds,
        }
    }

    /// Shorthand for bad input.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// The stable `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated(_) => "UNAUTHENTICATED",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::InvalidInput { .. } => "BAD_USER_INPUT",
            AppError::IdempotencyConflict(_) => "IDEMPOTENCY_CONFLICT",
            AppError::HoldNotActive(_) => "HOLD_NOT_ACTIVE",
            AppError::LimitExceeded { .. } => "LIMIT_EXCEEDED",
            AppError::Unavailable(_) => "SERVICE_UNAVAILABLE",
            AppError::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The message a client sees: what was wrong, never an internal cause.
    pub fn message(&self) -> String {
        match self {
            AppError::Unauthenticated(why) => format!("authentication required: {why}"),
            AppError::Forbidden(what) => format!("this token's role may not {what}"),
            AppError::NotFound(what) => format!("{what} not found"),
            AppError::InvalidInput { field, reason } => format!("{field} {reason}"),
            AppError::IdempotencyConflict(message) | AppError::HoldNotActive(message) => message.clone(),
            AppError::LimitExceeded { what, .. } => format!("limit exceeded: {what}"),
            AppError::Unavailable(_) => "the service is temporarily unavailable; retry later".to_owned(),
            AppError::Internal(_) => "internal error".to_owned(),
        }
    }

    /// Logs a hidden cause once, with its chain (`http` and `graphql` call
    /// it as they answer; the scheduler as it gives up).
    pub fn log(&self) {
        match self {
            AppError::Unavailable(cause) => {
                tracing::warn!(error = format!("{cause:#}"), "database unavailable")
            }
            AppError::Internal(cause) => tracing::error!(error = format!("{cause:#}"), "internal error"),
            _ => {}
        }
    }
}

/// A store error as the service answers it: Unavailable (the client may
/// retry) or Internal; `?` carries it.
impl From<crate::store::Error> for AppError {
    fn from(error: crate::store::Error) -> Self {
        match error {
            crate::store::Error::Unavailable(_) => AppError::Unavailable(anyhow::Error::new(error)),
            crate::store::Error::Conflict { .. } | crate::store::Error::Internal(_) => {
                AppError::Internal(anyhow::Error::new(error))
            }
        }
    }
}

impl From<DomainError> for AppError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::Invalid { field, reason } => AppError::InvalidInput { field, reason },
        }
    }
}

/// Result alias for service and resolver code.
pub type AppResult<T> = Result<T, AppError>;
