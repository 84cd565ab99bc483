//! Benchmark: generate a network straight into a local store (keys, signed
//! rows, one file per peer as SPEC 2 lays out), then time one
//! `faceblock epoch run` as a separate process: wall time, peak memory and the
//! split between phases; run SciPy's sparse baseline on the same sizes in the
//! same run and print the ratio.
//!
//! usage: cargo bench -p faceblock-coordinator --bench epoch -- [N K]...
//! (default: 10000 64 100000 256)

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use faceblock_schemas::schema::{weights_batch, EPOCH_KEY, SIGNATURE_KEY};
use faceblock_schemas::signing::{Kind, SignContext};
use faceblock_schemas::{
    layout, parquet_io, Genesis, GenesisPeer, Keypair, NetworkFile, Params, Store,
};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

fn seed(i: u32) -> [u8; 32] {
    let mut s = [7u8; 32];
    s[..4].copy_from_slice(&i.to_le_bytes());
    s
}

/// Peer i's row: k consecutive destinations after a random offset, random weights.
fn row(n: u32, k: u32, base: u32, i: u32) -> (Vec<u32>, Vec<f64>) {
    let mut r = rand::rngs::StdRng::seed_from_u64(i as u64 + 17);
    let dst = (0..k)
        .map(|j| ((i as u64 + base as u64 + j as u64) % n as u64) as u32)
        .collect();
    let w = (0..k).map(|_| r.gen::<f64>() + 0.01).collect();
    (dst, w)
}

/// Stakes and row offsets of the network.
fn bases(n: u32, k: u32) -> (Vec<u64>, Vec<u32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let stakes: Vec<u64> = (0..n)
        .map(|_| rng.gen_range(1_000_000_000..1_000_000_000_000))
        .collect();
    let bases: Vec<u32> = (0..n).map(|_| rng.gen_range(1..(n - k))).collect();
    (stakes, bases)
}

/// For comparison: rank and trust alone as a DataFusion GROUP BY over the
/// same edges (stake shares already joined in, which favours DataFusion).
fn datafusion_rank_ms(n: u32, k: u32) -> anyhow::Result<f64> {
    use arrow::array::{Float64Array, RecordBatch, UInt32Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{SessionConfig, SessionContext};
    use std::sync::Arc;
    let (stakes, bases) = bases(n, k);
    let total: f64 = stakes.iter().map(|s| *s as f64).sum();
    let schema = Arc::new(Schema::new(vec![
        Field::new("dst", DataType::UInt32, false),
        Field::new("w", DataType::Float64, false),
        Field::new("s", DataType::Float64, false),
    ]));
    let mut parts = vec![vec![], vec![]];
    let per = 256usize.max(65_536 / k as usize);
    let ids: Vec<u32> = (0..n).collect();
    for (c, chunk) in ids.chunks(per).enumerate() {
        let (mut d, mut w, mut s) = (vec![], vec![], vec![]);
        for i in chunk {
            let (dst, raw) = row(n, k, bases[*i as usize], *i);
            let sum: f64 = raw.iter().sum();
            d.extend(dst);
            w.extend(raw.iter().map(|x| x / sum));
            s.extend(std::iter::repeat_n(
                stakes[*i as usize] as f64 / total,
                k as usize,
            ));
        }
        parts[c % 2].push(RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(UInt32Array::from(d)),
                Arc::new(Float64Array::from(w)),
                Arc::new(Float64Array::from(s)),
            ],
        )?);
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        ctx.register_table("e", Arc::new(MemTable::try_new(schema, parts)?))?;
        let t = Instant::now();
        let out = ctx
            .sql("SELECT dst, sum(s * w) AS rank, sum(s) AS trust FROM e GROUP BY dst")
            .await?
            .collect()
            .await?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(out.iter().map(|b| b.num_rows()).sum::<usize>() > 0);
        Ok(ms)
    })
}

