//! asofdb errors as PostgreSQL ErrorResponses: the one place SQLSTATEs reach the wire.

use pgwire::error::{ErrorInfo, PgWireError};

use crate::error::Error;

/// The ErrorResponse fields for `error`. Internal errors are logged in full and reported
/// with their message only.
pub fn error_info(error: &Error) -> ErrorInfo {
    if matches!(error, Error::Internal(_) | Error::Storage(_)) {
        tracing::error!("{error:?}");
    }
    ErrorInfo::new("ERROR".to_owned(), error.sqlstate().to_owned(), error.to_string())
}

pub fn to_pgwire(error: Error) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&error)))
}

impl From<Error> for PgWireError {
    fn from(error: Error) -> Self {
        to_pgwire(error)
    }
}
