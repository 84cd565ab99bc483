//! SPEC 5.3: the Fisher job over exchange files written straight with the
//! schemas crate (what `faceblock-peer` writes, and what a hostile peer could).

use std::sync::Arc;

use arrow::array::{Array, Float64Array, ListArray, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use faceblock_coordinator::init;
use faceblock_schemas::exchange::{self, Metrics, Queries, Tensor};
use faceblock_schemas::schema::{weights_batch, EPOCH_KEY, SIGNATURE_KEY, SOURCE_KEY};
use faceblock_schemas::signing::{Kind, SignContext};
use faceblock_schemas::{layout, parquet_io, Genesis, GenesisPeer, Keypair, Params, Store};

use super::common::*;
use super::s3server::{S3Server, BUCKET};

/// seq_len × out_dim = 4 values per example.
const PARAMS: &str = "seq_len = 2\nout_dim = 2\n";
const W: usize = 4;

/// A network of genesis peers with in-process keys, and writers for every
/// exchange object.
struct Fx {
    net: Net,
    store: Store,
    keys: Vec<Keypair>,
    id: [u8; 32],
    rt: tokio::runtime::Runtime,
}

impl Fx {
    fn new(n: usize, params: &str) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("net").display().to_string();
        let store = Store::open(&url).unwrap();
        Fx::on(dir, url, store, vec![], n, params)
    }

    fn on(
        dir: tempfile::TempDir,
        url: String,
        store: Store,
        env: Vec<(String, String)>,
        n: usize,
        params: &str,
    ) -> Fx {
        let keys: Vec<Keypair> = (0..n)
            .map(|i| Keypair::from_seed([i as u8 + 60; 32]))
            .collect();
        let genesis = Genesis {
            peers: keys
                .iter()
                .enumerate()
                .map(|(i, k)| GenesisPeer {
                    uid: i as u32,
                    public_key: k.public().to_hex(),
                    stake: 100,
                })
                .collect(),
        };
        let rt = tokio::runtime::Runtime::new().unwrap();
        let file = rt
            .block_on(init::init(
                &store,
                Params::from_toml(params).unwrap(),
                genesis,
            ))
            .unwrap();
        Fx {
            net: Net {
                dir,
                store: url,
                keys: vec![],
                env,
            },
            store,
            keys,
            id: file.id(),
            rt,
        }
    }

    fn put(&self, path: &str, bytes: impl Into<Bytes>) {
        self.rt
            .block_on(self.store.put(path, bytes.into()))
            .unwrap();
    }

    fn get(&self, path: &str) -> Bytes {
        self.rt.block_on(self.store.get(path)).unwrap()
    }

    /// `batch` signed by `key` as an exchange object of (kind, epoch, j, i).
    fn signed(
        &self,
        key: usize,
        kind: Kind,
        epoch: u64,
        j: u32,
        i: u32,
        batch: &RecordBatch,
    ) -> Bytes {
        let (ctx, attrs) = exchange::sign_context(kind, self.id, epoch, j, i);
        exchange::encode_signed("t", batch, &self.keys[key], &ctx, &attrs).unwrap()
    }

    /// Peer j's queries: (example, addressed peer) rows.
    fn queries(&self, epoch: u64, j: u32, rows: &[(u32, u32)]) {
        let q = Queries {
            example: rows.iter().map(|r| r.0).collect(),
            dst: rows.iter().map(|r| r.1).collect(),
            tokens: rows
                .iter()
                .map(|r| vec![b'a'.wrapping_add(r.0 as u8); 2])
                .collect(),
        };
        let b = self.signed(j as usize, Kind::Queries, epoch, j, 0, &q.batch());
        self.put(&layout::queries(epoch, j), b);
    }

    /// i's answer to j, signed by i.
    fn answer(&self, epoch: u64, j: u32, i: u32, t: &Tensor) {
        let b = self.signed(i as usize, Kind::Activations, epoch, j, i, &t.batch());
        self.put(&layout::activations(epoch, j, i), b);
    }

    /// j's gradient for i, signed by j.
    fn gradient(&self, epoch: u64, j: u32, i: u32, t: &Tensor) {
        let b = self.signed(j as usize, Kind::Gradients, epoch, j, i, &t.batch());
        self.put(&layout::gradients(epoch, j, i), b);
    }

    fn metrics(&self, epoch: u64, i: u32, m: Metrics) {
        let b = self.signed(i as usize, Kind::Metrics, epoch, i, 0, &m.batch());
        self.put(&layout::metrics(epoch, i), b);
    }

    fn weights(&self, epoch: u64, uid: u32, dst: &[u32], w: &[f64], fisher: bool) {
        let batch = weights_batch(dst, w);
        let ctx = SignContext {
            kind: Kind::Weights,
            network_id: self.id,
            epoch,
            uid,
        };
        let attrs: Vec<(&str, &str)> = if fisher {
            vec![(SOURCE_KEY, "fisher")]
        } else {
            vec![]
        };
        let sig = self.keys[uid as usize].sign_batch(&ctx, &attrs, &batch);
        let mut meta = vec![
            (SIGNATURE_KEY, hex::encode(sig)),
            (EPOCH_KEY, epoch.to_string()),
        ];
        if fisher {
            meta.push((SOURCE_KEY, "fisher".to_string()));
        }
        let path = layout::weights(epoch, uid);
        self.put(&path, parquet_io::encode(&path, &batch, &meta).unwrap());
    }

    fn sql(&self, q: &str) -> Vec<Vec<String>> {
        self.net.sql_csv(q)
    }
}

