//! `AppError`: the one error type at the boundary, mapped once to a GraphQL
//! `extensions.code`, a client message and an HTTP status.
//!
//! Internal and Unavailable causes are logged here, once, and never shown:
//! a client sees a generic message, never SQL or another workspace's id.

use async_graphql::ErrorExtensions;
use axum::http::StatusCode;

use domain::DomainError;

/// Everything that can stop a request from being carried out. Expected
/// refusals of a spend (insufficient credits, duplicates) are outcomes, not
/// errors.
///
/// It deliberately implements neither `Display` nor `std::error::Error`:
/// async-graphql converts any `Display` into a client-visible error with `?`,
/// which would drop the code and could leak a cause. Resolvers must go
/// through [`AppError::into_graphql`] (or [`GraphqlResult::gql`]).
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
            AppError::LimitExceeded { .. } => "LIMIT_EXCEEDED",
            AppError::Unavailable(_) => "SERVICE_UNAVAILABLE",
            AppError::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The HTTP status for answers given outside GraphQL execution.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::InvalidInput { .. } => StatusCode::BAD_REQUEST,
            AppError::IdempotencyConflict(_) => StatusCode::CONFLICT,
            AppError::LimitExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message a client sees: what was wrong, never an internal cause.
    pub fn message(&self) -> String {
        match self {
            AppError::Unauthenticated(why) => format!("authentication required: {why}"),
            AppError::Forbidden(what) => format!("this token's role may not {what}"),
            AppError::NotFound(what) => format!("{what} not found"),
            AppError::InvalidInput { field, reason } => format!("{field} {reason}"),
            AppError::IdempotencyConflict(message) => message.clone(),
            AppError::LimitExceeded { what, .. } => format!("limit exceeded: {what}"),
            AppError::Unavailable(_) => "the service is temporarily unavailable; retry later".to_owned(),
            AppError::Internal(_) => "internal error".to_owned(),
        }
    }

    /// Logs a hidden cause once, with its chain.
    fn log(&self) {
        match self {
            AppError::Unavailable(cause) => {
                tracing::warn!(error = format!("{cause:#}"), "database unavailable")
            }
            AppError::Internal(cause) => tracing::error!(error = format!("{cause:#}"), "internal error"),
            _ => {}
        }
    }

    /// Converts into the GraphQL error a client sees.
    pub fn into_graphql(self) -> async_graphql::Error {
        self.log();
        let code = self.code();
        let field = match &self {
            AppError::InvalidInput { field, .. } => Some(*field),
            _ => None,
        };
        let retry_after = match &self {
            AppError::LimitExceeded {
                retry_after_seconds, ..
            } => *retry_after_seconds,
            _ => None,
        };
        async_graphql::Error::new(self.message()).extend_with(|_, extensions| {
            extensions.set("code", code);
            if let Some(field) = field {
                extensions.set("field", field);
            }
            if let Some(seconds) = retry_after {
                extensions.set("retryAfterSeconds", seconds);
            }
        })
    }
}

/// A store error as the service answers it: Unavailable (the client may
/// retry) or Internal. Takes raw driver errors too, for the write path's
/// transactions that `service` still drives itself.
pub fn db_error(error: impl Into<crate::store::Error>) -> AppError {
    AppError::from(error.into())
}

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

/// Converts a service result at the resolver boundary.
pub trait GraphqlResult<T> {
    /// Maps the error through the single mapping above.
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> GraphqlResult<T> for Result<T, AppError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(AppError::into_graphql)
    }
}

/// Result alias for service and resolver code.
pub type AppResult<T> = Result<T, AppError>;
