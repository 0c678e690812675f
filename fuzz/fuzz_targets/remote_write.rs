//! Remote write 1.0 and 2.0 bodies: the first byte picks the version and whether the rest
//! is a raw snappy stream or a protobuf to compress; decoding must answer a batch or a
//! clear error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opendata_server::api::timeseries::remote_write::{RemoteWriteVersion, decode};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let version = if mode & 1 == 0 {
        RemoteWriteVersion::V1
    } else {
        RemoteWriteVersion::V2
    };
    let body = if mode & 2 == 0 {
        snap::raw::Encoder::new()
            .compress_vec(rest)
            .unwrap_or_default()
    } else {
        rest.to_vec()
    };
    let _ = decode(&body, version, 1 << 24);
});
