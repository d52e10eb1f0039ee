//! The one error type of asofdb, and its mapping to PostgreSQL SQLSTATE codes.
//!
//! Variants are named for what the caller should do about them. Call sites that choose a
//! SQLSTATE name its condition ([`SqlState`]); the codes are written here and nowhere else,
//! and the wire layer (`server::errors`) only copies them into an ErrorResponse.

use datafusion::error::DataFusionError;

/// The SQLSTATEs asofdb raises, by PostgreSQL's condition names (Appendix A of its manual).
/// Call sites name the condition; only this file knows the codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlState {
    /// 00000
    SuccessfulCompletion,
    /// 08001
    SqlclientUnableToEstablishSqlconnection,
    /// 08P01
    ProtocolViolation,
    /// 0A000
    FeatureNotSupported,
    /// 21000
    CardinalityViolation,
    /// 22001
    StringDataRightTruncation,
    /// 22003
    NumericValueOutOfRange,
    /// 22004
    NullValueNotAllowed,
    /// 22007
    InvalidDatetimeFormat,
    /// 22008
    DatetimeFieldOverflow,
    /// 22012
    DivisionByZero,
    /// 22021
    CharacterNotInRepertoire,
    /// 22023
    InvalidParameterValue,
    /// 22P02
    InvalidTextRepresentation,
    /// 22P04
    BadCopyFileFormat,
    /// 23502
    NotNullViolation,
    /// 24000
    InvalidCursorState,
    /// 25001
    ActiveSqlTransaction,
    /// 25P01
    NoActiveSqlTransaction,
    /// 25P02
    InFailedSqlTransaction,
    /// 28000
    InvalidAuthorizationSpecification,
    /// 28P01
    InvalidPassword,
    /// 2BP01
    DependentObjectsStillExist,
    /// 34000
    InvalidCursorName,
    /// 3B001
    InvalidSavepointSpecification,
    /// 3F000
    InvalidSchemaName,
    /// 42601
    SyntaxError,
    /// 42602
    InvalidName,
    /// 42701
    DuplicateColumn,
    /// 42710
    DuplicateObject,
    /// 42501
    InsufficientPrivilege,
    /// 0LP01
    InvalidGrantOperation,
    /// 55P02
    CantChangeRuntimeParam,
    /// 42939
    ReservedName,
    /// 42702
    AmbiguousColumn,
    /// 42703
    UndefinedColumn,
    /// 42704
    UndefinedObject,
    /// 42803
    GroupingError,
    /// 42804
    DatatypeMismatch,
    /// 42809
    WrongObjectType,
    /// 42883
    UndefinedFunction,
    /// 42P01
    UndefinedTable,
    /// 42P02
    UndefinedParameter,
    /// 42P03
    DuplicateCursor,
    /// 42P07
    DuplicateTable,
    /// 42P16
    InvalidTableDefinition,
    /// 53100
    DiskFull,
    /// 53200
    OutOfMemory,
    /// 53300
    TooManyConnections,
    /// 54000
    ProgramLimitExceeded,
    /// 54011
    TooManyColumns,
    /// 55000
    ObjectNotInPrerequisiteState,
    /// 55006
    ObjectInUse,
    /// 57014
    QueryCanceled,
    /// 57P03
    CannotConnectNow,
    /// 58030
    IoError,
    /// 58P01
    UndefinedFile,
    /// 58P02
    DuplicateFile,
    /// F0000
    ConfigFileError,
    /// XX000
    InternalError,
}

