//! SPEC 7: every reason code a weight submission or join request can earn.
//! Nothing a peer writes stops the epoch or changes another peer's row.

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use faceblock_schemas::schema::weights_batch;
use faceblock_schemas::{layout, Keypair, Store};

use super::common::*;

// The original SPEC 5.1 rule (`rows_meet_k = false`): a rejected submission
// leaves the previous row in force even after the peg raises k past it (here
// k goes 2 → 3 after epoch 0). The default withdraws such rows:
// `rows_below_k_leave_force_by_default`.
const PARAMS: &str =
    "k_initial = 2\nmax_weights = 3\nmax_submission_bytes = 4096\nrows_meet_k = false\n";

#[test]
fn every_reason_code_is_recorded_and_honest_rows_survive() {
    let net = Net::new(15, &[100], PARAMS);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = Store::open(&net.store).unwrap();
    let key = |i: usize| Keypair::load(&net.keys[i]).unwrap();
    net.set(0, "1=1,2=1");
    net.set(5, "0=1,1=1");
    rt.block_on(async {
        let put = |p: String, b: Vec<u8>| {
            let s = store.clone();
            async move { s.put(&p, b.into()).await.unwrap() }
        };
        put(weights_path(0, 1), b"this is not parquet".to_vec()).await;
        let bad_schema = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("dst", DataType::Int64, false),
                Field::new("weight", DataType::Float64, false),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![0, 1])),
                Arc::new(Float64Array::from(vec![1.0, 1.0])),
            ],
        )
        .unwrap();
        write_signed(&store, &key(2), 2, 0, &weights_path(0, 2), &bad_schema).await;
        // Forged: uid 3's path, signed with peer 0's key.
        write_signed(
            &store,
            &key(0),
            3,
            0,
            &weights_path(0, 3),
            &weights_batch(&[0, 1], &[1.0, 1.0]),
        )
        .await;
        // Moved: peer 5's valid file copied to uid 4's path.
        let five = store.get(&weights_path(0, 5)).await.unwrap();
        put(weights_path(0, 4), five.to_vec()).await;
        // Signed for epoch 1, submitted for epoch 0.
        write_signed(
            &store,
            &key(6),
            6,
            1,
            &weights_path(0, 6),
            &weights_batch(&[0, 1], &[1.0, 1.0]),
        )
        .await;
        let signed = |i: usize, dst: &[u32], w: &[f64]| {
            let s = store.clone();
            let k = key(i);
            let b = weights_batch(dst, w);
            async move { write_signed(&s, &k, i as u32, 0, &weights_path(0, i as u32), &b).await }
        };
        signed(7, &[0, 1], &[f64::NAN, 1.0]).await;
        signed(8, &[0, 1], &[-1.0, 2.0]).await;
        signed(9, &[0, 999], &[1.0, 1.0]).await;
        signed(10, &[0, 0, 1], &[1.0, 1.0, 1.0]).await;
        // Only one entry besides itself while k = 2.
        signed(11, &[11, 0], &[1.0, 1.0]).await;
        signed(12, &[0, 1, 2, 3], &[1.0, 1.0, 1.0, 1.0]).await;
        put(weights_path(0, 13), vec![7u8; 5000]).await;
        signed(14, &[], &[]).await;
        put(weights_path(0, 99), vec![1, 2, 3]).await;
        put(
            format!("{}/notes.txt", layout::weights_dir(0)),
            b"hello".to_vec(),
        )
        .await;
        let stranger = Keypair::from_seed([42; 32]).public().to_hex();
        put(layout::join_request(&stranger), b"garbage".to_vec()).await;
        put(format!("{}/README", layout::JOIN_REQUESTS), b"x".to_vec()).await;
        // A key has one spelling: an upper-case copy would register it twice.
        put(
            layout::join_request(&stranger.to_uppercase()),
            b"x".to_vec(),
        )
        .await;
    });

    let out = fb(&net.store, &["epoch", "run"]).ok();
    assert!(out.stdout.contains("epoch 0 committed"), "{}", out.stdout);
    let mut got =
        net.sql_csv("SELECT object, reason FROM rejections WHERE epoch = 0 ORDER BY object");
    got.sort();
    let w = |u: u32, r: &str| vec![weights_path(0, u), r.to_string()];
    let mut want = vec![
        w(1, "unreadable"),
        w(2, "schema"),
        w(3, "bad_signature"),
        w(4, "bad_signature"),
        w(6, "wrong_epoch"),
        w(7, "non_finite"),
        w(8, "negative"),
        w(9, "unknown_dst"),
        w(10, "duplicate_dst"),
        w(11, "too_few_weights"),
        w(12, "too_many_weights"),
        w(13, "too_large"),
        // No entries at k >= 1 is too few (SPEC 5.1 check 4), not `empty`.
        w(14, "too_few_weights"),
        w(99, "unknown_uid"),
        vec![
            format!("{}/notes.txt", layout::weights_dir(0)),
            "unexpected_object".into(),
        ],
        vec![
            layout::join_request(&Keypair::from_seed([42; 32]).public().to_hex()),
            "unreadable".into(),
        ],
        vec![
            format!("{}/README", layout::JOIN_REQUESTS),
            "unexpected_object".into(),
        ],
        vec![
            layout::join_request(
                &Keypair::from_seed([42; 32])
                    .public()
                    .to_hex()
                    .to_uppercase(),
            ),
            "unexpected_object".into(),
        ],
    ];
    want.sort();
    assert_eq!(got, want);

    // The honest rows are in force, untouched; nobody else has one.
    let srcs = net.sql_csv("SELECT DISTINCT src FROM weights WHERE epoch = 0 ORDER BY src");
    assert_eq!(srcs, vec![vec!["0".to_string()], vec!["5".to_string()]]);
    let e = net.sql_csv("SELECT rows_in_force, rows_accepted, rows_rejected, emission FROM epochs");
    assert_eq!(
        e,
        vec![vec![
            "2".to_string(),
            "2".into(),
            "15".into(),
            "1000000000".into()
        ]]
    );
    // The rejections are deterministic: verify recomputes them.
    fb(&net.store, &["epoch", "verify", "--epoch", "0"]).ok();

    // Epoch 1: peer 0's epoch-0 file replayed into epoch 1 is a wrong_epoch, and
    // its epoch-0 row stays in force.
    rt.block_on(async {
        let zero = store.get(&weights_path(0, 0)).await.unwrap();
        store.put(&weights_path(1, 0), zero).await.unwrap();
    });
    fb(&net.store, &["epoch", "run"]).ok();
    let r = net.sql_csv(
        "SELECT uid, reason FROM rejections WHERE epoch = 1 AND object LIKE 'submissions/%'",
    );
    assert_eq!(r, vec![vec!["0".to_string(), "wrong_epoch".into()]]);
    // A bad join request stays pending, and rejected, until its writer replaces it.
    let j =
        net.sql_csv("SELECT count(*) FROM rejections WHERE epoch = 1 AND object LIKE 'registry/%'");
    assert_eq!(j, vec![vec!["3".to_string()]]);
    let we = net.sql_csv("SELECT weights_epoch FROM state WHERE epoch = 1 AND uid = 0");
    assert_eq!(we, vec![vec!["0".to_string()]]);
}

