//! PromQL text through the size and nesting limits and the parser, and every query that
//! parses printed back and parsed again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opendata_timeseries::promql::Query;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(q) = Query::parse(text) {
        let printed = q.expr().to_string();
        let _ = Query::parse(&printed);
    }
});
