//! `faceblock-bench`: the steady-state epoch benchmark (BENCHMARKS.md).
//!
//! `generate` writes a signed network straight into a store (genesis, keys
//! from fixed seeds, one signed Parquet weight row per peer, as SPEC 2 lays
//! them out); `steady` closes epoch 0, then times `faceblock epoch run` at
//! epochs 1 and 2 with every previous row and bond in force (every peer
//! resubmits, then 1 % do), each as a separate process under
//! `/usr/bin/time -v`, and runs SciPy's arithmetic on the same shape, with
//! bonds carried, in the same run.
//!
//! It is a plain binary of the coordinator (no dev-dependencies), so building
//! it in release costs nothing beyond `faceblock` itself.

/// Keeps freed memory for reuse instead of unmapping it per batch (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{ensure, Context};
use clap::{Parser, Subcommand};
use faceblock_coordinator::math;
use faceblock_schemas::signing;
use faceblock_schemas::{layout, Genesis, GenesisPeer, Keypair, NetworkFile, Params, Store};
use rayon::prelude::*;

#[derive(Parser)]
#[command(
    name = "faceblock-bench",
    about = "FaceBlock's steady-state epoch benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a signed network into a store: at epoch 0 `init` and every row;
    /// at a later epoch, new rows for a share of the peers.
    Generate {
        /// Peers.
        #[arg(long)]
        peers: u32,
        /// Weights per row.
        #[arg(long)]
        weights: u32,
        /// A local directory.
        #[arg(long)]
        store: PathBuf,
        /// The epoch to write rows for (0: also `init`).
        #[arg(long, default_value_t = 0)]
        epoch: u64,
        /// Share of peers that submit a row (1.0: all).
        #[arg(long, default_value_t = 1.0)]
        share: f64,
    },
    /// Time epochs 1, … (everyone resubmits), then the epochs after them
    /// (1 % resubmit, other peers each epoch) on a fresh network.
    Steady {
        /// Peers.
        #[arg(long)]
        peers: u32,
        /// Weights per row.
        #[arg(long)]
        weights: u32,
        /// Working directory (default: a temporary one, removed after).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Python with numpy, scipy and pyarrow for the SciPy baseline.
        #[arg(long, env = "FACEBLOCK_BENCH_PYTHON", default_value = "python3")]
        python: String,
        /// The SciPy steady-state script (default: the one in the checkout
        /// this binary was built from, whatever the working directory).
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines/bench/steady_scipy.py"))]
        scipy: PathBuf,
        /// Share of peers that resubmit in each epoch after the first timed one.
        #[arg(long, default_value_t = 0.01)]
        few: f64,
        /// How many epochs with `--few` resubmitting to time, one after
        /// another (the epoch cache's entries grow over them).
        #[arg(long, default_value_t = 3)]
        later: u64,
        /// How many epochs with every peer resubmitting to time first. From
        /// the second on, the epoch cache lays the new entries out over the
        /// files the epoch before last left (its spares).
        #[arg(long, default_value_t = 2)]
        every: u64,
    },
    /// Time SPEC 5.2 alone, in process, on epoch 1 of the generated shape
    /// (every row new, epoch 0's bonds carried): the plans, plan by plan,
    /// and the loops that are their oracle, checked bit for bit.
    Arith {
        /// Peers.
        #[arg(long)]
        peers: u32,
        /// Weights per row.
        #[arg(long)]
        weights: u32,
        /// DataFusion partitions and threads (default: the cores).
        #[arg(long)]
        partitions: Option<usize>,
        /// Timed runs of the plans.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
}

/// SplitMix64: a fixed, portable stream, so every run writes the same network.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn seed(i: u32) -> [u8; 32] {
    let mut s = [7u8; 32];
    s[..4].copy_from_slice(&i.to_le_bytes());
    s
}

