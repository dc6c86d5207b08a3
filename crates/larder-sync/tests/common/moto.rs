//! A real S3-compatible server on loopback for tests: moto's server, from
//! the virtualenv `just setup` makes in target/s3server. One per test, on
//! a free port, with a bucket; killed on drop. Its access log is kept, so
//! tests can count the requests a run sent.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    /// Holds the server's access log (its stderr).
    log: tempfile::NamedTempFile,
    pub endpoint: String,
    pub bucket: String,
}

pub fn venv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/s3server/bin")
}

impl Moto {
    pub fn start() -> Moto {
        let bin = venv().join("moto_server");
        assert!(
            bin.exists(),
            "{} missing: run `just setup` (it installs moto's S3 server)",
            bin.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let m = Moto {
            child,
            log,
            endpoint,
            bucket: "larder-test".into(),
        };
        // The SDK wants credentials; moto accepts any.
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_REGION", "us-east-1");
        // The first request can fail while a server started alongside
        // others is still warming up (seen on a loaded 2-core machine).
        let mut tries = 0;
        while let Err(e) = m.try_boto3("S3.create_bucket(Bucket=B)") {
            tries += 1;
            assert!(tries < 10, "cannot create the bucket: {e}");
            std::thread::sleep(Duration::from_millis(500));
        }
        m
    }

    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}?endpoint={}", self.bucket, self.endpoint)
    }

    /// Every request the server has answered so far, as (method, path
    /// with query), in order, from its access log.
    pub fn requests(&self) -> Vec<(String, String)> {
        let log = std::fs::read_to_string(self.log.path()).unwrap();
        log.lines()
            .filter_map(|l| {
                // `... "METHOD /path HTTP/1.1" 200 -`, colour codes aside.
                let quoted = l.split('"').nth(1)?;
                let mut in_code = false;
                let plain: String = quoted
                    .chars()
                    .filter(|&c| {
                        let keep = !in_code && c != '\x1b';
                        in_code = (in_code || c == '\x1b') && c != 'm';
                        keep
                    })
                    .collect();
                let mut words = plain.split(' ');
                let (method, path) = (words.next()?, words.next()?);
                words
                    .next()?
                    .starts_with("HTTP/")
                    .then(|| (method.to_string(), path.to_string()))
            })
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs Python with boto3 (installed with moto): an S3 client that is
    /// not Larder's. `S3` in the script is a client for this server.
    pub fn boto3(&self, script: &str) -> String {
        self.try_boto3(script)
            .unwrap_or_else(|e| panic!("boto3 script failed:\n{e}"))
    }

    /// [`Moto::boto3`], its stderr as the error if the script failed.
    pub fn try_boto3(&self, script: &str) -> Result<String, String> {
        let prelude = format!(
            "import boto3\nS3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='t', aws_secret_access_key='t', region_name='us-east-1')\nB = '{}'\n",
            self.endpoint, self.bucket
        );
        let out = Command::new(venv().join("python"))
            .arg("-c")
            .arg(format!("{prelude}{script}"))
            .output()
            .expect("run python");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