impl SqlState {
    /// The five-character code.
    pub fn code(self) -> &'static str {
        match self {
            SqlState::SuccessfulCompletion => "00000",
            SqlState::SqlclientUnableToEstablishSqlconnection => "08001",
            SqlState::ProtocolViolation => "08P01",
            SqlState::FeatureNotSupported => "0A000",
            SqlState::CardinalityViolation => "21000",
            SqlState::StringDataRightTruncation => "22001",
            SqlState::NumericValueOutOfRange => "22003",
            SqlState::NullValueNotAllowed => "22004",
            SqlState::InvalidDatetimeFormat => "22007",
            SqlState::DatetimeFieldOverflow => "22008",
            SqlState::DivisionByZero => "22012",
            SqlState::CharacterNotInRepertoire => "22021",
            SqlState::InvalidParameterValue => "22023",
            SqlState::InvalidTextRepresentation => "22P02",
            SqlState::BadCopyFileFormat => "22P04",
            SqlState::NotNullViolation => "23502",
            SqlState::InvalidCursorState => "24000",
            SqlState::ActiveSqlTransaction => "25001",
            SqlState::NoActiveSqlTransaction => "25P01",
            SqlState::InFailedSqlTransaction => "25P02",
            SqlState::InvalidAuthorizationSpecification => "28000",
            SqlState::InvalidPassword => "28P01",
            SqlState::DependentObjectsStillExist => "2BP01",
            SqlState::InvalidCursorName => "34000",
            SqlState::InvalidSavepointSpecification => "3B001",
            SqlState::InvalidSchemaName => "3F000",
            SqlState::SyntaxError => "42601",
            SqlState::InvalidName => "42602",
            SqlState::DuplicateColumn => "42701",
            SqlState::DuplicateObject => "42710",
            SqlState::InsufficientPrivilege => "42501",
            SqlState::InvalidGrantOperation => "0LP01",
            SqlState::CantChangeRuntimeParam => "55P02",
            SqlState::ReservedName => "42939",
            SqlState::AmbiguousColumn => "42702",
            SqlState::UndefinedColumn => "42703",
            SqlState::UndefinedObject => "42704",
            SqlState::GroupingError => "42803",
            SqlState::DatatypeMismatch => "42804",
            SqlState::WrongObjectType => "42809",
            SqlState::UndefinedFunction => "42883",
            SqlState::UndefinedTable => "42P01",
            SqlState::UndefinedParameter => "42P02",
            SqlState::DuplicateCursor => "42P03",
            SqlState::DuplicateTable => "42P07",
            SqlState::InvalidTableDefinition => "42P16",
            SqlState::DiskFull => "53100",
            SqlState::OutOfMemory => "53200",
            SqlState::TooManyConnections => "53300",
            SqlState::ProgramLimitExceeded => "54000",
            SqlState::TooManyColumns => "54011",
            SqlState::ObjectNotInPrerequisiteState => "55000",
            SqlState::ObjectInUse => "55006",
            SqlState::QueryCanceled => "57014",
            SqlState::CannotConnectNow => "57P03",
            SqlState::IoError => "58030",
            SqlState::UndefinedFile => "58P01",
            SqlState::DuplicateFile => "58P02",
            SqlState::ConfigFileError => "F0000",
            SqlState::InternalError => "XX000",
        }
    }
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while serving a statement.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The statement text does not parse (42601).
    #[error("{0}")]
    Syntax(String),
    /// A literal or input value cannot be converted to its column type. Carries its own
    /// SQLSTATE (22P02 invalid text, 22007 bad datetime, 22003 out of range, 22001 too long).
    #[error("{message}")]
    InvalidValue { sqlstate: SqlState, message: String },
    /// A NULL where the column forbids it (23502).
    #[error("{0}")]
    NullViolation(String),
    /// A name that does not resolve: table (42P01), column (42703), type (42704), feature.
    #[error("{message}")]
    NotFound { sqlstate: SqlState, message: String },
    /// A name that already exists (42P07) or an object in use (2BP01).
    #[error("{message}")]
    Conflict { sqlstate: SqlState, message: String },
    /// Well-formed but meaningless: wrong arity, bad option, type mismatch (42601/42804/22023...).
    #[error("{message}")]
    InvalidInput { sqlstate: SqlState, message: String },
    /// The session's role may not do this (42501).
    #[error("{0}")]
    PermissionDenied(String),
    /// Something PostgreSQL has that asofdb deliberately does not do (0A000).
    #[error("{0}")]
    Unsupported(String),
    /// The transaction failed earlier; only ROLLBACK/COMMIT are accepted (25P02).
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    TransactionAborted,
    /// An upstream system (a source's broker or database) cannot be reached (08001).
    #[error("{0}")]
    Unreachable(String),
    /// A memory or size limit was hit (53200).
    #[error("{0}")]
    ResourcesExhausted(String),
    /// The statement was cancelled by the client (57014).
    #[error("canceling statement due to user request")]
    Cancelled,
    /// The statement ran past `statement_timeout` (57014).
    #[error("canceling statement due to statement timeout")]
    StatementTimeout,
    /// Storage failed (disk, corruption). The details go to the log (58030 / XX001).
    #[error("storage error: {0}")]
    Storage(String),
    /// A write found the disk (or the quota) full, or free space below the reserve (53100).
    #[error("{0}")]
    DiskFull(String),
    /// A bug: an invariant did not hold (XX000).
    #[error("internal error: {0}")]
    Internal(String),
    /// An error from the query engine, classified lazily by `sqlstate()`.
    #[error("{}", datafusion_message(.0))]
    DataFusion(#[from] DataFusionError),
}