/// Stakes (10^9..10^12) and row offsets, as `baseline_scipy.py` draws them.
fn shape(n: u32, k: u32) -> (Vec<u64>, Vec<u32>) {
    let mut r = Rng::new(1);
    let stakes = (0..n)
        .map(|_| 1_000_000_000 + r.below(999_000_000_000))
        .collect();
    let bases = (0..n)
        .map(|_| 1 + r.below((n - k).saturating_sub(1) as u64) as u32)
        .collect();
    (stakes, bases)
}

/// Peer i's row at `epoch`: k consecutive destinations after its offset
/// (never itself), fresh random weights each epoch.
fn row(n: u32, k: u32, base: u32, i: u32, epoch: u64) -> (Vec<u32>, Vec<f64>) {
    let mut r = Rng::new(((epoch + 1) << 32) | i as u64);
    let dst = (0..k)
        .map(|j| ((i as u64 + base as u64 + j as u64) % n as u64) as u32)
        .collect();
    let w = (0..k).map(|_| r.unit() + 0.01).collect();
    (dst, w)
}

/// Does peer i submit at `epoch`, for a share? (every peer at epoch 0).
fn submits(i: u32, epoch: u64, share: f64) -> bool {
    epoch == 0 || share >= 1.0 || Rng::new(epoch * 7_919 + i as u64).unit() < share
}

fn generate(root: &Path, n: u32, k: u32, epoch: u64, share: f64) -> anyhow::Result<usize> {
    ensure!(n > k + 2, "need more peers than weights per row plus 2");
    let (stakes, bases) = shape(n, k);
    let keys: Vec<Keypair> = (0..n)
        .into_par_iter()
        .map(|i| Keypair::from_seed(seed(i)))
        .collect();
    let store = Store::open(root.to_str().context("store path is not UTF-8")?)?;
    let rt = tokio::runtime::Runtime::new()?;
    let net = if epoch == 0 {
        let genesis = Genesis {
            peers: (0..n as usize)
                .map(|i| GenesisPeer {
                    uid: i as u32,
                    public_key: keys[i].public().to_hex(),
                    stake: stakes[i],
                })
                .collect(),
        };
        // The peg doubles k while the loss is high; past the rows' width
        // every row would leave force (`rows_meet_k`), which no network
        // that wants to keep its rows runs into: k stops at the width.
        let params = Params {
            max_weights: k.max(1024),
            k_max: k.clamp(1, Params::default().k_max),
            ..Params::default()
        };
        rt.block_on(faceblock_coordinator::init::init(&store, params, genesis))?
    } else {
        rt.block_on(NetworkFile::load(&store))?
    };
    let dir = root.join(layout::weights_dir(epoch));
    std::fs::create_dir_all(&dir)?;
    let id = net.id();
    let who: Vec<u32> = (0..n).filter(|i| submits(*i, epoch, share)).collect();
    who.par_iter().try_for_each(|&i| -> anyhow::Result<()> {
        let (dst, w) = row(n, k, bases[i as usize], i, epoch);
        let (path, bytes) = signing::signed_weights(&keys[i as usize], id, epoch, i, &dst, &w)?;
        std::fs::write(root.join(&path), &bytes)?;
        Ok(())
    })?;
    Ok(who.len())
}

/// Epoch `epoch`'s rows in force for the generated shape, normalised, in
/// index space (uid = index).
fn edges_at(n: u32, k: u32, bases: &[u32], epoch: u64) -> math::Edges {
    let (mut src, mut dst_, mut weight) = (vec![], vec![], vec![]);
    for i in 0..n {
        let (dst, w) = row(n, k, bases[i as usize], i, epoch);
        let mut pairs: Vec<(u32, f64)> = dst.into_iter().zip(w).collect();
        pairs.sort_by_key(|p| p.0);
        let sum: f64 = pairs.iter().map(|p| p.1).sum();
        for (d, w) in pairs {
            src.push(i);
            dst_.push(d);
            weight.push(w / sum);
        }
    }
    math::Edges::new(src, dst_, weight)
}

