//! Where a PromQL parse error is: the parser (`promql-parser` 0.11) says what is wrong
//! but not where, so the position is found from the outside.
//!
//! A prefix of the query is *viable* when some completion of it parses: the prefix with
//! its open strings and brackets closed, after one of a few operands (`x`, `1`,
//! `x[5m]`, `5m]`, a label matcher, ...). The error is at the first token whose prefix is
//! not viable, found by binary search over token boundaries (viability only shrinks as
//! the prefix grows). When the whole query is viable, it is only unfinished: the error is
//! at the bracket left open, or at the end. The search parses at most
//! `OPERANDS.len() × (log2(tokens) + 2)` short texts, and runs only for queries of at
//! most [`MAX_LOCATE_BYTES`].

/// Longest query whose parse error is located.
pub const MAX_LOCATE_BYTES: usize = 1024;

/// What a completion may put before the closers.
const OPERANDS: [&str; 11] = [
    "", " x", " 1", "x[5m]", " (x)", "5m]", " 5m", "\"\"", " (a)", "=\"\"", "a=\"\"",
];

/// A token's byte offsets, and whether it is a string left unterminated.
#[derive(Debug, Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
    open_string: bool,
}

/// The tokens of `text`: names, numbers and durations, strings, operators and brackets
/// (comments and spaces between them).
fn tokens(text: &str) -> Vec<Token> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let mut open_string = false;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'"' || c == b'\'' || c == b'`' {
            i += 1;
            while i < b.len() && b[i] != c {
                if b[i] == b'\\' && c != b'`' {
                    i += 1;
                }
                i += 1;
            }
            open_string = i >= b.len();
            i = (i + 1).min(b.len());
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b':' || c == b'.' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b"_:.".contains(&b[i])) {
                i += 1;
            }
        } else if i + 1 < b.len()
            && [b"==", b"!=", b">=", b"<=", b"=~", b"!~"].contains(&&[c, b[i + 1]])
        {
            i += 2;
        } else {
            // One character (a multi-byte one whole).
            i += text[i..].chars().next().map_or(1, char::len_utf8);
        }
        out.push(Token {
            start,
            end: i,
            open_string,
        });
    }
    out
}

/// What closes `prefix`: its unterminated string's quote, then its open brackets, the
/// innermost first; and the offset of the innermost bracket left open.
fn closers(prefix: &str) -> (String, Option<usize>) {
    let b = prefix.as_bytes();
    let mut stack: Vec<(u8, usize)> = Vec::new();
    let mut quote = None;
    for t in tokens(prefix) {
        match b[t.start] {
            q if t.open_string => quote = Some(q),
            c @ (b'(' | b'[' | b'{') => stack.push((c, t.start)),
            b')' | b']' | b'}' => {
                stack.pop();
            }
            _ => {}
        }
    }
    let mut out = String::new();
    if let Some(q) = quote {
        out.push(q as char);
    }
    for (c, _) in stack.iter().rev() {
        out.push(match c {
            b'(' => ')',
            b'[' => ']',
            _ => '}',
        });
    }
    (out, stack.last().map(|(_, at)| *at))
}

fn parses(text: &str) -> bool {
    std::panic::catch_unwind(|| promql_parser::parser::parse(text).is_ok()).unwrap_or(false)
}

fn viable(prefix: &str) -> bool {
    let (close, _) = closers(prefix);
    OPERANDS
        .iter()
        .any(|o| parses(&format!("{prefix}{o}{close}")))
}

/// The byte offset of `text`'s parse error, or `None` when it is not located (too long,
/// or it parses).
pub fn locate(text: &str) -> Option<usize> {
    if text.len() > MAX_LOCATE_BYTES || text.trim().is_empty() {
        return None;
    }
    let toks = tokens(text);
    if toks.is_empty() || parses(text) {
        return None;
    }
    if viable(text) {
        // Unfinished rather than wrong: the bracket left open, or the end.
        let (_, open) = closers(text);
        return Some(open.unwrap_or(text.trim_end().len()));
    }
    // The first token whose prefix is not viable: `lo` viable (or none), `hi` not.
    let (mut lo, mut hi) = (0usize, toks.len() - 1);
    if !viable(&text[..toks[0].end]) {
        return Some(toks[0].start);
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if viable(&text[..toks[mid].end]) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(toks[hi].start)
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> (usize, usize) {
        line_column(text, locate(text).expect("located"))
    }

    #[test]
    fn should_point_at_the_token_that_breaks_the_query() {
        assert_eq!(at("1 +* 2"), (1, 4));
        assert_eq!(at("sum(x) y"), (1, 8));
        assert_eq!(at("up{a=}"), (1, 6));
        assert_eq!(at("rate(x[5m] offset)"), (1, 18));
        assert_eq!(at("sum(rate(x[5m]))\n  + )"), (2, 5));
    }

    #[test]
    fn should_point_at_what_is_left_open() {
        assert_eq!(at("sum(rate(x[5m])"), (1, 4));
        assert_eq!(at("foo{a=\"b\""), (1, 4));
        assert_eq!(at("x +"), (1, 4));
    }

    #[test]
    fn should_not_locate_what_parses_or_is_too_long() {
        assert_eq!(locate("sum(rate(x[5m]))"), None);
        let long = format!("{}+", "x+".repeat(MAX_LOCATE_BYTES));
        assert_eq!(locate(&long), None);
    }

    #[test]
    fn should_count_columns_in_characters() {
        assert_eq!(line_column("é+\nab", 4), (2, 1));
        assert_eq!(line_column("é+", 3), (1, 3));
    }
}
