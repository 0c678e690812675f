//! Parser of the Prometheus PromQL test-script language (`.test` files).
//!
//! A script is a list of commands: `load`/`load_with_nhcb` blocks of series, `clear`,
//! and `eval` blocks with a query and the result it must give. The parser never drops a
//! line it does not understand: an unknown construct inside an eval block marks that eval
//! broken (it then counts as failed), anywhere else it becomes a script error.

use std::sync::Arc;

use opendata_timeseries::model::{CounterResetHint, FloatHistogram};

/// A number of points in expanding notation: a float, a missing point, a staleness
/// marker or a native-histogram literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Point {
    /// A float value.
    Float(f64),
    /// `_`: no sample at this position.
    Missing,
    /// `stale`: a staleness marker.
    Stale,
    /// `{{...}}`: a native-histogram sample, and whether the literal set its counter
    /// reset hint (a result then must have the same hint).
    Histogram(Arc<FloatHistogram>, bool),
}

/// `(name, value)` pairs as written, the metric name as `__name__`.
pub type LabelPairs = Vec<(String, String)>;

/// A series line: labels (with `__name__` for the metric name) and points.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesLine {
    /// 1-based line number in the script.
    pub line: usize,
    /// `(name, value)` pairs as written, the metric name as `__name__`.
    pub labels: LabelPairs,
    /// The expanded points.
    pub points: Vec<Point>,
}

impl SeriesLine {
    /// True if any point is a native-histogram sample.
    pub fn has_histogram(&self) -> bool {
        self.points
            .iter()
            .any(|p| matches!(p, Point::Histogram(..)))
    }

    /// The metric name, if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.labels
            .iter()
            .rev()
            .find(|(n, _)| n == "__name__")
            .map(|(_, v)| v.as_str())
    }
}

/// How an eval's query runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalKind {
    /// `eval instant at <time>`.
    Instant {
        /// Evaluation time in ms.
        at_ms: i64,
    },
    /// `eval range from <start> to <end> step <step>`.
    Range {
        /// Start in ms.
        start_ms: i64,
        /// End in ms.
        end_ms: i64,
        /// Step in ms.
        step_ms: i64,
    },
}

/// A message condition of an `expect fail`/`warn`/`info` line.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageMatch {
    /// Any message.
    Any,
    /// `msg:<text>`: exactly this text.
    Exact(String),
    /// `regex:<re>`: a message this regular expression matches.
    Regex(String),
}

impl MessageMatch {
    /// True if `message` satisfies this condition (an invalid regex matches nothing).
    pub fn matches(&self, message: &str) -> bool {
        match self {
            MessageMatch::Any => true,
            MessageMatch::Exact(text) => message == text,
            MessageMatch::Regex(re) => regex::Regex::new(re).is_ok_and(|re| re.is_match(message)),
        }
    }
}

/// What an eval expects of warnings (or infos).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnnotationExpectation {
    /// `expect no_warn`/`expect no_info`: there must be none.
    pub none: bool,
    /// `expect warn ...` lines: each must match an annotation, and every annotation must
    /// match one of them.
    pub expected: Vec<MessageMatch>,
}

/// An expected result line.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// A series with points.
    Series(SeriesLine),
    /// A bare scalar.
    Scalar {
        /// 1-based line number.
        line: usize,
        /// The value.
        value: f64,
    },
}

/// An eval command and everything its block expects.
#[derive(Debug, Clone, PartialEq)]
pub struct Eval {
    /// 1-based line number of the `eval` line.
    pub line: usize,
    /// The query text.
    pub query: String,
    /// Instant or range, with times.
    pub kind: EvalKind,
    /// `expect fail ...` (or `eval_fail`).
    pub fail: Option<MessageMatch>,
    /// `expect ordered` (or `eval_ordered`).
    pub ordered: bool,
    /// Warning expectations.
    pub warn: AnnotationExpectation,
    /// Info expectations.
    pub info: AnnotationExpectation,
    /// `expect string "<s>"`.
    pub string: Option<String>,
    /// `expect range vector <start> to <end> step <step>` as `(start, end, step)` in ms.
    pub range_vector: Option<(i64, i64, i64)>,
    /// Expected result lines.
    pub results: Vec<Expected>,
    /// A result line holds a native-histogram literal.
    pub expects_histogram: bool,
    /// Constructs of this eval's block the parser did not understand, with line numbers.
    pub errors: Vec<String>,
}

