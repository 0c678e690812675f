//! The lexer: query text to tokens, in one linear pass.
//!
//! Words are not classified here: whether `sum`, `by` or `offset` is a keyword or a
//! metric name depends on where it stands, which the parser decides. `Inf` and `NaN`
//! (any case) are numbers. A number directly followed by a unit is a duration
//! (`1h30m`); any other letter, digit or `.` run glued to a number is an error.

use super::ast::{MAX_DURATION_MS, Span};
use super::error::ParseError;

/// A token kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A word: `[a-zA-Z_:][a-zA-Z0-9_:]*` (text in the span).
    Ident,
    /// A number.
    Number(f64),
    /// A duration literal, in milliseconds.
    Duration(i64),
    /// A string, unquoted.
    Str(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    At,
    /// `=`
    Assign,
    /// `=~`
    EqlRegex,
    /// `!~`
    NeqRegex,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    /// `==`
    Eqlc,
    /// `!=`
    Neq,
    Gtr,
    Lss,
    Gte,
    Lte,
    /// `</`
    TrimUpper,
    /// `>/`
    TrimLower,
    Eof,
}

/// A token with its place in the text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Splits `input` into tokens, ending with [`Tok::Eof`]. Comments (`# ...`) and
/// whitespace are skipped.
pub(crate) fn lex(input: &str) -> Result<Vec<Token>, ParseError> {
    let b = input.as_bytes();
    let mut out = Vec::new();
    // Open delimiters: inside brackets a `:` always separates a subquery's range
    // from its step.
    let mut open: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let simple = |t: Tok, n: usize| (t, n);
        let (tok, len) = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'{' | b'[' => {
                open.push(c);
                match c {
                    b'(' => simple(Tok::LParen, 1),
                    b'{' => simple(Tok::LBrace, 1),
                    _ => simple(Tok::LBracket, 1),
                }
            }
            b')' | b'}' | b']' => {
                open.pop();
                match c {
                    b')' => simple(Tok::RParen, 1),
                    b'}' => simple(Tok::RBrace, 1),
                    _ => simple(Tok::RBracket, 1),
                }
            }
            b',' => simple(Tok::Comma, 1),
            b'@' => simple(Tok::At, 1),
            b'+' => simple(Tok::Add, 1),
            b'-' => simple(Tok::Sub, 1),
            b'*' => simple(Tok::Mul, 1),
            b'/' => simple(Tok::Div, 1),
            b'%' => simple(Tok::Mod, 1),
            b'^' => simple(Tok::Pow, 1),
            b'=' => match b.get(i + 1) {
                Some(b'=') => simple(Tok::Eqlc, 2),
                Some(b'~') => simple(Tok::EqlRegex, 2),
                _ => simple(Tok::Assign, 1),
            },
            b'!' => match b.get(i + 1) {
                Some(b'=') => simple(Tok::Neq, 2),
                Some(b'~') => simple(Tok::NeqRegex, 2),
                _ => {
                    let what = next_char(input, i + 1)
                        .map_or("end of input".to_string(), |ch| format!("{:?}", ch));
                    return Err(ParseError::at(
                        input,
                        Span::new(i, i + 1),
                        format!("unexpected character after '!': {what}"),
                    ));
                }
            },
            b'<' => match b.get(i + 1) {
                Some(b'=') => simple(Tok::Lte, 2),
                Some(b'/') => simple(Tok::TrimUpper, 2),
                _ => simple(Tok::Lss, 1),
            },
            b'>' => match b.get(i + 1) {
                Some(b'=') => simple(Tok::Gte, 2),
                Some(b'/') => simple(Tok::TrimLower, 2),
                _ => simple(Tok::Gtr, 1),
            },
            b'"' | b'\'' | b'`' => {
                let (s, len) = lex_string(input, i)?;
                (Tok::Str(s), len)
            }
            b'0'..=b'9' => lex_number(input, i)?,
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => lex_number(input, i)?,
            // Outside brackets a colon starts a metric name (`:` alone is one).
            b':' if open.last() == Some(&b'[') => simple(Tok::Colon, 1),
            c if is_word_start(c) || c == b':' => {
                let mut j = i + 1;
                while j < b.len() && is_word_char(b[j]) {
                    j += 1;
                }
                let word = &input[i..j];
                if word.eq_ignore_ascii_case("inf") {
                    (Tok::Number(f64::INFINITY), j - i)
                } else if word.eq_ignore_ascii_case("nan") {
                    (Tok::Number(f64::NAN), j - i)
                } else {
                    (Tok::Ident, j - i)
                }
            }
            _ => {
                let ch = next_char(input, i).unwrap_or('\u{fffd}');
                return Err(ParseError::at(
                    input,
                    Span::new(i, i + ch.len_utf8()),
                    format!("unexpected character: {ch:?}"),
                ));
            }
        };
        i += len;
        out.push(Token {
            tok,
            span: Span::new(start, i),
        });
    }
    out.push(Token {
        tok: Tok::Eof,
        span: Span::new(b.len(), b.len()),
    });
    Ok(out)
}

