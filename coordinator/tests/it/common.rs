//! Helpers: run the binaries, build small networks on a temporary store.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use faceblock_schemas::schema::{EPOCH_KEY, SIGNATURE_KEY};
use faceblock_schemas::signing::{Kind, SignContext};
use faceblock_schemas::{layout, parquet_io, Keypair, NetworkFile, Store};

pub fn faceblock() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_faceblock"))
}

pub fn peer_bin() -> PathBuf {
    let p = faceblock().with_file_name(format!("faceblock-peer{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.exists(),
        "{} is missing: run the tests with `cargo test --workspace` so both binaries are built",
        p.display()
    );
    p
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Self {
        let r = Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        assert!(
            !r.stderr.contains("panicked"),
            "a binary panicked:\n{}",
            r.stderr
        );
        r
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

pub fn command(bin: &Path, store: &str, env: &[(String, String)], args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .env("FACEBLOCK_STORE", store)
        .env_remove("FACEBLOCK_PARTITIONS")
        // Every store's cache in one place, out of the user's home; each
        // store has its own folder in it (named by its URL).
        .env(
            "FACEBLOCK_CACHE",
            std::env::temp_dir().join("faceblock-tests-epoch-cache"),
        )
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    c
}

pub fn run_env(bin: &Path, store: &str, env: &[(String, String)], args: &[&str]) -> Run {
    Run::from(
        command(bin, store, env, args)
            .output()
            .expect("binary runs"),
    )
}

pub fn fb(store: &str, args: &[&str]) -> Run {
    run_env(&faceblock(), store, &[], args)
}

pub fn peer(store: &str, args: &[&str]) -> Run {
    run_env(&peer_bin(), store, &[], args)
}

/// `faceblock init` with the `params.toml` and `genesis.csv` kept in `files`.
pub fn init(store: &str, env: &[(String, String)], files: &Path) {
    let params = files.join("params.toml");
    let genesis = files.join("genesis.csv");
    run_env(
        &faceblock(),
        store,
        env,
        &[
            "init",
            "--params",
            params.to_str().unwrap(),
            "--genesis",
            genesis.to_str().unwrap(),
        ],
    )
    .ok();
}

/// A network of `n` genesis peers on a fresh directory, keys made with `keygen`.
pub struct Net {
    pub dir: tempfile::TempDir,
    pub store: String,
    pub keys: Vec<PathBuf>,
    pub env: Vec<(String, String)>,
}

impl Net {
    pub fn new(n: usize, stakes: &[u64], params: &str) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("net").display().to_string();
        Net::on(dir, store, vec![], n, stakes, params)
    }

    /// A network on any store URL, with the environment its commands need.
    pub fn on(
        dir: tempfile::TempDir,
        store: String,
        env: Vec<(String, String)>,
        n: usize,
        stakes: &[u64],
        params: &str,
    ) -> Net {
        let mut csv = String::from("uid,public_key,stake\n");
        let mut keys = Vec::new();
        for i in 0..n {
            let key = dir.path().join(format!("peer{i}.key"));
            let pk = peer("", &["keygen", "--out", key.to_str().unwrap()]).ok();
            csv.push_str(&format!(
                "{i},{},{}\n",
                pk.stdout.trim(),
                stakes[i % stakes.len()]
            ));
            keys.push(key);
        }
        let genesis = dir.path().join("genesis.csv");
        std::fs::write(&genesis, csv).unwrap();
        let params_path = dir.path().join("params.toml");
        std::fs::write(&params_path, params).unwrap();
        init(&store, &env, dir.path());
        Net {
            dir,
            store,
            keys,
            env,
        }
    }

    pub fn key(&self, i: usize) -> &str {
        self.keys[i].to_str().unwrap()
    }

    pub fn set(&self, i: usize, row: &str) -> Run {
        self.peer(&["weights", "--key", self.key(i), "--set", row])
            .ok()
    }

    pub fn fb(&self, args: &[&str]) -> Run {
        run_env(&faceblock(), &self.store, &self.env, args)
    }

    pub fn peer(&self, args: &[&str]) -> Run {
        run_env(&peer_bin(), &self.store, &self.env, args)
    }

    pub fn sql_csv(&self, q: &str) -> Vec<Vec<String>> {
        let r = self.fb(&["sql", "--format", "csv", q]).ok();
        r.stdout
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect()
    }
}

/// Writes a weight file signed by `key` for (uid, epoch) at any path, to craft
/// hostile inputs the peer binary would never write.
pub async fn write_signed(
    store: &Store,
    key: &Keypair,
    signed_uid: u32,
    signed_epoch: u64,
    path: &str,
    batch: &arrow::array::RecordBatch,
) {
    let net = NetworkFile::load(store).await.unwrap();
    let ctx = SignContext {
        kind: Kind::Weights,
        network_id: net.id(),
        epoch: signed_epoch,
        uid: signed_uid,
    };
    let sig = key.sign_batch(&ctx, &[], batch);
    let bytes = parquet_io::encode(
        path,
        batch,
        &[
            (SIGNATURE_KEY, hex::encode(sig)),
            (EPOCH_KEY, signed_epoch.to_string()),
        ],
    )
    .unwrap();
    store.put(path, bytes).await.unwrap();
}

pub fn weights_path(epoch: u64, uid: u32) -> String {
    layout::weights(epoch, uid)
}

/// The digest printed by `epoch run`.
pub fn digest_of(out: &str) -> String {
    out.split("digest ")
        .nth(1)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("no digest in: {out}"))
}

/// A ledger the local market has just written (`pipelines/local-market.sh`
/// with 3 peers for 3 epochs, small tensors), made once per test process and
/// shared read-only by the analysts', readers', notebook and plot tests.
/// Tests that change a store copy it first.
pub fn market_ledger() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let params = dir.path().join("params.toml");
        std::fs::write(&params, "seq_len = 16\nout_dim = 16\n").unwrap();
        let store = dir.path().join("market");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pipelines/local-market.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&store)
            .env("PEERS", "3")
            .env("EPOCHS", "3")
            .env("PARAMS", &params)
            .env("FACEBLOCK_BIN_DIR", faceblock().parent().unwrap())
            .env_remove("FACEBLOCK_STORE")
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "local-market.sh failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .path()
    .join("market")
    .leak()
}

