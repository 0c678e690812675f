//! Every JSON, protobuf-JSON and protobuf body of the log and vector APIs: the first byte
//! picks the message and the format.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use opendata_server::api::Format;
use opendata_server::api::log::proto::AppendRequest;
use opendata_server::api::negotiate::decode;
use opendata_server::api::vector::wire::{
    CreateBody, DeleteBody, GetBody, PatchBody, SearchBatchBody, SearchBody, UpsertBody,
};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let format = match pick % 3 {
        0 => Format::Json,
        1 => Format::ProtobufJson,
        _ => Format::Protobuf,
    };
    let bytes = Bytes::copy_from_slice(rest);
    match (pick / 3) % 8 {
        0 => drop(decode::<AppendRequest>(format, bytes)),
        1 => drop(decode::<CreateBody>(format, bytes)),
        2 => drop(decode::<UpsertBody>(format, bytes)),
        3 => drop(decode::<PatchBody>(format, bytes)),
        4 => drop(decode::<DeleteBody>(format, bytes)),
        5 => drop(decode::<GetBody>(format, bytes)),
        6 => drop(decode::<SearchBody>(format, bytes)),
        _ => drop(decode::<SearchBatchBody>(format, bytes)),
    }
});