fn next_char(input: &str, i: usize) -> Option<char> {
    input.get(i..).and_then(|s| s.chars().next())
}

fn is_word_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// A number or duration starting at `i`: the whole run of letters, digits, `_` and
/// `.` (and a sign after an exponent) glued together, which must be one valid literal.
fn lex_number(input: &str, i: usize) -> Result<(Tok, usize), ParseError> {
    let b = input.as_bytes();
    let mut j = i;
    while j < b.len() {
        let c = b[j];
        let glued = c.is_ascii_alphanumeric() || c == b'_' || c == b'.';
        let exponent_sign = (c == b'+' || c == b'-')
            && matches!(b[j - 1], b'e' | b'E')
            && !input[i..j].starts_with("0x")
            && !input[i..j].starts_with("0X")
            && b.get(j + 1).is_some_and(u8::is_ascii_digit);
        if !(glued || exponent_sign) {
            break;
        }
        j += 1;
    }
    let text = &input[i..j];
    let bad = || {
        ParseError::at(
            input,
            Span::new(i, j),
            format!("bad number or duration syntax: {}", go_quote(text)),
        )
    };
    if let Some(v) = parse_number(text) {
        return Ok((Tok::Number(v), j - i));
    }
    match parse_duration(text) {
        Ok(ms) => Ok((Tok::Duration(ms), j - i)),
        Err(DurationError::Syntax) => Err(bad()),
        Err(DurationError::Overflow) => Err(ParseError::at(
            input,
            Span::new(i, j),
            format!("duration out of range: {}", go_quote(text)),
        )),
    }
}

/// A number as upstream reads one: an integer in Go's syntax first (`0x1f` hex,
/// `017` octal, `1_000` with separators), else a decimal float (`1.5`, `.5`, `2.`,
/// `1e-3`, `1_000.5`). Underscores must each sit between two digits (or right after
/// `0x`).
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    if b.len() > 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        let digits = text[2..].strip_prefix('_').unwrap_or(&text[2..]);
        let digits = strip_separators(digits, |c| c.is_ascii_hexdigit())?;
        return i64::from_str_radix(&digits, 16).ok().map(|v| v as f64);
    }
    // Mantissa digits, optional fraction, optional exponent.
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], Some(&mantissa[i + 1..])),
        None => (mantissa, None),
    };
    let int_digits = if int_part.is_empty() {
        String::new()
    } else {
        strip_separators(int_part, |c| c.is_ascii_digit())?
    };
    let frac_digits = match frac_part {
        Some("") | None => String::new(),
        Some(f) => strip_separators(f, |c| c.is_ascii_digit())?,
    };
    if int_digits.is_empty() && frac_digits.is_empty() {
        return None;
    }
    let exp = match exponent {
        None => None,
        Some(e) => {
            let (sign, digits) = match e.as_bytes().first() {
                Some(b'+') => ("", &e[1..]),
                Some(b'-') => ("-", &e[1..]),
                _ => ("", e),
            };
            Some(format!(
                "{sign}{}",
                strip_separators(digits, |c| c.is_ascii_digit())?
            ))
        }
    };
    if frac_part.is_none() && exp.is_none() {
        // An integer: a leading 0 makes it octal when every digit is.
        if int_digits.len() > 1
            && int_digits.starts_with('0')
            && int_digits.bytes().all(|c| (b'0'..=b'7').contains(&c))
            && let Ok(v) = i64::from_str_radix(&int_digits, 8)
        {
            return Some(v as f64);
        }
    }
    let mut normalized = int_digits;
    if frac_part.is_some() {
        normalized.push('.');
        normalized.push_str(&frac_digits);
    }
    if let Some(e) = exp {
        normalized.push('e');
        normalized.push_str(&e);
    }
    normalized.parse().ok()
}