/// A script command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `load <interval>` or `load_with_nhcb <interval>`.
    Load {
        /// 1-based line number of the `load` line.
        line: usize,
        /// Interval between points in ms.
        interval_ms: i64,
        /// `load_with_nhcb`.
        with_nhcb: bool,
        /// The series.
        series: Vec<SeriesLine>,
    },
    /// `clear`.
    Clear {
        /// 1-based line number.
        line: usize,
    },
    /// An eval block.
    Eval(Box<Eval>),
}

/// A parsed script: its commands, and the lines outside eval blocks it did not
/// understand.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// The commands in order.
    pub commands: Vec<Command>,
    /// `line N: problem` for every construct outside an eval that did not parse.
    pub errors: Vec<String>,
}

/// Parses a whole script.
pub fn parse_script(text: &str) -> Script {
    let lines: Vec<&str> = text.lines().collect();
    let mut script = Script::default();
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let line = lines[i].trim();
        i += 1;
        if is_blank_or_comment(line) {
            continue;
        }
        // The block: following lines up to a blank line, a comment or a new command.
        let start = i;
        while i < lines.len() {
            let l = lines[i].trim();
            if is_blank_or_comment(l) || is_command(l) {
                break;
            }
            i += 1;
        }
        let block: Vec<(usize, &str)> = (start..i).map(|k| (k + 1, lines[k].trim())).collect();
        let (word, rest) = split_word(line);
        match word {
            "clear" => {
                if !rest.is_empty() {
                    script.errors.push(format!(
                        "line {line_no}: unexpected text after clear: {rest:?}"
                    ));
                }
                script.commands.push(Command::Clear { line: line_no });
                for (n, l) in &block {
                    script
                        .errors
                        .push(format!("line {n}: unexpected line after clear: {l:?}"));
                }
            }
            "load" | "load_with_nhcb" => match parse_duration(rest) {
                Ok(interval_ms) if interval_ms > 0 => {
                    let mut series = Vec::new();
                    for (n, l) in &block {
                        match parse_series_line(*n, l) {
                            Ok(s) => series.push(s),
                            Err(e) => script.errors.push(format!("line {n}: {e}")),
                        }
                    }
                    script.commands.push(Command::Load {
                        line: line_no,
                        interval_ms,
                        with_nhcb: word == "load_with_nhcb",
                        series,
                    });
                }
                Ok(_) => script
                    .errors
                    .push(format!("line {line_no}: load interval must be positive")),
                Err(e) => script
                    .errors
                    .push(format!("line {line_no}: bad load interval: {e}")),
            },
            "eval" | "eval_fail" | "eval_warn" | "eval_info" | "eval_ordered" => {
                match parse_eval(line_no, word, rest, &block) {
                    Ok(eval) => script.commands.push(Command::Eval(Box::new(eval))),
                    Err(e) => script.errors.push(format!("line {line_no}: {e}")),
                }
            }
            _ => {
                script
                    .errors
                    .push(format!("line {line_no}: unknown command: {line:?}"));
                // The rest of the block is not understood either; one error is enough.
            }
        }
    }
    script
}

fn is_blank_or_comment(line: &str) -> bool {
    line.is_empty() || line.starts_with('#')
}

fn is_command(line: &str) -> bool {
    matches!(
        split_word(line).0,
        "load"
            | "load_with_nhcb"
            | "clear"
            | "eval"
            | "eval_fail"
            | "eval_warn"
            | "eval_info"
            | "eval_ordered"
    )
}

/// Splits off the first whitespace-delimited word; the rest is trimmed.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(k) => (&s[..k], s[k..].trim()),
        None => (s, ""),
    }
}

