//! Parameters of the Prometheus HTTP API: from the query string and, for POST, a
//! form-encoded body; times as RFC 3339 or Unix seconds; `match[]` selectors.

use opendata_timeseries::config::QueryConfig;
use opendata_timeseries::model::Matcher;
use opendata_timeseries::promql::parser::Expr;

use crate::api::{ApiError, ApiResult};

/// Earliest and latest times the API accepts when none is given (Prometheus uses the
/// same bounds: year 0 and year 9999, roughly).
pub const MIN_TIME_MS: i64 = -62_135_596_800_000;
/// See [`MIN_TIME_MS`].
pub const MAX_TIME_MS: i64 = 253_402_300_799_000;

/// Parameters, in the order given.
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parameters of the query string and of a form body.
    pub fn parse(query: Option<&str>, form_body: Option<&[u8]>) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for src in [query.map(str::as_bytes), form_body].into_iter().flatten() {
            pairs.extend(
                url::form_urlencoded::parse(src).map(|(k, v)| (k.into_owned(), v.into_owned())),
            );
        }
        Params(pairs)
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of `name` (the last one when repeated, as Go's `FormValue` takes the
    /// first; Prometheus clients never repeat these).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A time parameter in ms, or `default` when absent.
    pub fn time(&self, name: &str, default: i64) -> ApiResult<i64> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(v) => parse_time(v)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {e}"))),
        }
    }

    /// `start` and `end` (whole time by default), checked to be in order.
    pub fn range(&self) -> ApiResult<(i64, i64)> {
        let start = self.time("start", MIN_TIME_MS)?;
        let end = self.time("end", MAX_TIME_MS)?;
        if end < start {
            return Err(ApiError::bad_data(
                "invalid parameter \"end\": end timestamp must not be before start time",
            ));
        }
        Ok((start, end))
    }

    /// `limit` (0: none).
    pub fn limit(&self) -> ApiResult<usize> {
        match self.get("limit") {
            None | Some("") => Ok(0),
            Some(v) => v.parse::<usize>().map_err(|_| {
                ApiError::bad_data(format!(
                    "invalid parameter \"limit\": '{v}' is not a non-negative integer"
                ))
            }),
        }
    }

    /// A duration parameter in ms (float seconds or a Prometheus duration such as
    /// `1m30s`), or `None` when absent or empty.
    pub fn duration(&self, name: &str) -> ApiResult<Option<i64>> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => parse_duration(v)
                .map(Some)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {e}"))),
        }
    }

    /// The `match[]` selectors, each a list of matcher sets (a selector with `or` has
    /// several); the sets of all selectors are OR-ed.
    pub fn matchers(&self) -> ApiResult<Vec<Vec<Matcher>>> {
        let mut out = Vec::new();
        for s in self.all("match[]") {
            out.extend(
                parse_selector(s).map_err(|e| {
                    ApiError::bad_data(format!("invalid parameter \"match[]\": {e}"))
                })?,
            );
        }
        Ok(out)
    }

    /// The `match[]` matcher sets, or one empty set (every series) when none is given.
    pub fn matchers_or_all(&self) -> ApiResult<Vec<Vec<Matcher>>> {
        let sets = self.matchers()?;
        Ok(if sets.is_empty() {
            vec![Vec::new()]
        } else {
            sets
        })
    }
}

/// Deepest nesting a `match[]` selector may have.
pub const SELECTOR_MAX_DEPTH: usize = 8;

/// Parses a series selector (`up{job="x"}`, `{__name__=~"a.*"}`) into matcher sets.
/// A selector is shallow (a name and braces): the parser refuses anything nested deeper
/// than [`SELECTOR_MAX_DEPTH`].
pub fn parse_selector(s: &str) -> Result<Vec<Vec<Matcher>>, String> {
    let config = QueryConfig {
        max_query_depth: SELECTOR_MAX_DEPTH,
        ..QueryConfig::default()
    };
    let expr = opendata_timeseries::promql::parse_expr(s, &config, Default::default())
        .map_err(|e| e.to_string())?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!("'{s}' is not a series selector"));
    };
    opendata_timeseries::promql::selector_matchers(&vs)
}

