//! An `AppError` as the GraphQL error a client sees: its message, its
//! `extensions.code`, and `field` or `retryAfterSeconds` where they apply.
//! The cause of an internal error is logged, never shown.

use async_graphql::ErrorExtensions;

use crate::error::AppError;

/// The GraphQL error of an `AppError`.
pub trait IntoGraphql {
    /// Logs a hidden cause once, then builds the error a client sees.
    fn into_graphql(self) -> async_graphql::Error;
}

impl IntoGraphql for AppError {
    fn into_graphql(self) -> async_graphql::Error {
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

/// Converts a service result at the resolver boundary.
pub trait GraphqlResult<T> {
    /// Maps the error through [`IntoGraphql`].
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> GraphqlResult<T> for Result<T, AppError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(IntoGraphql::into_graphql)
    }
}