/// Parses an eval line (after its command word) and its block.
fn parse_eval(
    line_no: usize,
    word: &str,
    rest: &str,
    block: &[(usize, &str)],
) -> Result<Eval, String> {
    let (mode, rest) = split_word(rest);
    let (kind, query) = match mode {
        "instant" => {
            let (at, rest) = split_word(rest);
            if at != "at" {
                return Err(format!("expected `at` after `eval instant`, got {at:?}"));
            }
            let (time, query) = split_word(rest);
            let at_ms = parse_duration(time).map_err(|e| format!("bad eval time: {e}"))?;
            (EvalKind::Instant { at_ms }, query)
        }
        "range" => {
            let (start_ms, end_ms, step_ms, query) = parse_range_spec(rest)?;
            (
                EvalKind::Range {
                    start_ms,
                    end_ms,
                    step_ms,
                },
                query,
            )
        }
        _ => {
            return Err(format!(
                "expected `instant` or `range` after eval, got {mode:?}"
            ));
        }
    };
    if query.is_empty() {
        return Err("eval without a query".into());
    }
    let mut eval = Eval {
        line: line_no,
        query: query.to_string(),
        kind,
        fail: None,
        ordered: false,
        warn: AnnotationExpectation::default(),
        info: AnnotationExpectation::default(),
        string: None,
        range_vector: None,
        results: Vec::new(),
        expects_histogram: false,
        errors: Vec::new(),
    };
    match word {
        "eval_fail" => eval.fail = Some(MessageMatch::Any),
        "eval_warn" => eval.warn.expected.push(MessageMatch::Any),
        "eval_info" => eval.info.expected.push(MessageMatch::Any),
        "eval_ordered" => eval.ordered = true,
        _ => {}
    }
    for &(n, l) in block {
        if let Some(rest) = l
            .strip_prefix("expect")
            .filter(|r| r.starts_with(char::is_whitespace))
        {
            if let Err(e) = apply_expect(&mut eval, rest.trim()) {
                eval.errors.push(format!("line {n}: {e}"));
            }
            continue;
        }
        match parse_result_line(n, l) {
            Ok(r) => {
                if let Expected::Series(s) = &r {
                    eval.expects_histogram |= s.has_histogram();
                }
                eval.results.push(r);
            }
            Err(e) => eval.errors.push(format!("line {n}: {e}")),
        }
    }
    check_eval(&mut eval);
    Ok(eval)
}

/// `from <t> to <t> step <d> <rest>`, the `from` optional.
fn parse_range_spec(s: &str) -> Result<(i64, i64, i64, &str), String> {
    let (mut w, mut rest) = split_word(s);
    if w == "from" {
        (w, rest) = split_word(rest);
    }
    let start = parse_duration(w).map_err(|e| format!("bad range start: {e}"))?;
    let (to, rest) = split_word(rest);
    if to != "to" {
        return Err(format!("expected `to` in range, got {to:?}"));
    }
    let (w, rest) = split_word(rest);
    let end = parse_duration(w).map_err(|e| format!("bad range end: {e}"))?;
    let (step_word, rest) = split_word(rest);
    if step_word != "step" {
        return Err(format!("expected `step` in range, got {step_word:?}"));
    }
    let (w, rest) = split_word(rest);
    let step = parse_duration(w).map_err(|e| format!("bad range step: {e}"))?;
    if step <= 0 {
        return Err("range step must be positive".into());
    }
    if end < start {
        return Err("range end is before its start".into());
    }
    Ok((start, end, step, rest))
}

/// Applies one `expect` line (the text after `expect`).
fn apply_expect(eval: &mut Eval, s: &str) -> Result<(), String> {
    let (word, rest) = split_word(s);
    match word {
        "fail" => {
            if eval.fail.is_some() {
                return Err("more than one `expect fail`".into());
            }
            eval.fail = Some(parse_message_match(rest)?);
        }
        "warn" => eval.warn.expected.push(parse_message_match(rest)?),
        "info" => eval.info.expected.push(parse_message_match(rest)?),
        "no_warn" | "no_info" | "ordered" => {
            if !rest.is_empty() {
                return Err(format!("unexpected text after `expect {word}`: {rest:?}"));
            }
            match word {
                "no_warn" => eval.warn.none = true,
                "no_info" => eval.info.none = true,
                _ => eval.ordered = true,
            }
        }
        "string" => {
            if eval.string.is_some() {
                return Err("more than one `expect string`".into());
            }
            eval.string = Some(unquote(rest)?);
        }
        "range" => {
            let (v, rest) = split_word(rest);
            if v != "vector" {
                return Err(format!("expected `range vector`, got `range {v}`"));
            }
            let (start, end, step, extra) = parse_range_spec(rest)?;
            if !extra.is_empty() {
                return Err(format!("unexpected text after range vector: {extra:?}"));
            }
            eval.range_vector = Some((start, end, step));
        }
        _ => return Err(format!("unknown expect line: `expect {s}`")),
    }
    Ok(())
}

