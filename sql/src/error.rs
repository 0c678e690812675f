//! Errors of the SQL engine, and their PostgreSQL error codes (SQLSTATE).

use datafusion::error::DataFusionError;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the SQL engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The statement is malformed, names something that does not exist, or asks for
    /// something the tables do not allow.
    #[error("{0}")]
    Invalid(String),
    /// A statement PostgreSQL has but this engine does not (DDL, `COPY`, `UPDATE`).
    #[error("{0}")]
    Unsupported(String),
    /// A statement writes to a read-only table or on a read-only replica.
    #[error("{0}")]
    ReadOnly(String),
    /// A limit of the engine was reached (memory, rows).
    #[error("{0}")]
    Limit(String),
    /// The statement is too complex to plan safely (too many operators).
    #[error("{0}")]
    TooComplex(String),
    /// The statement ran past its timeout, or was cancelled.
    #[error("{0}")]
    Cancelled(String),
    /// Planning or execution failed.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

impl Error {
    /// The PostgreSQL error code (SQLSTATE) a client should see for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "22023",
            Error::Unsupported(_) => "0A000",
            Error::ReadOnly(_) => "25006",
            Error::Limit(_) => "53200",
            Error::TooComplex(_) => "54001",
            Error::Cancelled(_) => "57014",
            Error::DataFusion(e) => sqlstate(e),
        }
    }
}

/// Errors our table providers raise inside DataFusion, carried through it as
/// [`DataFusionError::External`] so their code survives.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TableError {
    /// The SQLSTATE.
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
}

impl TableError {
    /// An invalid argument or value (`22023`).
    pub fn invalid(message: impl Into<String>) -> DataFusionError {
        DataFusionError::External(Box::new(TableError {
            code: "22023",
            message: message.into(),
        }))
    }

    /// A write refused because the table or the instance is read-only (`25006`).
    pub fn read_only(message: impl Into<String>) -> DataFusionError {
        DataFusionError::External(Box::new(TableError {
            code: "25006",
            message: message.into(),
        }))
    }

    /// A database error underneath (`58000`, or `22023` for invalid input).
    pub fn storage(e: impl std::fmt::Display, invalid_input: bool) -> DataFusionError {
        DataFusionError::External(Box::new(TableError {
            code: if invalid_input { "22023" } else { "58000" },
            message: e.to_string(),
        }))
    }
}

/// The SQLSTATE of a DataFusion error, looking through contexts and shared errors.
pub fn sqlstate(e: &DataFusionError) -> &'static str {
    match e {
        DataFusionError::SQL(_, _) => "42601",
        DataFusionError::SchemaError(inner, _) => match inner.as_ref() {
            datafusion::common::SchemaError::FieldNotFound { .. } => "42703",
            datafusion::common::SchemaError::AmbiguousReference { .. } => "42702",
            datafusion::common::SchemaError::DuplicateQualifiedField { .. }
            | datafusion::common::SchemaError::DuplicateUnqualifiedField { .. } => "42701",
        },
        DataFusionError::Plan(message) => {
            let m = message.to_ascii_lowercase();
            if m.contains("not found") && (m.contains("table") || m.contains("relation")) {
                "42P01"
            } else if m.contains("function") && (m.contains("invalid") || m.contains("not found")) {
                "42883"
            } else {
                "42000"
            }
        }
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::ResourcesExhausted(_) => "53200",
        DataFusionError::ArrowError(inner, _) => match inner.as_ref() {
            datafusion::arrow::error::ArrowError::DivideByZero => "22012",
            datafusion::arrow::error::ArrowError::CastError(_)
            | datafusion::arrow::error::ArrowError::ParseError(_) => "22P02",
            datafusion::arrow::error::ArrowError::ArithmeticOverflow(_) => "22003",
            _ => "XX000",
        },
        DataFusionError::Execution(message) => {
            if message.to_ascii_lowercase().contains("divide by zero") {
                "22012"
            } else {
                "22000"
            }
        }
        DataFusionError::External(inner) => {
            if let Some(t) = inner.downcast_ref::<TableError>() {
                t.code
            } else if let Some(d) = inner.downcast_ref::<DataFusionError>() {
                sqlstate(d)
            } else {
                "XX000"
            }
        }
        DataFusionError::Context(_, inner) => sqlstate(inner),
        DataFusionError::Shared(inner) => sqlstate(inner),
        DataFusionError::Diagnostic(_, inner) => sqlstate(inner),
        DataFusionError::Collection(errors) => errors.first().map_or("XX000", sqlstate),
        _ => "XX000",
    }
}

/// The message of a DataFusion error without DataFusion's wrapping ("Error during
/// planning: ", "External error: "...), which names our engine's internals.
pub fn message(e: &DataFusionError) -> String {
    match e {
        DataFusionError::External(inner) => {
            if let Some(t) = inner.downcast_ref::<TableError>() {
                t.message.clone()
            } else {
                inner.to_string()
            }
        }
        DataFusionError::Context(context, inner) => format!("{context}: {}", message(inner)),
        DataFusionError::Shared(inner) => message(inner),
        DataFusionError::Diagnostic(_, inner) => message(inner),
        DataFusionError::Plan(m) | DataFusionError::Execution(m) => m.clone(),
        DataFusionError::NotImplemented(m) => format!("not supported: {m}"),
        DataFusionError::ResourcesExhausted(m) => format!("out of memory for this query: {m}"),
        DataFusionError::SQL(e, _) => format!("syntax error: {e}"),
        DataFusionError::Collection(errors) => {
            errors.first().map_or_else(|| e.to_string(), message)
        }
        other => other.strip_backtrace(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_keep_a_table_errors_code_through_datafusion_wrapping() {
        let e = DataFusionError::Context(
            "scan".into(),
            Box::new(TableError::read_only(
                "log.entries is read-only on a replica",
            )),
        );
        assert_eq!(sqlstate(&e), "25006");
        assert_eq!(message(&e), "scan: log.entries is read-only on a replica");
    }

    #[test]
    fn should_map_unknown_tables_and_columns_to_their_postgres_codes() {
        let e = DataFusionError::Plan("table 'opendata.log.nope' not found".into());
        assert_eq!(sqlstate(&e), "42P01");
        assert_eq!(Error::from(e).sqlstate(), "42P01");
        assert_eq!(Error::Limit("x".into()).sqlstate(), "53200");
    }
}
