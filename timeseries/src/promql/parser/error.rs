//! Parse errors in Prometheus's shape.

use super::ast::Span;

/// Why a query does not parse: where (a byte span of the query) and what, in
/// Prometheus's words. Displayed as Prometheus does:
/// `<line>:<column>: parse error: <message>`, with the 1-based line and the 1-based
/// byte column of the span's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Where the error is.
    pub span: Span,
    /// What is wrong.
    pub message: String,
    /// The 1-based line of `span.start`.
    pub line: usize,
    /// The 1-based byte column of `span.start` in its line.
    pub column: usize,
}

impl ParseError {
    /// An error at `span` of `input`.
    pub fn at(input: &str, span: Span, message: String) -> ParseError {
        let pos = span.start.min(input.len());
        let before = &input.as_bytes()[..pos];
        let line = 1 + before.iter().filter(|&&c| c == b'\n').count();
        let column = match before.iter().rposition(|&c| c == b'\n') {
            Some(nl) => pos - nl,
            None => pos + 1,
        };
        ParseError {
            span,
            message,
            line,
            column,
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: parse error: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ParseError {}
