//! Benchmark of the Fisher job (SPEC 5.3): generate an epoch's exchange
//! straight into a local store (signed queries, activations, gradients and
//! fisher-sourced weight rows, as peers write them), then time
//! - `ingest::exchange::read_exchange` called in-process (list, read, checks, φ on DataFusion),
//! - the φ phase alone (pairing, inner products, DataFusion's sums) against a plain Rust loop,
//! - one `faceblock epoch run --timings` as a separate process (wall, peak RSS),
//!
//! and print MB/s of activation + gradient bytes read.
//!
//! usage: cargo bench -p faceblock-coordinator --bench fisher -- [PEERS FANOUT BATCH]
//! (default 64 4 32; or FACEBLOCK_FISHER_BENCH="PEERS FANOUT BATCH"); seq_len 32, out_dim 64.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use faceblock_coordinator::fisher;
use faceblock_coordinator::registry::{Peer, Registry};
use faceblock_schemas::exchange::{self, Queries, Tensor};
use faceblock_schemas::schema::{weights_batch, EPOCH_KEY, SIGNATURE_KEY, SOURCE_KEY};
use faceblock_schemas::signing::{Kind, SignContext};
use faceblock_schemas::{
    layout, parquet_io, Genesis, GenesisPeer, Keypair, NetworkFile, Params, Store,
};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

fn seed(i: u32) -> [u8; 32] {
    let mut s = [9u8; 32];
    s[..4].copy_from_slice(&i.to_le_bytes());
    s
}

/// Who peer j queries: the next `fanout` uids.
fn targets(peers: u32, fanout: u32, j: u32) -> Vec<u32> {
    (1..=fanout).map(|d| (j + d) % peers).collect()
}

fn random_tensor(rng: &mut rand::rngs::StdRng, examples: &[u32], width: usize) -> Tensor {
    Tensor {
        example: examples.to_vec(),
        values: (0..examples.len() * width)
            .map(|_| rng.gen_range(-1.0f32..1.0))
            .collect(),
        width,
    }
}

fn write(root: &Path, path: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().expect("a file path"))?;
    std::fs::write(p, bytes)?;
    Ok(())
}

/// Writes the network and epoch 0's exchange; returns the registry.
fn generate(root: &Path, peers: u32, fanout: u32, batch: u32) -> anyhow::Result<Registry> {
    anyhow::ensure!(fanout < peers, "FANOUT must be below PEERS");
    let keys: Vec<Keypair> = (0..peers)
        .into_par_iter()
        .map(|i| Keypair::from_seed(seed(i)))
        .collect();
    let genesis = Genesis {
        peers: (0..peers as usize)
            .map(|i| GenesisPeer {
                uid: i as u32,
                public_key: keys[i].public().to_hex(),
                stake: 1_000_000,
            })
            .collect(),
    };
    let store = Store::open(root.to_str().expect("utf-8 path"))?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(faceblock_coordinator::init::init(
        &store,
        Params::default(),
        genesis,
    ))?;
    let net = rt.block_on(NetworkFile::load(&store))?;
    let (id, p) = (net.id(), &net.params);
    let width = p.seq_len as usize * p.out_dim as usize;
    let seq_len = p.seq_len as usize;
    let examples: Vec<u32> = (0..batch).collect();
    (0..peers)
        .into_par_iter()
        .try_for_each(|j| -> anyhow::Result<()> {
            let mut rng = rand::rngs::StdRng::seed_from_u64(j as u64);
            let to = targets(peers, fanout, j);
            let q = Queries {
                example: examples
                    .iter()
                    .flat_map(|e| to.iter().map(move |_| *e))
                    .collect(),
                dst: examples.iter().flat_map(|_| to.iter().copied()).collect(),
                tokens: (0..batch as usize * to.len())
                    .map(|_| (0..seq_len).map(|_| rng.gen::<u8>()).collect())
                    .collect(),
            };
            let signed = |key: u32, kind, i, b: &arrow::array::RecordBatch, path: &str| {
                let (ctx, attrs) = exchange::sign_context(kind, id, 0, j, i);
                exchange::encode_signed(path, b, &keys[key as usize], &ctx, &attrs)
            };
            let path = layout::queries(0, j);
            write(
                root,
                &path,
                &signed(j, Kind::Queries, 0, &q.batch(), &path)?,
            )?;
            for i in to {
                let a = random_tensor(&mut rng, &examples, width);
                let path = layout::activations(0, j, i);
                write(
                    root,
                    &path,
                    &signed(i, Kind::Activations, i, &a.batch(), &path)?,
                )?;
                let g = random_tensor(&mut rng, &examples, width);
                let path = layout::gradients(0, j, i);
                write(
                    root,
                    &path,
                    &signed(j, Kind::Gradients, i, &g.batch(), &path)?,
                )?;
            }
            // Every peer takes its φ row as its weights.
            let b = weights_batch(&[], &[]);
            let ctx = SignContext {
                kind: Kind::Weights,
                network_id: id,
                epoch: 0,
                uid: j,
            };
            let sig = keys[j as usize].sign_batch(&ctx, &[(SOURCE_KEY, "fisher")], &b);
            let path = layout::weights(0, j);
            let bytes = parquet_io::encode(
                &path,
                &b,
                &[
                    (SIGNATURE_KEY, hex::encode(sig)),
                    (EPOCH_KEY, "0".into()),
                    (SOURCE_KEY, "fisher".into()),
                ],
            )?;
            write(root, &path, &bytes)?;
            Ok(())
        })?;
    Ok(Registry::new(
        net.genesis
            .peers
            .iter()
            .map(|g| {
                Ok(Peer {
                    uid: g.uid,
                    public_key: faceblock_schemas::PublicKey::from_hex(&g.public_key)?,
                    modality: "TEXT".into(),
                    registered_epoch: 0,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
    ))
}

/// The checked tensors, read back directly, to time φ alone.
type Pairs = Vec<((u32, u32), Tensor)>;

fn load_pairs(
    root: &Path,
    peers: u32,
    fanout: u32,
    batch: u32,
    width: usize,
) -> anyhow::Result<(Pairs, Pairs)> {
    let allowed: Vec<u32> = (0..batch).collect();
    let mut a = vec![];
    let mut g = vec![];
    for j in 0..peers {
        for i in targets(peers, fanout, j) {
            for (out, path) in [
                (&mut a, layout::activations(0, j, i)),
                (&mut g, layout::gradients(0, j, i)),
            ] {
                let d = parquet_io::decode(&path, std::fs::read(root.join(&path))?.into())?;
                let t = exchange::check_tensor(&d, width, &allowed)
                    .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.detail))?;
                out.push(((j, i), t));
            }
        }
    }
    Ok((a, g))
}

/// φ without DataFusion: the same dot and order-free sum, pair by pair on
/// all cores; sorted by pair like the query's output.
fn plain_scores(a: &Pairs, g: &Pairs) -> Vec<((u32, u32), f64)> {
    let mut out: Vec<((u32, u32), f64)> = a
        .par_iter()
        .zip(g.par_iter())
        .map(|((p, at), (_, gt))| {
            let mut v: Vec<f64> = (0..gt.example.len())
                .map(|r| {
                    let d = fisher::dot(gt.row(r), at.row(r));
                    d * d
                })
                .collect();
            (*p, fisher::order_free_sum(&mut v))
        })
        .collect();
    out.sort_by_key(|x| x.0);
    out
}

fn peak_rss_mib(who: i32) -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(who, &mut ru) };
    ru.ru_maxrss as f64 / 1024.0
}