/// `s` without its digit separators, if each `_` stands between two digits and
/// every other character is a digit.
fn strip_separators(s: &str, is_digit: impl Fn(u8) -> bool) -> Option<String> {
    let b = s.as_bytes();
    if b.is_empty() || !is_digit(b[0]) || !is_digit(b[b.len() - 1]) {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            if !is_digit(b[i - 1]) || !is_digit(b[i + 1]) {
                return None;
            }
        } else if is_digit(c) {
            out.push(c as char);
        } else {
            return None;
        }
    }
    Some(out)
}

enum DurationError {
    Syntax,
    Overflow,
}

/// A duration literal: integer-unit pairs with units in decreasing order, each at
/// most once (`y w d h m s ms`; a year is 365 days).
fn parse_duration(text: &str) -> Result<i64, DurationError> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let b = text.as_bytes();
    let mut k = 0;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    let mut overflow = false;
    while k < b.len() {
        let s = k;
        while k < b.len() && b[k].is_ascii_digit() {
            k += 1;
        }
        if k == s {
            return Err(DurationError::Syntax);
        }
        let digits = &text[s..k];
        let u = k;
        while k < b.len() && b[k].is_ascii_alphabetic() {
            k += 1;
        }
        let unit = &text[u..k];
        let Some(idx) = UNITS[next_unit..].iter().position(|(n, _)| *n == unit) else {
            return Err(DurationError::Syntax);
        };
        let (_, factor) = UNITS[next_unit + idx];
        next_unit += idx + 1;
        match digits
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(factor))
            .and_then(|v| total.checked_add(v))
        {
            Some(t) => total = t,
            None => overflow = true,
        }
    }
    if overflow || total > MAX_DURATION_MS {
        return Err(DurationError::Overflow);
    }
    Ok(total)
}

/// A string literal starting at `i` (its quote): the value and the length in bytes.
fn lex_string(input: &str, i: usize) -> Result<(String, usize), ParseError> {
    let b = input.as_bytes();
    let quote = b[i];
    let mut j = i + 1;
    if quote == b'`' {
        while j < b.len() && b[j] != b'`' {
            j += 1;
        }
        if j >= b.len() {
            return Err(ParseError::at(
                input,
                Span::new(i, b.len()),
                "unterminated raw string".into(),
            ));
        }
        return Ok((input[i + 1..j].to_string(), j + 1 - i));
    }
    let unterminated = |end: usize| {
        ParseError::at(
            input,
            Span::new(i, end),
            "unterminated quoted string".into(),
        )
    };
    while j < b.len() && b[j] != quote {
        match b[j] {
            b'\\' => j += 2,
            b'\n' => return Err(unterminated(j)),
            _ => j += 1,
        }
    }
    if j >= b.len() {
        return Err(unterminated(b.len()));
    }
    let raw = &input[i..=j];
    match unescape(&input[i + 1..j], quote) {
        Some(Ok(s)) => Ok((s, j + 1 - i)),
        Some(Err(e)) => Ok((latin1_fallback(&e.into_bytes()), j + 1 - i)),
        None => Err(ParseError::at(
            input,
            Span::new(i, j + 1),
            format!("error unquoting string {}: invalid syntax", go_quote(raw)),
        )),
    }
}