/// The condition after `expect fail`/`warn`/`info`: nothing, `msg:<text>` or
/// `regex:<re>` (text trimmed).
pub fn parse_message_match(s: &str) -> Result<MessageMatch, String> {
    if s.is_empty() {
        Ok(MessageMatch::Any)
    } else if let Some(text) = s.strip_prefix("msg:") {
        Ok(MessageMatch::Exact(text.trim().to_string()))
    } else if let Some(re) = s.strip_prefix("regex:") {
        let re = re.trim();
        regex::Regex::new(re).map_err(|e| format!("invalid regex {re:?}: {e}"))?;
        Ok(MessageMatch::Regex(re.to_string()))
    } else {
        Err(format!("expected `msg:` or `regex:`, got {s:?}"))
    }
}

/// Contradictions between an eval's lines.
fn check_eval(eval: &mut Eval) {
    let mut problems = Vec::new();
    if eval.warn.none && !eval.warn.expected.is_empty() {
        problems.push("both `expect warn` and `expect no_warn`");
    }
    if eval.info.none && !eval.info.expected.is_empty() {
        problems.push("both `expect info` and `expect no_info`");
    }
    if eval.fail.is_some() && (!eval.results.is_empty() || eval.string.is_some()) {
        problems.push("`expect fail` with expected results");
    }
    if eval.string.is_some() && !eval.results.is_empty() {
        problems.push("`expect string` with expected result lines");
    }
    let range = matches!(eval.kind, EvalKind::Range { .. });
    if range && eval.ordered {
        problems.push("`expect ordered` on a range eval");
    }
    if range && (eval.string.is_some() || eval.range_vector.is_some()) {
        problems.push("`expect string`/`expect range vector` on a range eval");
    }
    if eval.range_vector.is_some() && eval.string.is_some() {
        problems.push("both `expect string` and `expect range vector`");
    }
    let scalars = eval
        .results
        .iter()
        .filter(|r| matches!(r, Expected::Scalar { .. }))
        .count();
    if scalars > 0 && (scalars > 1 || eval.results.len() > 1) {
        problems.push("a scalar result line together with other result lines");
    }
    if scalars > 0 && (range || eval.range_vector.is_some()) {
        problems.push("a bare scalar result on a range result (write `{} <points>`)");
    }
    let mut seen = std::collections::HashSet::new();
    for r in &eval.results {
        if let Expected::Series(s) = r {
            let mut labels = s.labels.clone();
            labels.sort();
            if !seen.insert(labels) {
                problems.push("the same series expected twice");
            }
        }
    }
    for p in problems {
        eval.errors.push(format!("line {}: {p}", eval.line));
    }
}

/// An expected result line: a bare number (scalar) or a series with points.
pub fn parse_result_line(line: usize, s: &str) -> Result<Expected, String> {
    let (first, rest) = split_word(s);
    if rest.is_empty()
        && !first.contains('{')
        && let Ok(value) = parse_float(first)
    {
        return Ok(Expected::Scalar { line, value });
    }
    Ok(Expected::Series(parse_series_line(line, s)?))
}