fn t(rows: &[(u32, [f32; W])]) -> Tensor {
    Tensor {
        example: rows.iter().map(|r| r.0).collect(),
        values: rows.iter().flat_map(|r| r.1).collect(),
        width: W,
    }
}

fn f(s: &str) -> f64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

/// Four peers; hand-computed φ (dot products of small integers, exact):
/// φ(0,1) = 2² + 2² + (−2)² = 12, φ(0,2) = 2² = 4, φ(0,3) = 0, φ(1,0) = 3² = 9,
/// φ(1,3) = 1² + 0² = 1, φ(2,1) = 1² = 1.
fn happy(fx: &Fx) {
    fx.queries(0, 0, &[(0, 1), (1, 1), (2, 1), (0, 2), (1, 3)]);
    fx.queries(0, 1, &[(5, 0), (5, 3), (6, 3)]);
    fx.queries(0, 2, &[(7, 1)]);
    let (a, g) = (
        t(&[
            (0, [1., 0., 0., 0.]),
            (1, [0., 1., 0., 0.]),
            (2, [0., 0., 1., 0.]),
        ]),
        t(&[
            (0, [2., 5., 5., 5.]),
            (1, [7., 2., 0., 0.]),
            (2, [0., 0., -2., 9.]),
        ]),
    );
    fx.answer(0, 0, 1, &a);
    fx.gradient(0, 0, 1, &g);
    fx.answer(0, 0, 2, &t(&[(0, [1., 1., 0., 0.])]));
    fx.gradient(0, 0, 2, &t(&[(0, [1., 1., 3., 3.])]));
    fx.answer(0, 0, 3, &t(&[(1, [0., 0., 0., 1.])]));
    fx.gradient(0, 0, 3, &t(&[(1, [1., 1., 1., 0.])]));
    fx.answer(0, 1, 0, &t(&[(5, [1., 1., 1., 0.])]));
    fx.gradient(0, 1, 0, &t(&[(5, [1., 1., 1., 0.])]));
    fx.answer(0, 1, 3, &t(&[(5, [1., 0., 0., 0.]), (6, [0., 1., 0., 0.])]));
    fx.gradient(0, 1, 3, &t(&[(5, [1., 0., 0., 0.]), (6, [0., 0., 4., 4.])]));
    fx.answer(0, 2, 1, &t(&[(7, [0.5, 0.5, 0., 0.])]));
    fx.gradient(0, 2, 1, &t(&[(7, [1., 1., 0., 0.])]));
    // Peer 0 sets its own row; peer 1 takes its φ row; peer 3 asks for φ it has none of.
    fx.weights(0, 0, &[1, 3], &[1.0, 1.0], false);
    fx.weights(0, 1, &[], &[], true);
    fx.weights(0, 3, &[], &[], true);
}