/// A Go string's bytes that are not UTF-8 (escapes such as `\xc5` make them) as text:
/// the UTF-8 runs as they are, every other byte as the character of the same number
/// (U+0080 to U+00FF). The engine reads such characters back as the bytes they stand
/// for where a query makes a label name, and refuses the name as upstream does.
fn latin1_fallback(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(chunk.invalid().iter().map(|&b| char::from(b)));
    }
    out
}

/// Go's escapes: `\a \b \f \n \r \t \v \\`, the string's own quote, `\xHH`, `\OOO`,
/// `\uHHHH`, `\UHHHHHHHH`: `None` for bad syntax, `Some(Err)` when the bytes are
/// not UTF-8 (Go strings may hold any bytes; ours cannot: see [`latin1_fallback`]).
fn unescape(body: &str, quote: u8) -> Option<Result<String, std::string::FromUtf8Error>> {
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let b = body.as_bytes();
    let mut k = 0;
    while k < b.len() {
        if b[k] != b'\\' {
            out.push(b[k]);
            k += 1;
            continue;
        }
        let e = *b.get(k + 1)?;
        k += 2;
        let simple = match e {
            b'a' => Some(7u8),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(11),
            b'\\' => Some(b'\\'),
            q if q == quote => Some(q),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            continue;
        }
        match e {
            b'x' => {
                let h = body.get(k..k + 2)?;
                out.push(u8::from_str_radix(h, 16).ok().filter(|_| is_hex(h))?);
                k += 2;
            }
            b'0'..=b'7' => {
                let o = body.get(k - 1..k + 2)?;
                if !o.bytes().all(|c| (b'0'..=b'7').contains(&c)) {
                    return None;
                }
                let v = u16::from_str_radix(o, 8).ok()?;
                out.push(u8::try_from(v).ok()?);
                k += 2;
            }
            b'u' | b'U' => {
                let n = if e == b'u' { 4 } else { 8 };
                let h = body.get(k..k + n)?;
                if !is_hex(h) {
                    return None;
                }
                let ch = char::from_u32(u32::from_str_radix(h, 16).ok()?)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                k += n;
            }
            _ => return None,
        }
    }
    Some(String::from_utf8(out))
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// `s` in double quotes with Go's `%q` escaping (enough of it for messages).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tok> {
        lex(s).expect("lexes").into_iter().map(|t| t.tok).collect()
    }

    fn err(s: &str) -> String {
        lex(s).expect_err("fails").to_string()
    }

    #[test]
    fn should_lex_numbers_in_every_notation() {
        assert_eq!(kinds("1")[0], Tok::Number(1.0));
        assert_eq!(kinds(".5")[0], Tok::Number(0.5));
        assert_eq!(kinds("2.")[0], Tok::Number(2.0));
        assert_eq!(kinds("12.34e+6")[0], Tok::Number(12.34e6));
        assert_eq!(kinds("1E-3")[0], Tok::Number(1e-3));
        assert_eq!(kinds("0x1F")[0], Tok::Number(31.0));
        assert_eq!(kinds("0x_1_f")[0], Tok::Number(31.0));
        assert_eq!(kinds("017")[0], Tok::Number(15.0));
        assert_eq!(kinds("089")[0], Tok::Number(89.0));
        assert_eq!(kinds("1_000_000")[0], Tok::Number(1e6));
        assert_eq!(kinds("1_000.000_5")[0], Tok::Number(1000.0005));
        assert_eq!(kinds("1e1_0")[0], Tok::Number(1e10));
        assert_eq!(kinds("007.5")[0], Tok::Number(7.5));
        assert_eq!(kinds("99999999999999999999")[0], Tok::Number(1e20));
        assert_eq!(kinds("_1_2")[0], Tok::Ident);
        assert_eq!(kinds("InF")[0], Tok::Number(f64::INFINITY));
        assert!(matches!(kinds("nan")[0], Tok::Number(v) if v.is_nan()));
    }

    #[test]
    fn should_lex_durations_with_units_in_order() {
        assert_eq!(kinds("1h30m")[0], Tok::Duration(5_400_000));
        assert_eq!(kinds("1y")[0], Tok::Duration(31_536_000_000));
        assert_eq!(kinds("2w1d")[0], Tok::Duration(15 * 86_400_000));
        assert_eq!(kinds("5m3s10ms")[0], Tok::Duration(303_010));
        assert_eq!(kinds("0s")[0], Tok::Duration(0));
    }

    #[test]
    fn should_reject_bad_numbers_and_durations() {
        assert_eq!(
            err("5mm"),
            "1:1: parse error: bad number or duration syntax: \"5mm\""
        );
        assert_eq!(
            err("x 1m1h"),
            "1:3: parse error: bad number or duration syntax: \"1m1h\""
        );
        assert!(err("1.5m").contains("bad number or duration syntax"));
        assert!(err("100..").contains("bad number or duration syntax"));
        assert!(err("1__000").contains("bad number or duration syntax"));
        assert!(err("1_").contains("bad number or duration syntax"));
        assert!(err("1_e2").contains("bad number or duration syntax"));
        assert!(err("1e_1").contains("bad number or duration syntax"));
        assert!(err("0x1_").contains("bad number or duration syntax"));
        assert!(err("0x8000000000000000").contains("bad number or duration syntax"));
        assert!(err("0xg").contains("bad number or duration syntax"));
        assert!(err("1e").contains("bad number or duration syntax"));
    }

    #[test]
    fn should_reject_overflowing_durations_without_panicking() {
        assert!(err("111111111111111111111158s").contains("duration out of range"));
        assert!(err("300y").contains("duration out of range"));
        assert_eq!(kinds("292y")[0], Tok::Duration(292 * 31_536_000_000));
    }

    #[test]
    fn should_unescape_strings_like_go() {
        assert_eq!(kinds(r#""a\nb\"c""#)[0], Tok::Str("a\nb\"c".into()));
        assert_eq!(kinds(r"'it\'s'")[0], Tok::Str("it's".into()));
        assert_eq!(
            kinds(r#""\x41\101\u00e9\U0001F600""#)[0],
            Tok::Str("AAé😀".into())
        );
        assert_eq!(kinds(r"`a\nb`")[0], Tok::Str("a\\nb".into()));
        assert_eq!(kinds("`multi\nline`")[0], Tok::Str("multi\nline".into()));
        assert!(err(r#""\q""#).contains("error unquoting string"));
        assert!(err(r#""\'""#).contains("invalid syntax"));
        // Bytes that are not UTF-8 stand as U+0080..U+00FF.
        assert_eq!(kinds(r#""a\xc5z""#)[0], Tok::Str("a\u{c5}z".into()));
        assert_eq!(kinds(r#""\xc3\xa9""#)[0], Tok::Str("é".into()));
        assert_eq!(
            err("foo{a=\"b}"),
            "1:7: parse error: unterminated quoted string"
        );
        assert_eq!(err("`abc"), "1:1: parse error: unterminated raw string");
        assert!(err("\"a\nb\"").contains("unterminated quoted string"));
    }

    #[test]
    fn should_lex_operators_and_words() {
        assert_eq!(
            kinds("a:b =~ !~ == != >= <= = @ [:]"),
            vec![
                Tok::Ident,
                Tok::EqlRegex,
                Tok::NeqRegex,
                Tok::Eqlc,
                Tok::Neq,
                Tok::Gte,
                Tok::Lte,
                Tok::Assign,
                Tok::At,
                Tok::LBracket,
                Tok::Colon,
                Tok::RBracket,
                Tok::Eof
            ]
        );
        assert_eq!(
            kinds("x # comment\n+ 1"),
            vec![Tok::Ident, Tok::Add, Tok::Number(1.0), Tok::Eof]
        );
    }

    #[test]
    fn should_report_unexpected_characters_with_their_position() {
        assert_eq!(
            err("foo ~ bar"),
            "1:5: parse error: unexpected character: '~'"
        );
        assert_eq!(
            err("a\n !x"),
            "2:2: parse error: unexpected character after '!': 'x'"
        );
        assert_eq!(err("é"), "1:1: parse error: unexpected character: 'é'");
    }
}
