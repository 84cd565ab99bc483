//! Starts the loopback S3 server (moto, one request at a time) and its fault
//! proxy for a test, installing moto into a virtualenv on first use.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The moto the tests rely on (the IAM test depends on its access control).
const MOTO: &str = "5.2.5";

/// The Python that has moto: `FACEBLOCK_TEST_PYTHON`, else a virtualenv under
/// `~/.cache/faceblock/venv`, created on first use.
pub fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        if let Ok(p) = std::env::var("FACEBLOCK_TEST_PYTHON") {
            return PathBuf::from(p);
        }
        let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
        let venv = PathBuf::from(home).join(".cache/faceblock/venv");
        let py = venv.join("bin/python");
        let has_moto = py.exists()
            && Command::new(&py)
                .args([
                    "-c",
                    &format!(
                        "import moto.server, boto3, werkzeug; assert moto.__version__ == '{MOTO}'"
                    ),
                ])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
        if !has_moto {
            eprintln!("installing moto[server] into {} (once) ...", venv.display());
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
                && Command::new(&py)
                    .args(["-m", "pip", "install", "--quiet"])
                    .arg(format!("moto[server]=={MOTO}"))
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
            assert!(ok, "could not install moto[server] into {}", venv.display());
        }
        py
    })
    .clone()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server; killed on drop.
pub struct S3Server {
    child: Child,
    pub port: u16,
    pub proxy: u16,
}

pub const BUCKET: &str = "faceblock-test";

impl S3Server {
    pub fn start() -> S3Server {
        Self::start_with(&[])
    }

    /// A server that enforces IAM: one user per (name, policy JSON), each
    /// with its own access key, returned as (access key id, secret) by name.
    /// Every request must then be signed by one of them.
    pub fn start_with_users(
        users: &[(String, String)],
    ) -> (S3Server, HashMap<String, (String, String)>) {
        let dir = tempfile::tempdir().unwrap();
        let spec: serde_json::Map<String, serde_json::Value> = users
            .iter()
            .map(|(n, p)| {
                (
                    n.clone(),
                    serde_json::from_str(p).expect("a policy is JSON"),
                )
            })
            .collect();
        let (spec_path, out) = (dir.path().join("users.json"), dir.path().join("keys.json"));
        std::fs::write(&spec_path, serde_json::Value::Object(spec).to_string()).unwrap();
        let server = Self::start_with(&[
            "--iam",
            spec_path.to_str().unwrap(),
            "--iam-credentials",
            out.to_str().unwrap(),
        ]);
        let keys: HashMap<String, HashMap<String, String>> =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let keys = keys
            .into_iter()
            .map(|(n, k)| {
                (
                    n,
                    (k["access_key_id"].clone(), k["secret_access_key"].clone()),
                )
            })
            .collect();
        (server, keys)
    }

    fn start_with(extra: &[&str]) -> S3Server {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pipelines/testing/s3_server.py");
        for _ in 0..3 {
            let (port, proxy) = (free_port(), free_port());
            // stderr goes to a file: a pipe nobody reads would fill and stall the server.
            let log = tempfile::NamedTempFile::new().unwrap();
            let mut child = Command::new(python())
                .arg(&script)
                .arg(port.to_string())
                .args(["--bucket", BUCKET, "--proxy", &proxy.to_string()])
                .args(extra)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(log.reopen().unwrap())
                .spawn()
                .expect("python starts");
            let mut line = String::new();
            let mut out = BufReader::new(child.stdout.take().unwrap());
            let _ = out.read_line(&mut line);
            if line.trim() == "ready" {
                return S3Server { child, port, proxy };
            }
            let mut err = String::new();
            let _ = log.reopen().unwrap().read_to_string(&mut err);
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("S3 server did not start (retrying): {err}");
        }
        panic!("the loopback S3 server did not start");
    }

    /// Environment for the binaries, the way AWS tools are configured.
    pub fn env(&self, via_proxy: bool) -> Vec<(String, String)> {
        let port = if via_proxy { self.proxy } else { self.port };
        [
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// [`S3Server::env`] with another user's access key.
    pub fn env_as(&self, key: &(String, String)) -> Vec<(String, String)> {
        let mut env = self.env(false);
        for (k, v) in env.iter_mut() {
            match k.as_str() {
                "AWS_ACCESS_KEY_ID" => *v = key.0.clone(),
                "AWS_SECRET_ACCESS_KEY" => *v = key.1.clone(),
                _ => {}
            }
        }
        env
    }

    /// The same as object_store options, for in-process stores.
    pub fn options(&self, via_proxy: bool) -> Vec<(String, String)> {
        self.env(via_proxy)
            .into_iter()
            .map(|(k, v)| (k.to_lowercase(), v))
            .collect()
    }

    /// Sets the proxy's faults (`error_rate=0.3&drop_rate=0.1&delay_ms=200&down=1`)
    /// and returns its counters as JSON.
    pub fn faults(&self, query: &str) -> String {
        self.control("POST", query)
    }

    /// The proxy's counters (requests, errors, drops, delays) as JSON.
    pub fn counts(&self) -> String {
        self.control("GET", "")
    }

    fn control(&self, method: &str, query: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.proxy)) {
                let req = format!(
                    "{method} /__faults?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                s.write_all(req.as_bytes()).unwrap();
                let mut resp = String::new();
                let _ = s.read_to_string(&mut resp);
                return resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
            }
            assert!(Instant::now() < deadline, "fault proxy unreachable");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