/// Parses a time: Unix seconds with an optional fraction, or RFC 3339.
pub fn parse_time(v: &str) -> Result<i64, String> {
    if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() {
            return Err(format!("cannot parse \"{v}\" to a valid timestamp"));
        }
        let ms = (secs * 1000.0).round();
        if ms < MIN_TIME_MS as f64 || ms > MAX_TIME_MS as f64 {
            return Err(format!("timestamp \"{v}\" is out of range"));
        }
        return Ok(ms as i64);
    }
    parse_rfc3339(v).ok_or_else(|| format!("cannot parse \"{v}\" to a valid timestamp"))
}

/// Parses a duration to ms: float seconds (`15`, `0.5`, `-1`), or a Prometheus duration,
/// units largest first, each at most once (`1h30m`, `15s`, `500ms`, `2d`, `1w`, `1y`;
/// `d` is 24 hours, `w` 7 days, `y` 365 days).
pub fn parse_duration(v: &str) -> Result<i64, String> {
    let bad = || format!("cannot parse \"{v}\" to a valid duration");
    if let Ok(secs) = v.parse::<f64>() {
        let ms = (secs * 1000.0).round();
        if !ms.is_finite() || ms.abs() >= i64::MAX as f64 {
            return Err(format!(
                "cannot parse \"{v}\" to a valid duration. It overflows int64"
            ));
        }
        return Ok(ms as i64);
    }
    // Units from largest to smallest, with their length in ms.
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = v;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        // "ms" before "m", so a millisecond count is not read as minutes.
        let unit = if rest.starts_with("ms") {
            "ms"
        } else {
            rest.get(..1).ok_or_else(bad)?
        };
        let idx = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(bad)?;
        if idx < next_unit {
            return Err(bad());
        }
        next_unit = idx + 1;
        rest = &rest[unit.len()..];
        total = n
            .checked_mul(UNITS[idx].1)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` to ms since the epoch.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &s[start..i.min(start + 3)];
        frac_ms = digits.parse::<i64>().ok()? * 10i64.pow(3 - digits.len() as u32);
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let h = num(i + 1..i + 3)?;
            let m = num(i + 4..i + 6)?;
            let sign = if *c == b'-' { -1 } else { 1 };
            sign * (h * 60 + m)
        }
        _ => return None,
    };
    // Days from the civil date (proleptic Gregorian).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_min * 60;
    Some(secs * 1000 + frac_ms)
}

/// Formats ms since the epoch as Prometheus's API does: seconds with up to 3 decimals.
pub fn format_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_parse_unix_and_rfc3339_times() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("1700000000.123").unwrap(), 1_700_000_000_123);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20.5Z").unwrap(),
            1_700_000_000_500
        );
        assert_eq!(
            parse_time("2023-11-15T00:13:20+02:00").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(parse_time("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_time("1969-12-31T23:59:59Z").unwrap(), -1000);
        for bad in [
            "",
            "abc",
            "2023-13-01T00:00:00Z",
            "2023-11-14 22:13:20",
            "NaN",
            "inf",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn should_parse_float_seconds_and_prometheus_durations() {
        for (v, ms) in [
            ("15", 15_000),
            ("0.5", 500),
            ("-1", -1000),
            ("0", 0),
            ("15s", 15_000),
            ("1m30s", 90_000),
            ("500ms", 500),
            ("1h", 3_600_000),
            ("2d", 172_800_000),
            ("1w", 604_800_000),
            ("1y", 31_536_000_000),
            ("1h1m1s1ms", 3_661_001),
        ] {
            assert_eq!(parse_duration(v).unwrap(), ms, "{v}");
        }
        for bad in [
            "", "abc", "1x", "s", "1s1m", "1m1m", "1.5s", "-1s", "NaN", "1e400",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn should_parse_selectors_into_matchers() {
        let sets = parse_selector(r#"up{job=~"a|b", instance!=""}"#).unwrap();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].len(), 3);
        assert!(
            sets[0]
                .iter()
                .any(|m| m.name == "__name__" && m.value == "up")
        );
        assert!(parse_selector(r#"{job=""}"#).is_err());
        assert!(parse_selector("sum(up)").is_err());
        assert!(parse_selector("up{").is_err());
    }
}