fn arith(n: u32, k: u32, partitions: Option<usize>, runs: usize) -> anyhow::Result<()> {
    ensure!(n > k + 2, "need more peers than weights per row plus 2");
    let threads = partitions.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1)
    });
    let (stake, bases) = shape(n, k);
    let params = Params::default();
    let t = Instant::now();
    let e0: math::Rows = edges_at(n, k, &bases, 0).into();
    let e1: math::Rows = edges_at(n, k, &bases, 1).into();
    let none = vec![false; n as usize];
    let s0 = math::Segments::default().advance(0, &stake, &e0, &none);
    let s1 = s0.advance(1, &stake, &e1, &none);
    drop((e0, s0));
    println!(
        "{n} peers x {k} weights: {} edges, {} bond entries (built in {:.1} s), {threads} partitions",
        e1.len(),
        s1.len(),
        t.elapsed().as_secs_f64()
    );
    let input = math::Input {
        params: &params,
        k: params.k_initial,
        stake: &stake,
        edges: &e1,
        segments: &s1,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    let mut planned = None;
    for run in 0..runs.max(1) {
        let t = Instant::now();
        let (out, times) = rt.block_on(async {
            let ctx = math::plans::session(threads);
            math::plans::compute_timed(&ctx, &input, threads).await
        })?;
        let parts: Vec<String> = times
            .iter()
            .map(|(name, d)| format!("{name} {:.0}", d.as_secs_f64() * 1e3))
            .collect();
        println!(
            "plans, run {}: {:.0} ms ({})",
            run + 1,
            t.elapsed().as_secs_f64() * 1e3,
            parts.join(", ")
        );
        planned = Some(out);
    }
    let t = Instant::now();
    let looped = math::compute(&input, threads);
    println!("loops: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    ensure!(
        planned.as_ref() == Some(&looped),
        "the plans and the loops disagree"
    );
    println!("plans and loops agree bit for bit");
    Ok(())
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// One timed `faceblock epoch run --timings` under `/usr/bin/time -v`.
struct Run {
    wall: f64,
    /// User plus system CPU seconds.
    cpu: f64,
    peak_mib: f64,
    timings: String,
    ledger_bytes: u64,
}

fn epoch_run(root: &Path) -> anyhow::Result<Run> {
    let bin = std::env::current_exe()?.with_file_name("faceblock");
    let before = dir_bytes(&root.join("ledger"));
    let _ = Command::new("sync").status();
    let t = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(&bin)
        .args([
            "--store",
            root.to_str().unwrap_or("."),
            "epoch",
            "run",
            "--timings",
        ])
        // The epoch cache beside the store, so each run of the benchmark
        // starts from its own.
        .arg("--cache")
        .arg(root.with_extension("epoch-cache"))
        .output()
        .with_context(|| format!("running {} under /usr/bin/time", bin.display()))?;
    let wall = t.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "epoch run failed: {stdout}\n{stderr}");
    let peak_kib: f64 = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN);
    let seconds = |what: &str| -> f64 {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(what))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN)
    };
    Ok(Run {
        wall,
        cpu: seconds("User time (seconds):") + seconds("System time (seconds):"),
        peak_mib: peak_kib / 1024.0,
        timings: stdout
            .lines()
            .find_map(|l| l.strip_prefix("timings: "))
            .unwrap_or("")
            .to_string(),
        ledger_bytes: dir_bytes(&root.join("ledger")) - before,
    })
}

fn phase_ms(timings: &str, name: &str) -> f64 {
    timings
        .split(", ")
        .find_map(|p| p.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches(" ms").parse().ok())
        .unwrap_or(f64::NAN)
}

