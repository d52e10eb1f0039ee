#![no_main]
//! COPY FROM data in text, CSV and binary format, whole and in two chunks.
#[path = "../harness.rs"]
#[allow(dead_code)] // each target uses one of the harness functions
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::copy_rows(data));