/// A virtualenv under `~/.cache/faceblock/<name>` with `pip install <pip_args>`,
/// made again whenever one of `inputs` (requirements, constraints) or
/// python3's version changes (their SHA-256 is kept in the venv), under a
/// file lock so that two test processes never install at once.
pub fn pinned_venv(name: &str, pip_args: &[&std::ffi::OsStr], inputs: &[&Path]) -> PathBuf {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for f in inputs {
        h.update(std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())));
    }
    let version = Command::new("python3")
        .arg("--version")
        .output()
        .expect("python3 is needed for this test");
    h.update(&version.stdout);
    let want = hex::encode(h.finalize());
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    let cache = PathBuf::from(home).join(".cache/faceblock");
    std::fs::create_dir_all(&cache).expect("~/.cache/faceblock can be created");
    let venv = cache.join(name);
    let py = venv.join("bin/python");
    let stamp = venv.join("faceblock-stamp");
    let lock = std::fs::File::create(cache.join(format!("{name}.lock"))).expect("lock file");
    lock.lock().expect("lock the venv");
    let have = std::fs::read_to_string(&stamp).unwrap_or_default();
    if py.exists() && have.trim() == want {
        return py;
    }
    eprintln!(
        "installing into {} (once per change of its inputs) ...",
        venv.display()
    );
    let t = std::time::Instant::now();
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    assert!(
        ok(Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv)),
        "python3 -m venv {} failed",
        venv.display()
    );
    assert!(
        ok(Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check"
            ])
            .args(pip_args)),
        "pip could not install into {} (needs PyPI access)",
        venv.display()
    );
    std::fs::write(&stamp, &want).expect("write the venv stamp");
    eprintln!("{name} installed in {:.1} s", t.elapsed().as_secs_f64());
    py
}