impl Error {
    /// The PostgreSQL SQLSTATE code for this error.
    pub fn sqlstate(&self) -> &'static str {
        self.state().code()
    }

    /// The condition this error raises.
    pub fn state(&self) -> SqlState {
        match self {
            Error::Syntax(_) => SqlState::SyntaxError,
            Error::InvalidValue { sqlstate, .. }
            | Error::NotFound { sqlstate, .. }
            | Error::Conflict { sqlstate, .. }
            | Error::InvalidInput { sqlstate, .. } => *sqlstate,
            Error::NullViolation(_) => SqlState::NotNullViolation,
            Error::Unsupported(_) => SqlState::FeatureNotSupported,
            Error::PermissionDenied(_) => SqlState::InsufficientPrivilege,
            Error::TransactionAborted => SqlState::InFailedSqlTransaction,
            Error::Unreachable(_) => SqlState::SqlclientUnableToEstablishSqlconnection,
            Error::ResourcesExhausted(_) => SqlState::OutOfMemory,
            Error::Cancelled | Error::StatementTimeout => SqlState::QueryCanceled,
            Error::Storage(_) => SqlState::IoError,
            Error::DiskFull(_) => SqlState::DiskFull,
            Error::Internal(_) => SqlState::InternalError,
            Error::DataFusion(e) => datafusion_sqlstate(e),
        }
    }

    /// The HTTP status of a request that failed with this error (`http`): the client's
    /// fault (bad input, unknown names, unsupported) is 400, a refused login 401, a request
    /// past a limit 413, a lack of resources or a server going down 503, anything else 500.
    pub fn http_status(&self) -> u16 {
        let code = self.sqlstate();
        if code == "42501" {
            return 403;
        }
        match &code[..2] {
            "22" | "23" | "42" | "0A" => 400,
            "28" => 401,
            "54" => 413,
            "53" | "57" => 503,
            _ => 500,
        }
    }

    pub fn syntax(message: impl Into<String>) -> Self {
        Error::Syntax(message.into())
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Error::Unsupported(message.into())
    }

    /// An internal error for a thread or task that panicked: `what` and what its panic said.
    /// A data exception (class 22) or integrity violation (class 23): the input's fault, not
    /// the database's.
    pub fn is_bad_data(&self) -> bool {
        matches!(&self.sqlstate()[..2], "22" | "23")
    }

    pub fn panicked(what: &str, payload: &(dyn std::any::Any + Send)) -> Self {
        Self::internal(format!("{what} panicked: {}", panic_text(payload)))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into())
    }

    pub fn invalid_input(sqlstate: SqlState, message: impl Into<String>) -> Self {
        Error::InvalidInput { sqlstate, message: message.into() }
    }

    /// A bad-value error from inside a DataFusion function, which DataFusion carries back
    /// whole (`DataFusionError::External`), so the SQLSTATE survives.
    pub fn in_datafusion(sqlstate: SqlState, message: impl Into<String>) -> datafusion::error::DataFusionError {
        datafusion::error::DataFusionError::External(Box::new(Self::invalid_input(sqlstate, message)))
    }

    pub fn invalid_value(sqlstate: SqlState, message: impl Into<String>) -> Self {
        Error::InvalidValue { sqlstate, message: message.into() }
    }

    /// The same error, its message followed by where it happened: `... (row 3)`.
    pub fn at(self, place: &str) -> Self {
        Error::InvalidValue { sqlstate: self.state(), message: format!("{self} ({place})") }
    }

    pub fn undefined_table(name: &str) -> Self {
        Error::NotFound { sqlstate: SqlState::UndefinedTable, message: format!("relation \"{name}\" does not exist") }
    }

    pub fn undefined_column(name: &str, table: &str) -> Self {
        Error::NotFound {
            sqlstate: SqlState::UndefinedColumn,
            message: format!("column \"{name}\" of relation \"{table}\" does not exist"),
        }
    }

    pub fn undefined_type(name: &str) -> Self {
        Error::NotFound { sqlstate: SqlState::UndefinedObject, message: format!("type \"{name}\" does not exist") }
    }

    /// A feature or source over a table without an event-time column (42809).
    pub fn no_event_time(table: &str) -> Self {
        Error::InvalidInput {
            sqlstate: SqlState::WrongObjectType,
            message: format!("table \"{table}\" has no event-time column: create it WITH (event_time = '<column>')"),
        }
    }

    pub fn duplicate_table(name: &str) -> Self {
        Error::Conflict { sqlstate: SqlState::DuplicateTable, message: format!("relation \"{name}\" already exists") }
    }
}