#[test]
fn fisher_scores_ranks_rows_and_divergence() {
    let fx = Fx::new(4, PARAMS);
    happy(&fx);
    fx.net.fb(&["epoch", "run"]).ok();

    let phi =
        fx.sql("SELECT src, dst, score, examples FROM fisher WHERE epoch = 0 ORDER BY src, dst");
    let got: Vec<(String, String, f64, String)> = phi
        .iter()
        .map(|r| (r[0].clone(), r[1].clone(), f(&r[2]), r[3].clone()))
        .collect();
    let want = [
        ("0", "1", 12.0, "3"),
        ("0", "2", 4.0, "1"),
        ("0", "3", 0.0, "1"),
        ("1", "0", 9.0, "1"),
        ("1", "3", 1.0, "2"),
        ("2", "1", 1.0, "1"),
    ];
    assert_eq!(got.len(), want.len(), "{phi:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0.as_str(), g.1.as_str(), g.2, g.3.as_str()), w);
    }

    // fisher_rank = Σ_j φ(j,i) / n with n = 4; divergence only with a row and φ.
    let state = fx
        .sql("SELECT uid, fisher_rank, fisher_divergence FROM state WHERE epoch = 0 ORDER BY uid");
    let rank: Vec<f64> = state.iter().map(|r| f(&r[1])).collect();
    assert_eq!(rank, vec![2.25, 3.25, 1.0, 0.25]);
    let div: Vec<&str> = state.iter().map(|r| r[2].as_str()).collect();
    // Peer 0: w = (½ on 1, ½ on 3), φ̂ = (¾ on 1, ¼ on 2): ½(¼ + ¼ + ½) = ½.
    assert_eq!(f(div[0]), 0.5);
    assert_eq!(f(div[1]), 0.0, "a fisher-sourced row follows φ");
    assert_eq!(div[2], "", "peer 2 has φ but no row");
    assert_eq!(div[3], "", "peer 3 has no φ");

    // Peer 1's row in force is its normalised φ row: 9 : 1.
    let w1 = fx.sql("SELECT dst, weight FROM weights WHERE epoch = 0 AND src = 1 ORDER BY dst");
    assert_eq!(w1.len(), 2);
    assert_eq!((w1[0][0].as_str(), f(&w1[0][1])), ("0", 9.0 / 10.0));
    assert_eq!((w1[1][0].as_str(), f(&w1[1][1])), ("3", 1.0 / 10.0));
    let e = fx.sql("SELECT rows_in_force, rows_accepted, rows_rejected FROM epochs");
    assert_eq!(e, vec![vec!["2".to_string(), "2".into(), "1".into()]]);
    let r = fx.sql("SELECT uid, object, reason FROM rejections WHERE epoch = 0");
    assert_eq!(
        r,
        vec![vec![
            "3".to_string(),
            layout::weights(0, 3),
            "no_fisher_scores".into()
        ]]
    );
    // Every exchange object is a recorded input.
    let kinds =
        fx.sql("SELECT kind, count(*) FROM inputs WHERE epoch = 0 GROUP BY kind ORDER BY kind");
    assert_eq!(
        kinds,
        vec![
            vec!["activations".to_string(), "6".into()],
            vec!["gradients".to_string(), "6".into()],
            vec!["queries".to_string(), "3".into()],
            vec!["weights".to_string(), "3".into()],
        ]
    );

    // verify recomputes it; an answer altered afterwards makes it fail (exit 3).
    fx.net.fb(&["epoch", "verify", "--epoch", "0"]).ok();
    fx.answer(0, 0, 1, &t(&[(0, [9., 0., 0., 0.])]));
    let v = fx.net.fb(&["epoch", "verify", "--epoch", "0"]);
    assert_eq!(v.code, 3, "{}\n{}", v.stdout, v.stderr);
    assert!(
        v.stderr.contains(&layout::activations(0, 0, 1)),
        "{}",
        v.stderr
    );
}

