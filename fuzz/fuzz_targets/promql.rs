//! PromQL text through the size and nesting limits and the parser, and every query that
//! parses printed back and parsed again. Found: a range whose duration overflows made
//! the parser panic (now a parse error; see `promql::parse_expr`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use opendata_timeseries::promql::Query;

// `parse_expr` catches the parser's own panics (and answers them as parse errors), so
// the hook libFuzzer installs, which aborts on any panic even a caught one, is put back
// to the default: a panic that escapes our API still aborts the run through
// libfuzzer-sys's own `catch_unwind`, and is reported as a crash.
fuzz_target!(init: { drop(std::panic::take_hook()); }, |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(q) = Query::parse(text) {
        let printed = q.expr().to_string();
        let _ = Query::parse(&printed);
    }
});