impl From<sqlparser::parser::ParserError> for Error {
    fn from(e: sqlparser::parser::ParserError) -> Self {
        let text = match e {
            sqlparser::parser::ParserError::TokenizerError(s) | sqlparser::parser::ParserError::ParserError(s) => s,
            sqlparser::parser::ParserError::RecursionLimitExceeded => {
                return Error::ResourcesExhausted("statement is nested too deeply".into());
            }
        };
        Error::Syntax(format!("syntax error: {text}"))
    }
}

impl From<sqlparser::tokenizer::TokenizerError> for Error {
    fn from(e: sqlparser::tokenizer::TokenizerError) -> Self {
        Error::Syntax(format!("syntax error: {e}"))
    }
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) if is_disk_full(&io) => {
                // sled then refuses every later write until the process restarts.
                Error::DiskFull(format!("could not write to disk: {io}; free disk space and restart the server"))
            }
            e => Error::Storage(e.to_string()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        if is_disk_full(&e) {
            Error::DiskFull(format!("could not write to disk: {e}"))
        } else {
            Error::Storage(e.to_string())
        }
    }
}

/// Whether a write failed for want of space: ENOSPC, or EDQUOT under a quota.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::DataFusion(DataFusionError::ArrowError(Box::new(e), None))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Storage(format!("corrupt catalog entry: {e}"))
    }
}

