#![no_main]
//! Client bytes: SSL request, startup and cancel packets, then protocol messages.
#[path = "../harness.rs"]
#[allow(dead_code)] // each target uses one of the harness functions
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::wire_messages(data));