/// A series line: `name{l="v", ...} <points>`, `{...} <points>` or `name <points>`.
pub fn parse_series_line(line: usize, s: &str) -> Result<SeriesLine, String> {
    let (labels, rest) = parse_selector(s)?;
    if rest.is_empty() {
        return Err(format!("series without points: {s:?}"));
    }
    let points = parse_points(rest)?;
    Ok(SeriesLine {
        line,
        labels,
        points,
    })
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Parses a series selector at the start of `s`; returns the labels and the rest.
pub fn parse_selector(s: &str) -> Result<(LabelPairs, &str), String> {
    let s = s.trim_start();
    let name_end = s.find(|c: char| !is_name_char(c)).unwrap_or(s.len());
    let name = &s[..name_end];
    let mut labels = Vec::new();
    if !name.is_empty() {
        if name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("invalid metric name {name:?}"));
        }
        labels.push(("__name__".to_string(), name.to_string()));
    }
    let mut rest = &s[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut r = inner.trim_start();
        loop {
            if let Some(after) = r.strip_prefix('}') {
                rest = after;
                break;
            }
            // A label name (bare or quoted), then `="value"`; a quoted string alone is
            // the metric name.
            let (label_name, after) = if r.starts_with('"') || r.starts_with('`') {
                let (q, after) = take_quoted(r)?;
                (q, after)
            } else {
                let end = r.find(|c: char| !is_name_char(c)).unwrap_or(r.len());
                if end == 0 {
                    return Err(format!("expected a label name at {r:?}"));
                }
                (r[..end].to_string(), &r[end..])
            };
            let after = after.trim_start();
            let after = if let Some(v) = after.strip_prefix('=') {
                if v.starts_with('=') || v.starts_with('~') {
                    return Err(format!("only `=` matchers are allowed in a series: {s:?}"));
                }
                let (value, after) = take_quoted(v.trim_start())?;
                labels.push((label_name, value));
                after
            } else if r.starts_with('"') && !name.is_empty() {
                return Err(format!("two metric names in {s:?}"));
            } else if r.starts_with('"') {
                labels.push(("__name__".to_string(), label_name));
                after
            } else {
                return Err(format!("expected `=` after label {label_name:?}"));
            };
            let after = after.trim_start();
            if let Some(a) = after.strip_prefix(',') {
                r = a.trim_start();
            } else if after.starts_with('}') {
                r = after;
            } else {
                return Err(format!("expected `,` or `}}` in selector at {after:?}"));
            }
        }
    } else if name.is_empty() {
        return Err(format!("expected a series selector at {s:?}"));
    }
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return Err(format!("unexpected text after selector: {rest:?}"));
    }
    let mut names: Vec<&str> = labels.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(format!("a label appears twice in {s:?}"));
    }
    Ok((labels, rest.trim()))
}

/// Takes a quoted string (`"..."` with Go escapes, `'...'`, or raw `` `...` ``) from the
/// start of `s`; returns it unquoted and the rest.
fn take_quoted(s: &str) -> Result<(String, &str), String> {
    let quote = s
        .chars()
        .next()
        .filter(|c| matches!(c, '"' | '\'' | '`'))
        .ok_or_else(|| format!("expected a quoted string at {s:?}"))?;
    let body = &s[1..];
    if quote == '`' {
        let end = body
            .find('`')
            .ok_or_else(|| format!("unterminated string {s:?}"))?;
        return Ok((body[..end].to_string(), &body[end + 1..]));
    }
    let mut out = String::new();
    let mut bytes: Vec<u8> = Vec::new();
    let mut chars = body.char_indices();
    let flush = |bytes: &mut Vec<u8>, out: &mut String| -> Result<(), String> {
        if !bytes.is_empty() {
            let text = String::from_utf8(std::mem::take(bytes))
                .map_err(|_| "invalid UTF-8 in escapes".to_string())?;
            out.push_str(&text);
        }
        Ok(())
    };
    while let Some((k, c)) = chars.next() {
        if c == quote {
            flush(&mut bytes, &mut out)?;
            return Ok((out, &body[k + 1..]));
        }
        if c != '\\' {
            flush(&mut bytes, &mut out)?;
            out.push(c);
            continue;
        }
        let (_, e) = chars
            .next()
            .ok_or_else(|| format!("unterminated string {s:?}"))?;
        let simple = match e {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            '\'' => Some('\''),
            _ => None,
        };
        if let Some(c) = simple {
            flush(&mut bytes, &mut out)?;
            out.push(c);
            continue;
        }
        let digits = |n: usize, radix: u32, chars: &mut std::str::CharIndices| {
            let mut v: u32 = 0;
            for _ in 0..n {
                let d = chars
                    .next()
                    .and_then(|(_, c)| c.to_digit(radix))
                    .ok_or_else(|| format!("bad escape in {s:?}"))?;
                v = v * radix + d;
            }
            Ok::<u32, String>(v)
        };
        match e {
            'x' => bytes.push(digits(2, 16, &mut chars)? as u8),
            '0'..='7' => {
                let v = e.to_digit(8).unwrap() * 64 + digits(2, 8, &mut chars)?;
                bytes.push(u8::try_from(v).map_err(|_| format!("bad octal escape in {s:?}"))?);
            }
            'u' | 'U' => {
                let v = digits(if e == 'u' { 4 } else { 8 }, 16, &mut chars)?;
                flush(&mut bytes, &mut out)?;
                out.push(char::from_u32(v).ok_or_else(|| format!("bad escape in {s:?}"))?);
            }
            _ => return Err(format!("unknown escape \\{e} in {s:?}")),
        }
    }
    Err(format!("unterminated string {s:?}"))
}