/// Strips DataFusion's own prefixes ("Error during planning: ...") so users read the message only.
fn datafusion_message(e: &DataFusionError) -> String {
    match root_cause(e) {
        // What is left of a subquery DataFusion could not turn into a join.
        DataFusionError::NotImplemented(m)
            if m.contains("ScalarSubquery") || m.contains("InSubquery") || m.contains("Exists") =>
        {
            "subqueries correlated other than by equality are not supported here (rewrite as a join)".into()
        }
        DataFusionError::Execution(m) if m.contains("subquery returned more than one row") => {
            "more than one row returned by a subquery used as an expression".into()
        }
        // PostgreSQL allows columns of one name anywhere; DataFusion names expressions by
        // their text without casts, so `sum(x::float8), sum(x::numeric)` collide too.
        e if duplicate_names(e) => format!(
            "two expressions named alike inside one query are not supported here ({}); alias one, or compute \
             aggregates that differ only by a cast in separate subqueries",
            match e {
                DataFusionError::SchemaError(se, _) => se.to_string(),
                DataFusionError::Plan(m) => m.clone(),
                other => other.to_string(),
            }
        ),
        DataFusionError::Plan(m)
        | DataFusionError::Execution(m)
        | DataFusionError::NotImplemented(m)
        | DataFusionError::ResourcesExhausted(m)
        | DataFusionError::Configuration(m) => m.clone(),
        DataFusionError::SQL(e, _) => format!("syntax error: {e}"),
        DataFusionError::SchemaError(e, _) => e.to_string(),
        DataFusionError::ArrowError(e, _) => arrow_message(e),
        // Our own errors raised inside DataFusion (scans, ASOF joins) keep their message.
        DataFusionError::External(e) => e.to_string(),
        other => other.to_string(),
    }
}

fn arrow_message(e: &arrow::error::ArrowError) -> String {
    use arrow::error::ArrowError;
    match e {
        ArrowError::CastError(m)
        | ArrowError::ParseError(m)
        | ArrowError::ComputeError(m)
        | ArrowError::InvalidArgumentError(m) => m.clone(),
        ArrowError::DivideByZero => "division by zero".into(),
        other => other.to_string(),
    }
}

/// Follows `Context`, `Shared` and `Diagnostic` wrappers to the error that says what happened.
fn root_cause(e: &DataFusionError) -> &DataFusionError {
    match e {
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => root_cause(inner),
        DataFusionError::Shared(inner) => root_cause(inner),
        // Several errors found in one pass (planning reports every unknown column): the
        // first decides.
        DataFusionError::Collection(errors) if !errors.is_empty() => root_cause(&errors[0]),
        other => other,
    }
}

/// DataFusion's refusal of two output expressions of one name in a plan node.
fn duplicate_names(e: &DataFusionError) -> bool {
    use datafusion::common::SchemaError;
    match e {
        DataFusionError::SchemaError(se, _) => matches!(se.as_ref(), SchemaError::DuplicateUnqualifiedField { .. }),
        DataFusionError::Plan(m) => m.starts_with("Projections require unique expression names"),
        _ => false,
    }
}

/// Arrow's and DataFusion's words for a time they cannot compute with.
fn is_time_out_of_range(message: &str) -> bool {
    (message.contains("out of range") && message.to_ascii_lowercase().contains("timestamp"))
        || message.contains("to datetime")
}

