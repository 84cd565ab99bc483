//! Learning peers end to end (issue 5): candle models on generated text,
//! exchanging queries, activations and gradients through the store, with the
//! coordinator closing each epoch. Small settings so a debug build runs them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::common::*;
use super::s3server::{S3Server, BUCKET};

const PARAMS: &str = "seq_len = 16\nout_dim = 16\n";
const STYLES: [&str; 4] = ["arithmetic", "prose", "records", "code"];

struct Market {
    net: Net,
    data: Vec<PathBuf>,
    behaviour: Vec<&'static str>,
}

impl Market {
    fn new(net: Net, honest: usize, noise: usize) -> Market {
        let mut data = Vec::new();
        for i in 0..honest + noise {
            let d = net.dir.path().join(format!("data{i}"));
            peer(
                "",
                &[
                    "text",
                    "--out",
                    d.to_str().unwrap(),
                    "--style",
                    STYLES[i % 4],
                    "--seed",
                    &i.to_string(),
                    "--bytes",
                    "40000",
                ],
            )
            .ok();
            data.push(d);
        }
        let mut behaviour = vec!["honest"; honest];
        behaviour.extend(std::iter::repeat_n("noise", noise));
        Market {
            net,
            data,
            behaviour,
        }
    }

    /// Genesis stake equal to one epoch's emission, so shares move by
    /// degrees instead of being set by the first epoch alone.
    fn local(honest: usize, noise: usize) -> Market {
        Market::new(
            Net::new(honest + noise, &[1_000_000_000], PARAMS),
            honest,
            noise,
        )
    }

    fn args<'a>(&'a self, i: usize, extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec![
            "--key",
            self.net.key(i),
            "--data",
            self.data[i].to_str().unwrap(),
            "--behaviour",
            self.behaviour[i],
            "--batch",
            "16",
            "--local-steps",
            "12",
        ];
        a.extend_from_slice(extra);
        a
    }

    fn step(&self, i: usize, phase: &str) -> Run {
        let mut a = vec!["step", "--phase", phase];
        a.extend(self.args(i, &[]));
        self.net.peer(&a).ok()
    }

    /// One epoch with the peers in `who`: all query, all answer, all learn,
    /// then the coordinator. Returns each peer's learn line.
    fn epoch(&self, who: &[usize]) -> HashMap<usize, String> {
        for phase in ["query", "answer"] {
            for i in who {
                self.step(*i, phase);
            }
        }
        let mut out = HashMap::new();
        for i in who {
            out.insert(*i, self.step(*i, "learn").stdout);
        }
        self.net.fb(&["epoch", "run"]).ok();
        out
    }

    fn f64s(&self, q: &str) -> Vec<Vec<f64>> {
        self.net
            .sql_csv(q)
            .into_iter()
            .map(|r| {
                r.iter()
                    .map(|v| v.parse::<f64>().unwrap_or(f64::NAN))
                    .collect()
            })
            .collect()
    }

    /// metrics.loss by (epoch, uid).
    fn losses(&self) -> HashMap<(u64, u64), f64> {
        self.f64s("SELECT epoch, uid, loss FROM metrics")
            .into_iter()
            .map(|r| ((r[0] as u64, r[1] as u64), r[2]))
            .collect()
    }
}

#[test]
fn peers_learn_and_a_noise_peer_earns_less() {
    let m = Market::local(3, 1);
    let epochs = 6u64;
    for _ in 0..epochs {
        m.epoch(&[0, 1, 2, 3]);
    }
    let loss = m.losses();
    for uid in 0..3u64 {
        let first = loss[&(0, uid)];
        let late = (epochs - 2..epochs).map(|e| loss[&(e, uid)]).sum::<f64>() / 2.0;
        assert!(
            late < first * 0.75 && late < loss[&(1, uid)],
            "uid {uid}: loss {first} at epoch 0, {} at epoch 1, {late} late",
            loss[&(1, uid)]
        );
    }
    // Fisher rank: the noise peer (uid 3) is worth less than every trained peer.
    let fr = m
        .f64s("SELECT uid, avg(fisher_rank) FROM state WHERE epoch >= 1 GROUP BY uid ORDER BY uid");
    assert_eq!(fr.len(), 4, "{fr:?}");
    // φ measures sensitivity, not benefit, so one trained peer whose
    // activations are small can score below the noise; the noise stays below
    // most trained peers and their mean.
    let mut trained: Vec<f64> = fr[..3].iter().map(|r| r[1]).collect();
    trained.sort_by(f64::total_cmp);
    let mean = trained.iter().sum::<f64>() / 3.0;
    assert!(
        fr[3][1] < trained[1] && fr[3][1] < mean,
        "fisher ranks {fr:?}"
    );
    // Its stake share falls below its genesis quarter (so below the trained
    // peers' mean), though slowly: it still earns dividends, because it
    // weighs the others honestly and holds bonds in them.
    let share = m.f64s(&format!(
        "SELECT stake_share FROM state WHERE uid = 3 AND epoch = {}",
        epochs - 1
    ));
    assert!(share[0][0] < 0.25, "noise peer's share {share:?}");
    // Every epoch verifies, including the exchange the Fisher job read.
    m.net
        .fb(&["epoch", "verify", "--epoch", &(epochs - 1).to_string()])
        .ok();
}

