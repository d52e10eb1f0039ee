//! An S3 API server (moto's, from PyPI: `moto[server]`) started by a test on a free loopback
//! port with one bucket: where the cold tier goes in the object-storage tests. `scripts/test`
//! installs the package.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running S3 API server with bucket `bucket`, stopped when dropped.
pub struct S3 {
    pub port: u16,
    pub bucket: String,
    child: Child,
}

impl S3 {
    pub fn start(bucket: &str) -> S3 {
        // The port is free when picked but may be taken before moto binds it: then moto exits
        // and another port is tried.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let mut child = Command::new("python3")
                .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 -m moto.server (scripts/test installs moto[server])");
            // Its imports take seconds on a busy machine.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            let mut up = false;
            while std::time::Instant::now() < deadline {
                if child.try_wait().expect("moto's status").is_some() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !up {
                let _ = child.kill();
                let _ = child.wait();
                continue;
            }
            let s3 = S3 { port, bucket: bucket.to_string(), child };
            s3.python(&format!("s3.create_bucket(Bucket={bucket:?})"));
            return s3;
        }
        panic!("moto's S3 server did not start (try `python3 -m moto.server -p 5000` by hand)");
    }

    /// The environment variables that point the server's object store (and boto3) here.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP", "true".to_string()),
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The keys of every object in the bucket.
    pub fn keys(&self) -> Vec<String> {
        let out = self.python(&format!(
            "print('\\n'.join(o['Key'] for p in s3.get_paginator('list_objects_v2').paginate(Bucket={:?}) \
             for o in p.get('Contents', [])))",
            self.bucket
        ));
        out.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
    }

    /// Runs `code` with `s3`, a boto3 client of this server; returns what it printed.
    pub fn python(&self, code: &str) -> String {
        // It leaves without the interpreter's teardown: pyarrow's threads, still alive there,
        // sometimes abort it ("terminate called without an active exception").
        let script = format!(
            "import boto3, os, sys\ns3 = boto3.client('s3', endpoint_url='http://127.0.0.1:{}', aws_access_key_id='test', \
             aws_secret_access_key='test', region_name='us-east-1')\n{code}\nsys.stdout.flush()\nos._exit(0)\n",
            self.port
        );
        let out = Command::new("python3").args(["-c", &script]).output().expect("python3 with boto3");
        assert!(out.status.success(), "boto3: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