fn datafusion_sqlstate(e: &DataFusionError) -> SqlState {
    use datafusion::common::SchemaError;
    if duplicate_names(root_cause(e)) {
        return SqlState::FeatureNotSupported;
    }
    match root_cause(e) {
        DataFusionError::SQL(..) => SqlState::SyntaxError,
        DataFusionError::SchemaError(se, _) => match se.as_ref() {
            SchemaError::FieldNotFound { .. } => SqlState::UndefinedColumn,
            SchemaError::AmbiguousReference { .. } => SqlState::AmbiguousColumn,
            SchemaError::DuplicateQualifiedField { .. } | SchemaError::DuplicateUnqualifiedField { .. } => {
                SqlState::DuplicateColumn
            }
        },
        DataFusionError::Plan(m) => {
            if m.contains("not found") && m.contains("table") {
                SqlState::UndefinedTable
            } else if m.contains("No function matches")
                || m.contains("Invalid function")
                || m.contains("Cannot coerce arithmetic expression")
            {
                // The last: PostgreSQL's "operator does not exist" (`text + integer`).
                SqlState::UndefinedFunction
            } else if m.contains("Cannot infer common") || m.contains("cannot be cast") {
                SqlState::DatatypeMismatch
            } else {
                SqlState::SyntaxError
            }
        }
        DataFusionError::NotImplemented(_) => SqlState::FeatureNotSupported,
        DataFusionError::ResourcesExhausted(_) => SqlState::OutOfMemory,
        DataFusionError::External(e) => e.downcast_ref::<Error>().map_or(SqlState::InternalError, Error::state),
        DataFusionError::ArrowError(ae, _) => {
            use arrow::error::ArrowError;
            match ae.as_ref() {
                // A time beyond what a kernel converts (`'infinity' + interval '1 day'`):
                // PostgreSQL's "timestamp out of range".
                ArrowError::ComputeError(m) | ArrowError::CastError(m) | ArrowError::InvalidArgumentError(m)
                    if is_time_out_of_range(m) =>
                {
                    SqlState::DatetimeFieldOverflow
                }
                ArrowError::DivideByZero => SqlState::DivisionByZero,
                ArrowError::CastError(m) if m.contains("Overflowing") => SqlState::NumericValueOutOfRange,
                // A value beyond a NUMERIC's precision: PostgreSQL's "numeric field overflow".
                ArrowError::InvalidArgumentError(m) if m.contains("too large to store in a Decimal") => {
                    SqlState::NumericValueOutOfRange
                }
                ArrowError::CastError(m) | ArrowError::ParseError(m)
                    if m.to_ascii_lowercase().contains("timestamp") || m.to_ascii_lowercase().contains("date") =>
                {
                    SqlState::InvalidDatetimeFormat
                }
                ArrowError::CastError(_) | ArrowError::ParseError(_) => SqlState::InvalidTextRepresentation,
                ArrowError::ArithmeticOverflow(_) => SqlState::NumericValueOutOfRange,
                // `abs(-2147483648)`: PostgreSQL's "integer out of range".
                ArrowError::ComputeError(m) if m.contains("overflow") => SqlState::NumericValueOutOfRange,
                ArrowError::MemoryError(_) => SqlState::OutOfMemory,
                _ => SqlState::InternalError,
            }
        }
        DataFusionError::Execution(m) if is_time_out_of_range(m) => SqlState::DatetimeFieldOverflow,
        DataFusionError::Execution(m) if m.contains("Divide by zero") => SqlState::DivisionByZero,
        // `extract(julian ...)`: a field DataFusion lacks is unsupported, not an internal error.
        DataFusionError::Execution(m) if m.starts_with("Date part") && m.ends_with("not supported") => {
            SqlState::FeatureNotSupported
        }
        // PostgreSQL: "more than one row returned by a subquery used as an expression".
        DataFusionError::Execution(m) if m.contains("subquery returned more than one row") => {
            SqlState::CardinalityViolation
        }
        DataFusionError::Execution(m) if m.to_ascii_lowercase().contains("overflow") => {
            SqlState::NumericValueOutOfRange
        }
        DataFusionError::Execution(m) if m.ends_with(" out of range") || m.starts_with("value out of range") => {
            SqlState::NumericValueOutOfRange
        }
        DataFusionError::Execution(m) if m == "division by zero" => SqlState::DivisionByZero,
        DataFusionError::Execution(m) if m.contains("Cannot cast") => SqlState::InvalidTextRepresentation,
        DataFusionError::IoError(e) if is_disk_full(e) => SqlState::DiskFull,
        DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => SqlState::IoError,
        _ => SqlState::InternalError,
    }
}

/// What a panic said, when it said it in a string.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_not_found_maps_to_undefined_table() {
        let e = Error::from(DataFusionError::Plan("table 'asofdb.public.t' not found".into()));
        assert_eq!(e.sqlstate(), "42P01");
        assert_eq!(e.to_string(), "table 'asofdb.public.t' not found");
    }

    #[test]
    fn context_wrappers_are_looked_through() {
        let inner = DataFusionError::ResourcesExhausted("pool full".into());
        let e = Error::from(DataFusionError::Context("while sorting".into(), Box::new(inner)));
        assert_eq!(e.sqlstate(), "53200");
    }
}
