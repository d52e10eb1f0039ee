//! PostgreSQL 15 from Debian, started by a test on a temporary data directory and a free
//! loopback port: the independent engine the differential suites compare against.
//! `scripts/test` installs the `postgresql` package.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running PostgreSQL, stopped when dropped.
pub struct Postgres {
    pub port: u16,
    bindir: PathBuf,
    data: PathBuf,
    /// The server's command-line settings, for a restart.
    options: String,
    _dir: tempfile::TempDir,
}

/// initdb and postgres refuse to run as root: as root, they run as the `postgres` user.
fn as_postgres(program: &Path) -> Command {
    let root = is_root();
    let mut command = if root { Command::new("runuser") } else { Command::new(program) };
    if root {
        command.args(["-u", "postgres", "--"]).arg(program);
    }
    command
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

fn bindir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("/usr/lib/postgresql (scripts/test installs Debian's postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect("no PostgreSQL server under /usr/lib/postgresql (scripts/test installs it)")
}

impl Postgres {
    pub fn start() -> Postgres {
        Self::start_with(&[])
    }

    /// A server that logical replication can read (`wal_level = logical`): the upstream of
    /// PostgreSQL sources.
    pub fn start_logical() -> Postgres {
        Self::start_with(&["wal_level=logical", "max_wal_senders=20", "max_replication_slots=20"])
    }

    /// A server with extra `settings` (`name=value`).
    pub fn start_with(settings: &[&str]) -> Postgres {
        let bindir = bindir();
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("pg");
        if is_root() {
            let status = Command::new("chown").arg("postgres").arg(dir.path()).status().expect("chown");
            assert!(status.success(), "chown of the PostgreSQL temp dir");
        }
        let status = as_postgres(&bindir.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("initdb");
        assert!(status.success(), "initdb failed");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", dir.path().display());
        for setting in settings {
            options.push_str(&format!(" -c {setting}"));
        }
        let server = Postgres { port, bindir, data, options, _dir: dir };
        server.start_again();
        server
    }

    /// Starts the server (again, after [`Postgres::stop`]) on its port and data.
    pub fn start_again(&self) {
        let status = as_postgres(&self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.data.parent().expect("temp dir").join("pg.log"))
            .args(["-w", "-o", &self.options, "start"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("pg_ctl start");
        assert!(status.success(), "pg_ctl start failed");
    }

    /// Stops the server (fast: sessions are ended), as an outage.
    pub fn stop(&self) {
        let status = as_postgres(&self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-m", "fast", "stop"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("pg_ctl stop");
        assert!(status.success(), "pg_ctl stop failed");
    }

    pub fn conn_string(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname=postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .status();
    }
}
