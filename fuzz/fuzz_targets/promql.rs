//! PromQL text through the size limit and the parser (which bounds the nesting), and
//! every query that parses printed back and parsed again. Any panic is a crash: the
//! parser must answer every input with a tree or a parse error.
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