/// A whole quoted string (nothing may follow it).
pub fn unquote(s: &str) -> Result<String, String> {
    let (v, rest) = take_quoted(s.trim())?;
    if !rest.trim().is_empty() {
        return Err(format!("unexpected text after string: {rest:?}"));
    }
    Ok(v)
}

/// A float as the scripts write them: decimal, exponent, `Inf`, `+Inf`, `-Inf`, `NaN`.
pub fn parse_float(s: &str) -> Result<f64, String> {
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    let ok = !body.is_empty()
        && s.len() - body.len() <= 1
        && (body == "inf"
            || body == "nan"
            || body
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-')));
    if !ok {
        return Err(format!("invalid number {s:?}"));
    }
    s.parse::<f64>()
        .map_err(|_| format!("invalid number {s:?}"))
}

/// Splits a points string into tokens, keeping a `{{...}}` literal (which holds spaces)
/// inside its token.
fn point_tokens(s: &str) -> Result<Vec<&str>, String> {
    let mut tokens = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut in_histogram = false;
        while i < bytes.len() {
            if !in_histogram && bytes[i].is_ascii_whitespace() {
                break;
            }
            if bytes[i..].starts_with(b"{{") && !in_histogram {
                in_histogram = true;
                i += 2;
                continue;
            }
            if bytes[i..].starts_with(b"}}") && in_histogram {
                in_histogram = false;
                i += 2;
                continue;
            }
            i += 1;
        }
        if in_histogram {
            return Err(format!("unterminated histogram literal in {s:?}"));
        }
        tokens.push(&s[start..i]);
    }
    Ok(tokens)
}

/// Expands a points string (everything after the selector).
pub fn parse_points(s: &str) -> Result<Vec<Point>, String> {
    let mut points = Vec::new();
    for token in point_tokens(s)? {
        expand_token(token, &mut points)?;
    }
    Ok(points)
}

/// Splits `<head>x<n>` (n a non-negative integer) if the token has that form.
fn split_repeat(token: &str) -> Result<(&str, Option<usize>), String> {
    // The `x` must come after any histogram literal.
    let search_from = token.rfind("}}").map_or(0, |k| k + 2);
    match token[search_from..].rfind('x') {
        Some(k) => {
            let k = search_from + k;
            let n = &token[k + 1..];
            let n = n
                .parse::<usize>()
                .map_err(|_| format!("bad repeat count {n:?} in {token:?}"))?;
            Ok((&token[..k], Some(n)))
        }
        None => Ok((token, None)),
    }
}

fn expand_token(token: &str, points: &mut Vec<Point>) -> Result<(), String> {
    let (head, repeat) = split_repeat(token)?;
    if head == "_" {
        // `_xN` is N missing points (not N+1).
        points.extend(std::iter::repeat_n(Point::Missing, repeat.unwrap_or(1)));
        return Ok(());
    }
    if head == "stale" {
        if repeat.is_some() {
            return Err(format!("`stale` cannot repeat: {token:?}"));
        }
        points.push(Point::Stale);
        return Ok(());
    }
    if head.starts_with("{{") {
        // `H`, `HxN`, `H+HxN` or `H-HxN`.
        let end = head.find("}}").unwrap() + 2;
        let (first, hint_set) = parse_histogram(&head[..end])?;
        let tail = &head[end..];
        let mut inc: Option<(FloatHistogram, bool)> = None;
        if !tail.is_empty() {
            let negative = tail.starts_with('-');
            let lit = tail
                .strip_prefix('+')
                .or_else(|| tail.strip_prefix('-'))
                .filter(|t| t.starts_with("{{") && t.ends_with("}}"))
                .ok_or_else(|| format!("bad histogram expression {token:?}"))?;
            if repeat.is_none() {
                return Err(format!("histogram increment without a count: {token:?}"));
            }
            inc = Some((parse_histogram(lit)?.0, negative));
        }
        let n = repeat.map_or(1, |n| n + 1);
        let mut current = first;
        for k in 0..n {
            if k > 0
                && let Some((i, negative)) = &inc
            {
                let r = if *negative {
                    current.sub(i)
                } else {
                    current.add(i)
                };
                r.map_err(|e| format!("bad histogram series {token:?}: {e}"))?;
            }
            points.push(Point::Histogram(Arc::new(current.clone()), hint_set));
        }
        return Ok(());
    }
    let Some(n) = repeat else {
        points.push(Point::Float(parse_float(head)?));
        return Ok(());
    };
    // `a+bxn`, `a-bxn` or `axn`; a sign right after an exponent's `e` belongs to it.
    let b = head.as_bytes();
    let split =
        (1..b.len()).find(|&k| matches!(b[k], b'+' | b'-') && !matches!(b[k - 1], b'e' | b'E'));
    let (start, step) = match split {
        Some(k) => {
            let step = parse_float(&head[k + 1..])?;
            let start = parse_float(&head[..k])?;
            (start, if b[k] == b'-' { -step } else { step })
        }
        None => (parse_float(head)?, 0.0),
    };
    for i in 0..=n {
        points.push(Point::Float(start + step * i as f64));
    }
    Ok(())
}

