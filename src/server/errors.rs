//! asofdb errors as PostgreSQL ErrorResponses: the one place SQLSTATEs reach the wire.

use pgwire::error::{ErrorInfo, PgWireError};

use crate::error::{Error, SqlState};

/// The ErrorResponse fields for `error`. Internal errors are logged in full and reported
/// with their message only.
pub fn error_info(error: &Error) -> ErrorInfo {
    if matches!(error, Error::Internal(_) | Error::Storage(_)) {
        tracing::error!("{error:?}");
    } else if matches!(error, Error::DiskFull(_)) {
        tracing::warn!("{error}");
    }
    ErrorInfo::new("ERROR".to_owned(), error.sqlstate().to_owned(), error.to_string())
}

/// An error that ends the connection (severity FATAL): refused logins and connections.
pub fn fatal(sqlstate: SqlState, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("FATAL".to_owned(), sqlstate.code().to_owned(), message.into())))
}

pub fn to_pgwire(error: Error) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&error)))
}

impl From<Error> for PgWireError {
    fn from(error: Error) -> Self {
        to_pgwire(error)
    }
}