#[test]
fn an_offline_peer_comes_back_and_the_others_keep_learning() {
    let m = Market::local(3, 0);
    m.epoch(&[0, 1, 2]);
    m.epoch(&[0, 1, 2]);
    // Peer 2 misses two epochs; the others still learn, the student standing in.
    let away = [m.epoch(&[0, 1]), m.epoch(&[0, 1])];
    for lines in &away {
        for i in [0, 1] {
            assert!(!lines[&i].contains("answered [2"), "{}", lines[&i]);
        }
    }
    let back = m.epoch(&[0, 1, 2]);
    assert!(back[&2].contains("epoch 4: loss"), "{}", back[&2]);
    let fisher = m
        .net
        .sql_csv("SELECT src FROM fisher WHERE epoch = 4 AND dst = 2");
    assert!(
        !fisher.is_empty(),
        "nobody used peer 2's answers after it came back"
    );
    let loss = m.losses();
    for uid in 0..2u64 {
        assert!(
            loss[&(3, uid)] < loss[&(1, uid)],
            "uid {uid} stopped learning while peer 2 was away: {loss:?}"
        );
    }
    assert!(!loss.contains_key(&(2, 2)) && !loss.contains_key(&(3, 2)));
    assert!(loss[&(4, 2)] < loss[&(0, 2)], "{loss:?}");
}

#[test]
fn hostile_answers_are_skipped_by_peers_and_rejected_by_the_coordinator() {
    use faceblock_schemas::exchange::{self, Tensor};
    use faceblock_schemas::signing::Kind;
    use faceblock_schemas::{layout, Keypair, NetworkFile, Store};

    let m = Market::local(3, 0);
    for i in 0..2 {
        m.step(i, "query");
    }
    m.step(1, "answer");
    m.step(0, "answer");
    // Peer 2 answers with poison: NaN for peer 0, the wrong shape for peer 1.
    let store = Store::open(&m.net.store).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = Keypair::load(&m.net.keys[2]).unwrap();
    rt.block_on(async {
        let net = NetworkFile::load(&store).await.unwrap();
        for (j, fill, width) in [(0u32, f32::NAN, 16 * 16), (1, 0.5, 16 * 15)] {
            let q = store.get(&layout::queries(0, j)).await.unwrap();
            let q = exchange::check_queries(&exchange::decode("q", q).unwrap(), j, 16).unwrap();
            let ex: Vec<u32> = q.for_peer(2).iter().map(|e| e.0).collect();
            assert!(!ex.is_empty(), "peer {j} did not query peer 2");
            let t = Tensor {
                values: vec![fill; ex.len() * width],
                example: ex,
                width,
            };
            let path = layout::activations(0, j, 2);
            let (ctx, attrs) = exchange::sign_context(Kind::Activations, net.id(), 0, j, 2);
            let bytes = exchange::encode_signed(&path, &t.batch(), &key, &ctx, &attrs).unwrap();
            store.put(&path, bytes).await.unwrap();
        }
    });
    for i in 0..2 {
        let out = m.step(i, "learn").stdout;
        assert!(out.contains("missing [2]"), "{out}");
        assert!(!out.contains("NaN"), "{out}");
    }
    m.net.fb(&["epoch", "run"]).ok();
    let rej = m
        .net
        .sql_csv("SELECT object, reason FROM rejections WHERE epoch = 0 ORDER BY object");
    assert!(
        rej.contains(&vec![layout::activations(0, 0, 2), "non_finite".into()]),
        "{rej:?}"
    );
    assert!(
        rej.contains(&vec![layout::activations(0, 1, 2), "shape".into()]),
        "{rej:?}"
    );
    // The poisoned answers don't count towards peer 2's Fisher rank.
    let fisher = m
        .net
        .sql_csv("SELECT src FROM fisher WHERE epoch = 0 AND dst = 2");
    assert!(fisher.is_empty(), "{fisher:?}");

    // Epoch 1: peer 2 queries peer 0 properly, then sends it a NaN gradient.
    // Peer 0 must not train on it: its answers and loss stay finite after.
    m.step(2, "query");
    m.step(0, "answer");
    rt.block_on(async {
        let net = NetworkFile::load(&store).await.unwrap();
        let q = store.get(&layout::queries(1, 2)).await.unwrap();
        let q = exchange::check_queries(&exchange::decode("q", q).unwrap(), 2, 16).unwrap();
        let ex: Vec<u32> = q.for_peer(0).iter().map(|e| e.0).collect();
        assert!(!ex.is_empty(), "peer 2 did not query peer 0");
        let t = Tensor {
            values: vec![f32::NAN; ex.len() * 256],
            example: ex,
            width: 256,
        };
        let path = layout::gradients(1, 2, 0);
        let (ctx, attrs) = exchange::sign_context(Kind::Gradients, net.id(), 1, 2, 0);
        let bytes = exchange::encode_signed(&path, &t.batch(), &key, &ctx, &attrs).unwrap();
        store.put(&path, bytes).await.unwrap();
    });
    m.step(0, "learn");
    m.net.fb(&["epoch", "run"]).ok();
    m.epoch(&[0, 1]);
    let loss = m.losses();
    assert!(loss[&(2, 0)].is_finite(), "{loss:?}");
    let rej = m.net.sql_csv(
        "SELECT object, reason, detail FROM rejections WHERE epoch = 2 AND object LIKE '%/uid=0.parquet'",
    );
    assert!(rej.is_empty(), "peer 0 was poisoned: {rej:?}");
    let rej = m
        .net
        .sql_csv("SELECT reason FROM rejections WHERE epoch = 1");
    assert!(rej.contains(&vec!["non_finite".to_string()]), "{rej:?}");
}