/// A native-histogram literal `{{key:value ...}}`: `schema`, `sum`, `count`,
/// `z_bucket` (zero count), `z_bucket_w` (zero threshold), `buckets` from `offset`,
/// `n_buckets` from `n_offset`, `custom_values`, `counter_reset_hint`; and whether the
/// hint was given.
pub fn parse_histogram(literal: &str) -> Result<(FloatHistogram, bool), String> {
    let inner = literal
        .strip_prefix("{{")
        .and_then(|s| s.strip_suffix("}}"))
        .ok_or_else(|| format!("bad histogram literal {literal:?}"))?;
    let mut h = FloatHistogram::default();
    let mut hint_set = false;
    let (mut offset, mut n_offset) = (0i32, 0i32);
    let (mut buckets, mut n_buckets): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let colon = rest
            .find(':')
            .ok_or_else(|| format!("expected `key:value` in histogram {literal:?}"))?;
        let key = &rest[..colon];
        let after = &rest[colon + 1..];
        let (value, next) = if let Some(list) = after.strip_prefix('[') {
            let close = list
                .find(']')
                .ok_or_else(|| format!("unterminated list in histogram {literal:?}"))?;
            (&list[..close], &list[close + 1..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        let int = |v: &str| {
            v.parse::<i32>()
                .map_err(|_| format!("bad {key} {v:?} in histogram {literal:?}"))
        };
        let list = |v: &str| -> Result<Vec<f64>, String> {
            v.split_whitespace().map(parse_float).collect()
        };
        match key {
            "schema" => h.schema = int(value)?,
            "offset" => offset = int(value)?,
            "n_offset" => n_offset = int(value)?,
            "sum" => h.sum = parse_float(value)?,
            "count" => h.count = parse_float(value)?,
            "z_bucket" => h.zero_count = parse_float(value)?,
            "z_bucket_w" => h.zero_threshold = parse_float(value)?,
            "buckets" => buckets = list(value)?,
            "n_buckets" => n_buckets = list(value)?,
            "custom_values" => h.custom_values = Arc::from(list(value)?),
            "counter_reset_hint" => {
                hint_set = true;
                h.counter_reset_hint = match value {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    _ => {
                        return Err(format!("bad counter_reset_hint {value:?} in {literal:?}"));
                    }
                }
            }
            _ => return Err(format!("unknown histogram field {key:?} in {literal:?}")),
        }
        rest = next.trim_start();
    }
    h.positive = buckets
        .into_iter()
        .enumerate()
        .map(|(i, c)| (offset + i as i32, c))
        .collect();
    h.negative = n_buckets
        .into_iter()
        .enumerate()
        .map(|(i, c)| (n_offset + i as i32, c))
        .collect();
    Ok((h, hint_set))
}

/// A Prometheus duration (`1h30m`, `10s53ms`, units y w d h m s ms in that order, each at
/// most once) or a plain number of seconds (`0`, `1.5`), in milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        let secs: f64 = s.parse().map_err(|_| format!("invalid duration {s:?}"))?;
        return Ok((secs * 1000.0).round() as i64);
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut total: i64 = 0;
    let mut next_unit = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration {s:?}"));
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let k = UNITS[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(|| format!("invalid or out-of-order unit {unit:?} in duration {s:?}"))?;
        let (_, ms) = UNITS[next_unit + k];
        next_unit += k + 1;
        total = n
            .checked_mul(ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {s:?} overflows"))?;
    }
    Ok(total)
}
