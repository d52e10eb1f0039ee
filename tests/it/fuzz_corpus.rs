//! Replays the fuzz targets' kept corpora and regression cases (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the same harness cargo fuzz runs, so every input
//! the fuzzers found interesting, and every crash they found, stays covered on stable.
//! How to run the fuzzers: docs/reliability.md.

#[path = "../../fuzz/harness.rs"]
mod harness;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut inputs = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
                panic!("{} fails: {message:?}", path.display());
            }
            inputs += 1;
        }
    }
    assert!(inputs >= 5, "{target}: only {inputs} kept inputs; is fuzz/corpus/{target} missing?");
}

#[test]
fn sql_statement_corpus() {
    replay("sql_statement", harness::sql_statement);
}

#[test]
fn copy_rows_corpus() {
    replay("copy_rows", harness::copy_rows);
}

#[test]
fn wire_messages_corpus() {
    replay("wire_messages", harness::wire_messages);
}