fn main() -> anyhow::Result<()> {
    let mut args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if args.len() < 3 {
        if let Ok(v) = std::env::var("FACEBLOCK_FISHER_BENCH") {
            args = v
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect();
        }
    }
    let (peers, fanout, batch) = match args.as_slice() {
        [p, f, b, ..] => (*p, *f, *b),
        _ => (64, 4, 32),
    };
    let partitions = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "cores: {partitions}; {peers} peers x {fanout} queried peers x batch {batch}, seq_len 32 x out_dim 64"
    );
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("net");
    let t = Instant::now();
    let registry = generate(&root, peers, fanout, batch)?;
    println!("generated in {:.1} s", t.elapsed().as_secs_f64());

    let store = Store::open(root.to_str().expect("utf-8 path"))?;
    let rt = tokio::runtime::Runtime::new()?;
    let net = rt.block_on(NetworkFile::load(&store))?;
    let mut best = f64::INFINITY;
    let mut mb = 0.0;
    for run in 0..3 {
        let t = Instant::now();
        let ex = rt.block_on(faceblock_coordinator::ingest::exchange::read_exchange(
            &store, &net, &registry, 0, partitions, None,
        ))?;
        let s = t.elapsed().as_secs_f64();
        anyhow::ensure!(
            ex.rejections.is_empty() && ex.scores.len() == (peers * fanout) as usize,
            "unexpected result: {} rejections, {} scores",
            ex.rejections.len(),
            ex.scores.len()
        );
        mb = ex.timings.tensor_bytes as f64 / 1e6;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        println!(
            "read_exchange run {run}: {:.0} ms = {:.0} MB/s of {mb:.1} MB activations+gradients \
             (list {:.0} ms, read {:.0} ms, decode+hash+signatures+checks {:.0} ms, phi on DataFusion {:.0} ms)",
            s * 1e3,
            mb / s,
            ms(ex.timings.list),
            ms(ex.timings.read),
            ms(ex.timings.verify),
            ms(ex.timings.score)
        );
        best = best.min(s);
    }
    println!(
        "read_exchange best: {:.0} ms = {:.0} MB/s; bench process peak RSS {:.0} MiB (includes generation)",
        best * 1e3,
        mb / best,
        peak_rss_mib(libc::RUSAGE_SELF)
    );

    let width = (net.params.seq_len * net.params.out_dim) as usize;
    let (a, g) = load_pairs(&root, peers, fanout, batch, width)?;
    let (ac, gc) = (a.clone(), g.clone());
    let t = Instant::now();
    let df = rt.block_on(fisher::scores(ac, gc, partitions))?;
    let df_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let plain = plain_scores(&a, &g);
    let plain_ms = t.elapsed().as_secs_f64() * 1e3;
    let same = df.len() == plain.len()
        && df
            .iter()
            .zip(&plain)
            .all(|(d, p)| (d.src, d.dst) == p.0 && d.score.to_bits() == p.1.to_bits());
    println!(
        "phi alone over {mb:.1} MB: pairing + inner products + DataFusion fb_sum {df_ms:.0} ms, plain Rust {plain_ms:.0} ms; bit-identical: {same}"
    );

    let _ = Command::new("sync").status();
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_faceblock"))
        .args([
            "--store",
            root.to_str().expect("utf-8 path"),
            "epoch",
            "run",
            "--timings",
        ])
        .output()?;
    let wall = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        out.status.success(),
        "epoch run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!(
        "faceblock epoch run: wall {wall:.2} s = {:.0} MB/s, peak RSS {:.0} MiB",
        mb / wall,
        peak_rss_mib(libc::RUSAGE_CHILDREN)
    );
    if let Some(l) = stdout.lines().find(|l| l.starts_with("timings:")) {
        println!("  {}", l.trim_start_matches("timings: "));
    }
    Ok(())
}