/// Same shape as ../shared/bench/baseline_scipy.py: k distinct destinations
/// per row, never the row itself.
fn generate(root: &Path, n: u32, k: u32) -> anyhow::Result<()> {
    let (stakes, bases) = bases(n, k);
    let keys: Vec<Keypair> = (0..n)
        .into_par_iter()
        .map(|i| Keypair::from_seed(seed(i)))
        .collect();
    let genesis = Genesis {
        peers: (0..n as usize)
            .map(|i| GenesisPeer {
                uid: i as u32,
                public_key: keys[i].public().to_hex(),
                stake: stakes[i],
            })
            .collect(),
    };
    let store = Store::open(root.to_str().unwrap())?;
    let rt = tokio::runtime::Runtime::new()?;
    let params = Params {
        max_weights: k.max(1024),
        ..Params::default()
    };
    rt.block_on(faceblock_coordinator::init::init(&store, params, genesis))?;
    let net = rt.block_on(NetworkFile::load(&store))?;
    let dir = root.join(layout::weights_dir(0));
    std::fs::create_dir_all(&dir)?;
    let id = net.id();
    (0..n)
        .into_par_iter()
        .try_for_each(|i| -> anyhow::Result<()> {
            let (dst, w) = row(n, k, bases[i as usize], i);
            let batch = weights_batch(&dst, &w);
            let ctx = SignContext {
                kind: Kind::Weights,
                network_id: id,
                epoch: 0,
                uid: i,
            };
            let sig = keys[i as usize].sign_batch(&ctx, &[], &batch);
            let path = layout::weights(0, i);
            let bytes = parquet_io::encode(
                &path,
                &batch,
                &[(SIGNATURE_KEY, hex::encode(sig)), (EPOCH_KEY, "0".into())],
            )?;
            std::fs::write(root.join(&path), &bytes)?;
            Ok(())
        })?;
    Ok(())
}

fn children_peak_rss_mib() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    ru.ru_maxrss as f64 / 1024.0
}

fn phase_ms(line: &str, name: &str) -> Option<f64> {
    let i = line.find(name)?;
    line[i + name.len()..]
        .trim_start()
        .split(' ')
        .next()?
        .parse()
        .ok()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes: Vec<(u32, u32)> = if args.len() >= 2 {
        args.chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0], c[1]))
            .collect()
    } else {
        vec![(10_000, 64), (100_000, 256)]
    };
    let bin = env!("CARGO_BIN_EXE_faceblock");
    let scipy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench/baseline_scipy.py");
    println!(
        "cores: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    for (n, k) in sizes {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("net");
        let t = Instant::now();
        generate(&root, n, k)?;
        println!(
            "\n== {n} peers x {k} weights ({} edges): generated in {:.1} s",
            n as u64 * k as u64,
            t.elapsed().as_secs_f64()
        );
        // Drop the generator's pages from the measurement as far as we can.
        let _ = Command::new("sync").status();
        let t = Instant::now();
        let out = Command::new(bin)
            .args([
                "--store",
                root.to_str().unwrap(),
                "epoch",
                "run",
                "--timings",
            ])
            .output()?;
        let wall = t.elapsed().as_secs_f64();
        let stdout = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(
            out.status.success(),
            "epoch run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let peak = children_peak_rss_mib();
        let timings = stdout
            .lines()
            .find(|l| l.starts_with("timings:"))
            .unwrap_or("")
            .to_string();
        println!(
            "faceblock epoch run: wall {wall:.2} s, peak RSS {peak:.0} MiB (max over runs so far)"
        );
        println!("  {}", timings.trim_start_matches("timings: "));
        let arith = phase_ms(&timings, "arithmetic").unwrap_or(f64::NAN);
        let python = std::env::var("FACEBLOCK_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
        let py = Command::new(&python)
            .arg(&scipy)
            .arg(n.to_string())
            .arg(k.to_string())
            .output();
        match py {
            Ok(o) if o.status.success() => {
                let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
                println!("  {line}");
                let sp: f64 = line
                    .split("arithmetic ")
                    .nth(1)
                    .and_then(|s| s.split(' ').next())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(f64::NAN);
                println!(
                    "  arithmetic: faceblock {arith:.0} ms vs SciPy {sp:.0} ms = {:.1}x faster",
                    sp / arith
                );
            }
            Ok(o) => println!(
                "  SciPy baseline failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => println!("  SciPy baseline not run: {e}"),
        }
        match datafusion_rank_ms(n, k) {
            Ok(ms) => {
                println!("  for comparison, rank+trust alone as a DataFusion GROUP BY: {ms:.0} ms")
            }
            Err(e) => println!("  DataFusion comparison failed: {e}"),
        }
    }
    Ok(())
}