#[test]
fn k_past_the_number_of_peers_asks_for_all_of_them() {
    // Three peers can name at most two others; k = 5 must not reject every row.
    let net = Net::new(3, &[100], "k_initial = 5\n");
    net.set(0, "1=1,2=1");
    net.set(1, "0=1");
    net.fb(&["epoch", "run"]).ok();
    let rej = net.sql_csv("SELECT object, reason FROM rejections");
    assert_eq!(
        rej,
        vec![vec![weights_path(0, 1), "too_few_weights".to_string()]]
    );
    let rows = net.sql_csv("SELECT DISTINCT src FROM weights");
    assert_eq!(rows, vec![vec!["0".to_string()]]);
}

/// `rows_meet_k` (on by default): peer 0's one-entry row is the only row (a
/// quarter of the stake behind peer 1, so L > 0 and k goes 1 → 2); at epoch 1
/// it no longer meets k and leaves force, recorded as `below_k` under its own
/// submission's name; nothing is minted.
#[test]
fn rows_below_k_leave_force_by_default() {
    // The `step` peg (the default's cap would hold k at 1 here: one ranked peer).
    let net = Net::new(4, &[100, 100, 100, 100], "peg_rule = \"step\"\n");
    net.set(0, "1=1");
    net.fb(&["epoch", "run"]).ok();
    let out = net.fb(&["epoch", "run"]).ok();
    assert!(out.stdout.contains("0 rows in force"), "{}", out.stdout);
    assert!(out.stdout.contains("k 2 -> 2"), "{}", out.stdout);
    let r = net.sql_csv("SELECT epoch, uid, object, reason, detail FROM rejections");
    assert_eq!(
        r,
        vec![vec![
            "1".to_string(),
            "0".into(),
            weights_path(0, 0),
            "below_k".into(),
            "row in force since epoch 0 sets 1 weights; k is now 2".into()
        ]]
    );
    let we = net.sql_csv("SELECT epoch, weights_epoch FROM state WHERE uid = 0 ORDER BY epoch");
    assert_eq!(
        we,
        vec![
            vec!["0".to_string(), "0".into()],
            vec!["1".into(), "".into()]
        ]
    );
    net.fb(&["epoch", "verify", "--epoch", "1"]).ok();
}
