//! Vector filters: JSON through the filter parser against a schema with every attribute
//! type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opendata_vector::{AttributeType, CollectionSpec, Filter, Metric};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let spec = CollectionSpec::new("c", 2, Metric::L2)
        .with_attribute("color", AttributeType::String)
        .with_attribute("size", AttributeType::Integer)
        .with_attribute("price", AttributeType::Float)
        .with_attribute("ok", AttributeType::Bool)
        .with_attribute("tags", AttributeType::StringList);
    let _ = Filter::from_json_str(text, &spec);
});
