#![no_main]
//! Statement text: splitter, ASOF JOIN rewriting, sqlparser, CREATE FEATURE.
#[path = "../harness.rs"]
#[allow(dead_code)] // each target uses one of the harness functions
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::sql_statement(data));
