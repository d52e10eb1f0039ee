//! The integration tests, one module per subject, in one binary: DataFusion is linked once
//! for all of them. Each module starts the real server (in-process or the built binary) on
//! free loopback ports, and the peers it compares with. `sqllogictest` is a binary of its own
//! (its own harness).

#[path = "../common/mod.rs"]
mod common;

mod asof;
mod backup;
mod bad_input;
mod clients;
mod compaction;
mod concurrent_writes;
mod copy_binary;
mod copy_stream;
mod crash_loop;
mod differential_asof;
mod differential_features;
mod differential_postgres;
mod disk_full;
mod durability;
mod erasure;
mod feature_properties;
mod fuzz_corpus;
mod http;
mod pgbench;
mod privileges;
mod protocol;
mod psql;
mod replace_feature;
mod security;
mod soak;
mod sources;
mod sources_postgres;
mod tiering;
mod wire;
