//! The `asofdb` binary: parses the command line and serves until SIGINT or SIGTERM.

use std::path::PathBuf;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use asofdb::execute::{Database, Limits};
use asofdb::http::{HttpOptions, HttpServer};
use asofdb::server::{Security, Server, ServerOptions};

/// mimalloc returns freed memory to the system; glibc malloc kept ~1 GB of it as RSS at 20M
/// events (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long (ms) mimalloc keeps freed memory before returning it to the system. Its default of
/// 1000 ms let the buffers of tiering moves and snapshots pile up as RSS; 100 ms lowered peak
/// RSS at 20M events by ~100 MiB (docs/benchmarks.md, session 11). `MIMALLOC_PURGE_DELAY`
/// still overrides it.
const PURGE_DELAY_MS: std::os::raw::c_long = 100;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (include/mimalloc.h): the Rust
/// binding has no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: called first thing in main, before any other thread exists (mi_option_set
        // is not thread-safe); the option takes any integer.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
}

/// asofdb: a SQL feature database for real-time ML, over the PostgreSQL wire protocol.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    after_help = "To make a data directory from a backup (BACKUP TO 'dir'): \
    asofdb restore --from DIR --data-dir NEW"
)]
struct Args {
    /// Directory holding all data (created if missing, reopened with every table if present).
    #[arg(long, env = "ASOFDB_DATA_DIR", default_value = "./asofdb-data")]
    data_dir: PathBuf,

    /// Address to listen on for PostgreSQL clients (port 0 picks a free port).
    #[arg(long, env = "ASOFDB_LISTEN", default_value = "127.0.0.1:5433")]
    listen: String,

    /// Seconds between feature-state snapshots (0: only at CHECKPOINT and shutdown). After a
    /// crash, a feature replays the writes made since its last snapshot.
    #[arg(long, env = "ASOFDB_CHECKPOINT_SECS", default_value_t = 60)]
    checkpoint_secs: u64,

    /// Seconds between background moves of old rows to the cold tier (0: only at CHECKPOINT).
    /// Rows older than a table's watermark minus its hot_retention go cold, once every feature
    /// of the table has snapshotted them.
    #[arg(long, env = "ASOFDB_TIER_SECS", default_value_t = 10)]
    tier_secs: u64,

    /// Where the cold tier's Parquet files go: a local directory (`file:///dir` or a path) or
    /// an S3 bucket (`s3://bucket/prefix`, configured by the AWS_* environment variables).
    /// Default: <data-dir>/cold.
    #[arg(long, env = "ASOFDB_COLD_URL")]
    cold_url: Option<String>,

    /// Memory (MiB) all running queries may hold in joins, sorts and aggregates together; a
    /// query that needs more fails with SQLSTATE 53200 (sorts spill to disk first). Default:
    /// half the machine's memory.
    #[arg(long, env = "ASOFDB_QUERY_MEMORY_MB")]
    query_memory_mb: Option<usize>,

    /// COPY FROM data (KiB) decoded and staged at a time; a COPY of any size holds about this
    /// much in memory. Default: 16384.
    #[arg(long, env = "ASOFDB_COPY_CHUNK_KB")]
    copy_chunk_kb: Option<usize>,

    /// Page cache (MiB) of the hot tier (sled). sled's own memory beyond it grows with the
    /// hot tier's size. Default: 256.
    #[arg(long, env = "ASOFDB_HOT_CACHE_MB")]
    hot_cache_mb: Option<u64>,

    /// Free disk space (MiB) kept in reserve on the data directory's disk: while less is
    /// free, writes of new rows fail with SQLSTATE 53100, and succeed again once space is
    /// freed. 0 turns the check off. Default: 64.
    #[arg(long, env = "ASOFDB_DISK_RESERVE_MB")]
    disk_reserve_mb: Option<u64>,

    /// Require this password (SCRAM-SHA-256) from every client, whatever its user name.
    /// Without it, every client is trusted (listen on loopback only).
    #[arg(long, env = "ASOFDB_PASSWORD", hide_env_values = true)]
    password: Option<String>,

    /// Certificate chain (PEM) for TLS; with --tls-key, clients may connect with
    /// sslmode=require.
    #[arg(long, env = "ASOFDB_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "ASOFDB_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Threads serving client connections: they read and write protocol messages and answer
    /// point reads of features; every other statement runs on a pool of one thread per core.
    /// Default: one per four cores, at least one. 0 serves connections on that pool too.
    #[arg(long, env = "ASOFDB_IO_THREADS")]
    io_threads: Option<usize>,

    /// Serve HTTP on this address too (port 0 picks a free port): feature vectors
    /// (`POST /v1/features`), Prometheus metrics (`GET /metrics`) and health (`GET /healthz`),
    /// with --password as a bearer token and --tls-cert's TLS. Off by default.
    #[arg(long, env = "ASOFDB_HTTP")]
    http: Option<String>,

    /// Log each statement that takes longer than this many milliseconds, at INFO.
    #[arg(long, env = "ASOFDB_LOG_SLOW_MS", default_value_t = 1000)]
    log_slow_ms: u64,

    /// Client connections served at once; more are refused with SQLSTATE 53300.
    #[arg(long, env = "ASOFDB_MAX_CONNECTIONS", default_value_t = asofdb::server::DEFAULT_MAX_CONNECTIONS as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
}