#[allow(clippy::too_many_arguments)]
fn steady(
    n: u32,
    k: u32,
    dir: Option<PathBuf>,
    python: &str,
    scipy: &Path,
    few: f64,
    later: u64,
    every: u64,
) -> anyhow::Result<()> {
    let tmp;
    let base = match dir {
        Some(d) => d,
        None => {
            tmp = std::env::temp_dir().join(format!("faceblock-bench-{}", std::process::id()));
            tmp.clone()
        }
    };
    let root = base.join("net");
    ensure!(
        !root.exists(),
        "{} exists; pick an empty --dir",
        root.display()
    );
    println!(
        "== {n} peers x {k} weights ({} edges), {} cores",
        n as u64 * k as u64,
        std::thread::available_parallelism()
            .map(|c| c.get())
            .unwrap_or(1)
    );
    let t = Instant::now();
    generate(&root, n, k, 0, 1.0)?;
    println!("generated epoch 0 in {:.1} s", t.elapsed().as_secs_f64());
    let r0 = epoch_run(&root)?;
    report("epoch 0 (genesis, every row new)", &r0);
    let every = every.max(1);
    let cases = (1..=every)
        .map(|e| (e, 1.0))
        .chain((every + 1..every + 1 + later.max(1)).map(|e| (e, few)));
    let mut arith = vec![];
    let mut written = vec![];
    for (epoch, share) in cases {
        let t = Instant::now();
        let rows = generate(&root, n, k, epoch, share)?;
        println!(
            "generated {rows} rows for epoch {epoch} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let r = epoch_run(&root)?;
        let label = if share >= 1.0 {
            format!("epoch {epoch}, every peer resubmits")
        } else {
            format!("epoch {epoch}, {:.0} % resubmit", share * 100.0)
        };
        report(&label, &r);
        arith.push((epoch, share, phase_ms(&r.timings, "arithmetic")));
        written.push(r.ledger_bytes);
    }
    println!(
        "ledger bytes per epoch: every peer resubmits {:.1} MB, {:.0} % resubmit {:.1} MB ({:.2} % of the first)",
        written[0] as f64 / 1e6,
        few * 100.0,
        written[every as usize] as f64 / 1e6,
        100.0 * written[every as usize] as f64 / written[0].max(1) as f64
    );
    let py = Command::new(python)
        .arg(scipy)
        .arg(n.to_string())
        .arg(k.to_string())
        .output();
    match py {
        Ok(o) if o.status.success() => {
            let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
            println!("{line}");
            let sp: f64 = line
                .split("arithmetic ")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN);
            for (e, share, a) in &arith {
                let case = if *share >= 1.0 {
                    "every peer"
                } else {
                    "few peers"
                };
                println!(
                    "arithmetic (epoch {e}, {case} resubmit): faceblock {a:.0} ms vs SciPy {sp:.0} ms = {:.2}x SciPy's speed",
                    sp / a
                );
            }
        }
        Ok(o) => println!(
            "SciPy baseline failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => println!("SciPy baseline not run ({python}): {e}"),
    }
    if !base.join("keep").exists() {
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(root.with_extension("epoch-cache"));
    }
    Ok(())
}

fn report(label: &str, r: &Run) {
    println!(
        "{label}: wall {:.2} s, CPU {:.1} s ({:.2} cores on average), peak RSS {:.0} MiB, ledger bytes written {:.1} MB",
        r.wall,
        r.cpu,
        r.cpu / r.wall,
        r.peak_mib,
        r.ledger_bytes as f64 / 1e6
    );
    println!("  {}", r.timings);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // FACEBLOCK_LOG=faceblock_coordinator=debug shows each plan with its metrics.
    faceblock_schemas::logging::init(faceblock_schemas::logging::LogFormat::Text);
    let r = match cli.command {
        Cmd::Generate {
            peers,
            weights,
            store,
            epoch,
            share,
        } => generate(&store, peers, weights, epoch, share).map(|rows| {
            println!(
                "wrote {rows} signed rows for epoch {epoch} into {}",
                store.display()
            )
        }),
        Cmd::Steady {
            peers,
            weights,
            dir,
            python,
            scipy,
            few,
            later,
            every,
        } => steady(peers, weights, dir, &python, &scipy, few, later, every),
        Cmd::Arith {
            peers,
            weights,
            partitions,
            runs,
        } => arith(peers, weights, partitions, runs),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faceblock-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