#[test]
fn run_loops_with_a_coordinator_and_resumes_from_its_state() {
    let m = Market::local(3, 0);
    let spawn = |i: usize| {
        let mut a = vec!["run", "--epochs", "2", "--wait", "30", "--poll", "0.1"];
        a.extend(m.args(i, &[]));
        command(&peer_bin(), &m.net.store, &m.net.env, &a)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let children: Vec<_> = (0..3).map(spawn).collect();
    let metrics = |e: u64| PathBuf::from(&m.net.store).join(format!("exchange/epoch={e}/metrics"));
    for e in 0..2u64 {
        let deadline = Instant::now() + Duration::from_secs(240);
        while std::fs::read_dir(metrics(e))
            .map(|d| d.count())
            .unwrap_or(0)
            < 3
        {
            assert!(Instant::now() < deadline, "peers did not finish epoch {e}");
            std::thread::sleep(Duration::from_millis(100));
        }
        m.net.fb(&["epoch", "run"]).ok();
    }
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success());
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("epoch 0: loss") && out.contains("epoch 1: loss"),
            "{out}"
        );
    }
    // Every query was answered by the peers it went to.
    let fisher = m.net.sql_csv("SELECT count(*) FROM fisher WHERE epoch = 1");
    assert_eq!(fisher[0][0], "6", "3 peers × fanout 2 answered pairs");
    // A restart picks up the saved model and the open epoch.
    let out = m.step(0, "learn").stdout;
    assert!(out.contains("epoch 2: loss"), "{out}");
    m.net.fb(&["epoch", "run"]).ok();
    let loss = m.losses();
    assert!(loss[&(2, 0)] < loss[&(0, 0)], "{loss:?}");
}

#[test]
fn every_phase_works_on_s3_through_faults() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let net = Net::on(
        dir,
        format!("s3://{BUCKET}/market"),
        s3.env(true),
        3,
        &[1000],
        PARAMS,
    );
    let m = Market::new(net, 3, 0);
    s3.faults("error_rate=0.1&drop_rate=0.03&seed=5");
    m.epoch(&[0, 1, 2]);
    m.epoch(&[0, 1, 2]);
    let counts = s3.counts();
    s3.faults("");
    let rows = m.net.sql_csv("SELECT count(*) FROM fisher WHERE epoch = 1");
    assert_eq!(rows[0][0], "6", "faults: {counts}");
    let metrics = m.net.sql_csv("SELECT count(*) FROM metrics");
    assert_eq!(metrics[0][0], "6");
    m.net.fb(&["epoch", "verify", "--epoch", "1"]).ok();
    eprintln!("proxy counts: {counts}");
}

#[test]
fn a_peer_that_joins_mid_market_asks_and_is_asked() {
    let mut m = Market::local(3, 0);
    // A newcomer, not in genesis, with its own key.
    let newcomer = m.net.dir.path().join("newcomer.key");
    peer("", &["keygen", "--out", newcomer.to_str().unwrap()]).ok();
    let out = m.step(0, "query");
    assert!(out.stdout.contains("queried"), "{}", out.stdout);
    m.net
        .peer(&["register", "--key", newcomer.to_str().unwrap()])
        .ok();
    // Not registered yet: a clear error, not a crash.
    let early = m.net.peer(&[
        "step",
        "--phase",
        "query",
        "--key",
        newcomer.to_str().unwrap(),
        "--data",
        m.data[0].to_str().unwrap(),
    ]);
    assert_eq!(early.code, 1);
    assert!(early.stderr.contains("not registered"), "{}", early.stderr);
    m.net.fb(&["epoch", "run"]).ok();
    m.net.keys.push(newcomer);
    m.data.push(m.data[1].clone());
    m.behaviour.push("honest");
    m.epoch(&[0, 1, 2, 3]);
    let rows = m
        .net
        .sql_csv("SELECT src, dst FROM fisher WHERE epoch = 1 AND (src = 3 OR dst = 3)");
    assert!(
        rows.iter().any(|r| r[0] == "3"),
        "the newcomer asked nobody: {rows:?}"
    );
    assert!(
        rows.iter().any(|r| r[1] == "3"),
        "nobody asked the newcomer: {rows:?}"
    );
}