#[test]
fn same_fisher_digest_with_one_and_many_partitions() {
    let fx = Fx::new(4, PARAMS);
    happy(&fx);
    // More examples, so sums have rounding that depends on order.
    let n = 700u32;
    let rows: Vec<(u32, u32)> = (100..100 + n).map(|e| (e, 2)).collect();
    fx.queries(0, 3, &rows);
    let val = |e: u32, k: u32| ((e * 7919 + k * 104_729) % 1000) as f32 / 37.0 - 13.0;
    let mk = |salt: u32| Tensor {
        example: (100..100 + n).collect(),
        values: (100..100 + n)
            .flat_map(|e| (0..W as u32).map(move |k| val(e + salt, k)))
            .collect(),
        width: W,
    };
    fx.answer(0, 3, 2, &mk(0));
    fx.gradient(0, 3, 2, &mk(3));
    let copy = fx.net.dir.path().join("copy");
    let status = std::process::Command::new("cp")
        .args(["-r", &fx.net.store, copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let a = fx.net.fb(&["--partitions", "1", "epoch", "run"]).ok();
    let b = fb(
        copy.to_str().unwrap(),
        &["--partitions", "8", "epoch", "run"],
    )
    .ok();
    assert_eq!(digest_of(&a.stdout), digest_of(&b.stdout));
    fb(
        copy.to_str().unwrap(),
        &["--partitions", "3", "epoch", "verify", "--epoch", "0"],
    )
    .ok();
    let s = fx.sql("SELECT examples FROM fisher WHERE src = 3 AND dst = 2");
    assert_eq!(s, vec![vec![n.to_string()]]);
}

fn list_f64_batch(example: &[u32], values: &[f64], width: usize) -> RecordBatch {
    let list = ListArray::new(
        Arc::new(Field::new("item", DataType::Float64, false)),
        arrow::buffer::OffsetBuffer::from_lengths(std::iter::repeat_n(width, example.len())),
        Arc::new(Float64Array::from(values.to_vec())),
        None,
    );
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("example", DataType::UInt32, false),
            Field::new("values", list.data_type().clone(), false),
        ])),
        vec![
            Arc::new(UInt32Array::from(example.to_vec())),
            Arc::new(list),
        ],
    )
    .unwrap()
}

