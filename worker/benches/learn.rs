//! Tokens per second of a peer's learn phase on CPU: the same steps
//! `faceblock-peer step --phase learn` runs (a batch joined with remote
//! answers through the gating layer, then local steps with the student
//! standing in), at the network's default shape. `pipelines/bench.sh` runs it
//! beside the same model written in PyTorch (`pipelines/bench/learn_torch.py`).
//!
//! Settings (environment): BENCH_STEPS (30), BENCH_BATCH (32), BENCH_SEQ (32),
//! BENCH_OUT (64), BENCH_FANOUT (2).

use std::time::Instant;

use faceblock_worker::model::{Answer, Dims, ParamStore, PeerModel, Trainer};
use faceblock_worker::text::{generate, Corpus};
use rand::{Rng, SeedableRng};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let steps = env("BENCH_STEPS", 30);
    let batch = env("BENCH_BATCH", 32);
    let dims = Dims::new(env("BENCH_SEQ", 32), env("BENCH_OUT", 64));
    let fanout = env("BENCH_FANOUT", 2);
    let width = dims.seq_len * dims.out_dim;
    let corpus = Corpus::from_bytes(generate(1, 0, 400_000).into_bytes());
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let model = PeerModel::new(ParamStore::default(), dims, 8).expect("model");
    let mut opt = Trainer::new(&model, 3e-3, 3e-2).expect("optimizer");
    let answers = |rng: &mut rand::rngs::StdRng| -> Vec<Answer> {
        (0..fanout as u32 + 1)
            .map(|uid| Answer {
                uid: uid + 1,
                rows: (0..batch)
                    .filter(|r| r % (fanout + 1) != uid as usize)
                    .collect(),
                values: Vec::new(),
            })
            .map(|mut a| {
                a.values = (0..a.rows.len() * width)
                    .map(|_| rng.gen_range(-1.0f32..1.0))
                    .collect();
                a
            })
            .collect()
    };
    // Warm up.
    let w = corpus.sample(&mut rng, batch, dims.seq_len);
    model
        .train_step(&mut opt, &w, &answers(&mut rng))
        .expect("step");

    let mut time = |with_answers: bool| {
        let mut total = 0f64;
        for _ in 0..steps {
            let w = corpus.sample(&mut rng, batch, dims.seq_len);
            let a = if with_answers {
                answers(&mut rng)
            } else {
                vec![]
            };
            let t = Instant::now();
            model.train_step(&mut opt, &w, &a).expect("step");
            total += t.elapsed().as_secs_f64();
        }
        (steps * batch * dims.seq_len) as f64 / total
    };
    let exchange = time(true);
    let local = time(false);
    println!(
        "{{\"impl\": \"candle\", \"batch\": {batch}, \"seq_len\": {}, \"out_dim\": {}, \"fanout\": {fanout}, \"steps\": {steps}, \"threads\": {}, \"exchange_tokens_per_s\": {exchange:.0}, \"local_tokens_per_s\": {local:.0}}}",
        dims.seq_len,
        dims.out_dim,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
}