/// `asofdb restore`: makes a data directory from a finished backup (`BACKUP TO 'dir'`), then
/// opens it once to check it.
#[derive(Debug, Parser)]
#[command(name = "asofdb restore", version)]
struct RestoreArgs {
    /// The directory BACKUP TO wrote.
    #[arg(long)]
    from: PathBuf,

    /// The data directory to make; it must not exist or be empty.
    #[arg(long)]
    data_dir: PathBuf,
}

fn restore(args: RestoreArgs) -> asofdb::Result<()> {
    let report = asofdb::storage::backup::restore(&args.from, &args.data_dir)?;
    // The check above closed the hot tier; sled may let go of its file lock a moment later.
    let mut opened = Database::open(&args.data_dir);
    for _ in 0..20 {
        if opened.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        opened = Database::open(&args.data_dir);
    }
    drop(opened?);
    println!(
        "restored {} into {}: every write before seq {}, {} cold files, taken {}",
        args.from.display(),
        args.data_dir.display(),
        report.next_seq,
        report.cold_files,
        report.finished_at
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a log file or collector gets plain `key=value`.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if std::env::args_os().nth(1).is_some_and(|word| word == "restore") {
        return match restore(RestoreArgs::parse_from(std::env::args_os().skip(1))) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("asofdb restore: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let args = Args::parse();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let io_threads = args.io_threads.unwrap_or((cores / 4).max(1));
    let runtimes =
        tokio::runtime::Builder::new_multi_thread().thread_name("asofdb-exec").enable_all().build().and_then(
            |execution| {
                let io = (io_threads > 0).then(|| {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(io_threads)
                        .thread_name("asofdb-io")
                        .enable_all()
                        .build()
                });
                Ok((execution, io.transpose()?))
            },
        );
    let (execution, io) = match runtimes {
        Ok(runtimes) => runtimes,
        Err(e) => {
            eprintln!("asofdb: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = execution.block_on(run(args, io.as_ref().map(|io| io.handle().clone())));
    // Dropped here, not inside the execution runtime, where dropping a runtime panics; the
    // execution runtime waits for commits still running on its blocking threads.
    drop(io);
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("asofdb: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Opens the database and serves it: statements on the calling runtime, connections on `io`
/// (or the calling runtime without it).
async fn run(args: Args, io: Option<tokio::runtime::Handle>) -> asofdb::Result<()> {
    let limits = Limits {
        query_memory: args.query_memory_mb.map(|mb| mb << 20),
        cold_url: args.cold_url.clone(),
        copy_chunk_bytes: args.copy_chunk_kb.map(|kb| kb << 10),
        hot_cache_bytes: args.hot_cache_mb.map(|mb| mb << 20),
        disk_reserve_bytes: args.disk_reserve_mb.map(|mb| mb << 20),
    };
    let tls = args.tls_cert.as_deref().zip(args.tls_key.as_deref());
    let security = Security::new(args.password.as_deref(), tls)?;
    // Bound before the database opens, so /healthz answers "starting" while it recovers.
    let http = match &args.http {
        Some(addr) => {
            let options = HttpOptions { password: args.password.clone(), tls: security.http_tls_acceptor() };
            let http = HttpServer::bind(addr, options).await?;
            let addr = http.local_addr()?;
            tracing::info!("asofdb serving HTTP on {addr}");
            // Printed before the PostgreSQL line, which tests and scripts wait for.
            println!("asofdb http listening on {addr}");
            let open = http.opener();
            let serving = http.serve(shutdown_signal());
            let task = match &io {
                Some(io) => io.spawn(serving),
                None => tokio::spawn(serving),
            };
            Some((open, task))
        }
        None => None,
    };
    let options = ServerOptions {
        security,
        max_connections: args.max_connections as usize,
        execution: None,
        log_slow: std::time::Duration::from_millis(args.log_slow_ms),
    };
    let db = Database::open_with(&args.data_dir, limits)?;
    asofdb::execute::drop_leftover_temporary_tables(&db).await?;
    asofdb::execute::resume_sources(&db)?;
    let server = Server::bind_with(&args.listen, db.clone(), options).await?;
    let addr = server.local_addr()?;
    if let Some((open, _)) = &http {
        open(db.clone());
    }
    tracing::info!(data_dir = %args.data_dir.display(), "asofdb listening on {addr}");
    // Tests and scripts read this line to find the port when started with port 0.
    println!("asofdb listening on {addr}");
    let checkpoints = (args.checkpoint_secs > 0).then(|| {
        let db = db.clone();
        let every = std::time::Duration::from_secs(args.checkpoint_secs);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                ticks.tick().await;
                if let Err(e) = db.checkpoint(false).await {
                    tracing::warn!("feature checkpoint failed: {e}");
                }
            }
        })
    });
    let tiering = (args.tier_secs > 0).then(|| {
        asofdb::execute::tiering::spawn_background(db.clone(), std::time::Duration::from_secs(args.tier_secs))
    });
    let serving = server.serve(shutdown_signal());
    match io {
        Some(io) => io.spawn(serving).await.map_err(|e| asofdb::Error::internal(format!("server task: {e}")))??,
        None => serving.await?,
    }
    for task in [checkpoints, tiering].into_iter().flatten() {
        task.abort();
    }
    if let Some((_, task)) = http {
        task.abort();
    }
    asofdb::execute::stop_sources(&db).await;
    let written = db.checkpoint(false).await?;
    tracing::info!(snapshots = written, "feature state checkpointed");
    drop(db);
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