#[test]
fn every_exchange_rejection_is_recorded_and_ignored() {
    let fx = Fx::new(4, &format!("{PARAMS}max_submission_bytes = 8192\n"));
    let e = 0;
    fx.queries(e, 0, &[(0, 1), (1, 1), (0, 2), (1, 2), (0, 3), (1, 3)]);
    fx.queries(e, 1, &[(0, 0), (0, 2), (1, 2), (0, 3)]);
    fx.queries(e, 3, &[(0, 0), (0, 1), (0, 2)]);
    // Peer 2's queries: tokens as text, not binary.
    let bad_q = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("example", DataType::UInt32, false),
            Field::new("dst", DataType::UInt32, false),
            Field::new("tokens", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(UInt32Array::from(vec![0])),
            Arc::new(UInt32Array::from(vec![0])),
            Arc::new(StringArray::from(vec!["ab"])),
        ],
    )
    .unwrap();
    fx.put(
        &layout::queries(e, 2),
        fx.signed(2, Kind::Queries, e, 2, 0, &bad_q),
    );

    // Answers.
    let wide3 = Tensor {
        example: vec![0],
        values: vec![1.0; 3],
        width: 3,
    };
    fx.answer(e, 0, 1, &wide3); // shape: wrong width
    fx.answer(e, 0, 2, &t(&[(0, [1., 0., 2., 0.]), (1, [5., 5., 5., 5.])]));
    fx.answer(e, 0, 3, &t(&[(0, [1., f32::NAN, 0., 0.])])); // non_finite
    fx.answer(e, 1, 0, &t(&[(0, [1., 2., 3., 4.])]));
    fx.answer(e, 1, 2, &t(&[(7, [1., 1., 1., 1.])])); // shape: example 7 not addressed
    fx.answer(e, 1, 3, &t(&[(0, [1., 1., 1., 1.])]));
    fx.answer(e, 3, 2, &t(&[(0, [1., 1., 1., 1.])]));
    // bad_signature: peer 0's answer to 1 moved to its answer-to-3 path ...
    fx.put(
        &layout::activations(e, 3, 0),
        fx.get(&layout::activations(e, 1, 0)),
    );
    // ... and peer 1's answer to 3 forged with peer 2's key.
    fx.put(
        &layout::activations(e, 3, 1),
        fx.signed(
            2,
            Kind::Activations,
            e,
            3,
            1,
            &t(&[(0, [1., 1., 1., 1.])]).batch(),
        ),
    );
    // no_query: peer 2's queries were rejected.
    fx.answer(e, 2, 0, &t(&[(0, [1., 1., 1., 1.])]));
    // unknown_uid and unexpected_object.
    let stray_uid = format!("{}/query=0/uid=9.parquet", layout::activations_dir(e));
    fx.put(&stray_uid, fx.get(&layout::activations(e, 0, 2)));
    let notes = format!("{}/query=0/notes.txt", layout::activations_dir(e));
    fx.put(&notes, &b"hello"[..]);

    // Gradients.
    fx.gradient(e, 0, 1, &t(&[(0, [1., 1., 1., 1.])])); // no_query: its answer was rejected
    fx.gradient(e, 0, 2, &t(&[(0, [3., 0., 1., 0.])])); // φ(0,2) = 5² = 25
    fx.gradient(e, 1, 0, &t(&[(0, [1., 1., 1., 1.])])); // φ(1,0) = 10² = 100
    fx.put(
        &layout::gradients(e, 1, 3),
        fx.signed(
            1,
            Kind::Gradients,
            e,
            1,
            3,
            &list_f64_batch(&[0], &[1.0; W], W),
        ),
    ); // schema
    fx.gradient(e, 3, 2, &t(&[(0, [1., 1., 1., 1.]), (3, [1., 1., 1., 1.])])); // shape: 3 never answered

    // Metrics.
    fx.metrics(
        e,
        0,
        Metrics {
            loss: 2.5,
            distill_loss: 1.25,
            examples: 32,
        },
    );
    fx.metrics(
        e,
        1,
        Metrics {
            loss: 3.0,
            distill_loss: 0.5,
            examples: 16,
        },
    );
    fx.put(&layout::metrics(e, 2), &b"not parquet"[..]); // unreadable
    fx.put(&layout::metrics(e, 3), vec![7u8; 10_000]); // too_large

    let out = fx.net.fb(&["epoch", "run"]).ok();
    assert!(out.stdout.contains("epoch 0 committed"), "{}", out.stdout);
    let mut got =
        fx.sql("SELECT object, uid, reason FROM rejections WHERE epoch = 0 ORDER BY object");
    got.sort();
    let r = |o: String, uid: &str, reason: &str| vec![o, uid.to_string(), reason.to_string()];
    let mut want = vec![
        r(layout::queries(e, 2), "2", "schema"),
        r(layout::activations(e, 0, 1), "1", "shape"),
        r(layout::activations(e, 0, 3), "3", "non_finite"),
        r(layout::activations(e, 1, 2), "2", "shape"),
        r(layout::activations(e, 3, 0), "0", "bad_signature"),
        r(layout::activations(e, 3, 1), "1", "bad_signature"),
        r(layout::activations(e, 2, 0), "0", "no_query"),
        r(stray_uid, "9", "unknown_uid"),
        r(notes, "", "unexpected_object"),
        r(layout::gradients(e, 0, 1), "0", "no_query"),
        r(layout::gradients(e, 1, 3), "1", "schema"),
        r(layout::gradients(e, 3, 2), "3", "shape"),
        r(layout::metrics(e, 2), "2", "unreadable"),
        r(layout::metrics(e, 3), "3", "too_large"),
    ];
    want.sort();
    assert_eq!(got, want);

    // Only the valid pairs score; nothing rejected contributes.
    let phi =
        fx.sql("SELECT src, dst, score, examples FROM fisher WHERE epoch = 0 ORDER BY src, dst");
    assert_eq!(
        phi.iter()
            .map(|r| (r[0].as_str(), r[1].as_str(), f(&r[2]), r[3].as_str()))
            .collect::<Vec<_>>(),
        vec![("0", "2", 25.0, "1"), ("1", "0", 100.0, "1")]
    );
    let rank = fx.sql("SELECT fisher_rank FROM state WHERE epoch = 0 ORDER BY uid");
    let rank: Vec<f64> = rank.iter().map(|r| f(&r[0])).collect();
    assert_eq!(rank, vec![25.0, 0.0, 6.25, 0.0]);
    let m = fx
        .sql("SELECT uid, loss, distill_loss, examples FROM metrics WHERE epoch = 0 ORDER BY uid");
    assert_eq!(
        m.iter()
            .map(|r| (r[0].as_str(), f(&r[1]), f(&r[2]), r[3].as_str()))
            .collect::<Vec<_>>(),
        vec![("0", 2.5, 1.25, "32"), ("1", 3.0, 0.5, "16")]
    );
    // Exchange rejections are not weight rows.
    assert_eq!(
        fx.sql("SELECT rows_rejected FROM epochs WHERE epoch = 0"),
        vec![vec!["0".to_string()]]
    );
    fx.net.fb(&["epoch", "verify", "--epoch", "0"]).ok();

    // Epoch 1: epoch-0 files replayed into epoch 1 are wrong_epoch.
    for p in [layout::queries(0, 1), layout::activations(0, 1, 0)] {
        fx.put(&p.replace("epoch=0", "epoch=1"), fx.get(&p));
    }
    fx.net.fb(&["epoch", "run"]).ok();
    let got = fx.sql("SELECT object, reason FROM rejections WHERE epoch = 1 ORDER BY object");
    assert_eq!(
        got,
        vec![
            vec![layout::activations(1, 1, 0), "wrong_epoch".into()],
            vec![layout::queries(1, 1), "wrong_epoch".into()],
        ]
    );
    assert_eq!(
        fx.sql("SELECT count(*) FROM fisher WHERE epoch = 1"),
        vec![vec!["0".to_string()]]
    );
}

#[test]
fn fisher_job_on_s3() {
    let s3 = S3Server::start();
    let url = format!("s3://{BUCKET}/fisher/net");
    let opts = s3.options(false);
    let o: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let store = Store::open_with(&url, &o).unwrap();
    let fx = Fx::on(
        tempfile::tempdir().unwrap(),
        url,
        store,
        s3.env(false),
        4,
        PARAMS,
    );
    happy(&fx);
    fx.net.fb(&["epoch", "run"]).ok();
    assert_eq!(
        fx.sql("SELECT count(*), sum(examples) FROM fisher WHERE epoch = 0"),
        vec![vec!["6".to_string(), "9".into()]]
    );
    let r = fx.sql("SELECT fisher_rank FROM state WHERE epoch = 0 AND uid = 1");
    assert_eq!(f(&r[0][0]), 3.25);
    fx.net.fb(&["epoch", "verify", "--epoch", "0"]).ok();
}
