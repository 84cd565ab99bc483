//! One suite, every embedded store: the same flow through the libraries on a
//! local directory and on `memory://`.

use faceblock_coordinator::epoch::{self, Outcome, RunOptions};
use faceblock_coordinator::{init, sql, verify};
use faceblock_schemas::{Genesis, GenesisPeer, Keypair, NetworkFile, Params, Store};
use faceblock_worker::submit;

/// `cache`: the local epoch cache's root, when the runs keep one; every
/// epoch must then verify from the ledger alone to the digest it committed.
async fn flow(store: Store, cache: Option<std::path::PathBuf>) {
    let keys: Vec<Keypair> = (0..4u8).map(|i| Keypair::from_seed([i + 1; 32])).collect();
    let genesis = Genesis {
        peers: keys
            .iter()
            .enumerate()
            .map(|(i, k)| GenesisPeer {
                uid: i as u32,
                public_key: k.public().to_hex(),
                stake: 1000 * (i as u64 + 1),
            })
            .collect(),
    };
    init::init(&store, Params::default(), genesis)
        .await
        .unwrap();
    let net = NetworkFile::load(&store).await.unwrap();
    let newcomer = Keypair::from_seed([9; 32]);
    submit::register(&store, &net, &newcomer).await.unwrap();
    let mut digests = vec![];
    for e in 0..3u64 {
        for (i, k) in keys.iter().enumerate() {
            let dst: Vec<u32> = (0..4u32).filter(|j| *j != i as u32).collect();
            let w: Vec<f64> = dst
                .iter()
                .map(|j| (*j as f64 + e as f64) % 3.0 + 0.5)
                .collect();
            submit::weights(
                &store,
                &net,
                k,
                i as u32,
                e,
                &submit::Row::Explicit { dst, weight: w },
            )
            .await
            .unwrap();
        }
        match epoch::run(
            &store,
            &RunOptions {
                epoch: None,
                partitions: 2,
                cache: cache.clone(),
            },
        )
        .await
        .unwrap()
        {
            Outcome::Committed { row, digest, .. } => {
                assert_eq!(row.epoch, e);
                assert_eq!(row.emission, 1_000_000_000);
                digests.push(digest);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    if let Some(root) = &cache {
        let kept = faceblock_coordinator::epoch::cache::EpochCache::new(root, store.url().as_str());
        let names: Vec<String> = std::fs::read_dir(kept.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        // The last epoch's list and only the data files it names.
        let list = format!("2-{}.list", digests[2]);
        let text = std::fs::read_to_string(kept.dir().join(&list)).unwrap();
        assert_eq!(names.iter().filter(|n| n.ends_with(".list")).count(), 1);
        assert!(
            names.contains(&list),
            "only the last epoch is kept: {names:?}"
        );
        // Files no list names are spares, fewer bytes than the named ones.
        let size = |n: &String| std::fs::metadata(kept.dir().join(n)).unwrap().len();
        let (mut spare, mut named) = (0, 0);
        for n in names.iter().filter(|n| n.ends_with(".cols")) {
            if n.starts_with("spare-") {
                spare += size(n);
                continue;
            }
            named += size(n);
            let (stem, part) = n.trim_end_matches(".cols").rsplit_once('.').unwrap();
            assert!(text.contains(&format!("{part} {stem} ")), "{n} unnamed");
        }
        assert!(spare <= named, "{spare} bytes of spares, {named} named");
    }
    for e in 0..3 {
        let v = verify::verify(&store, e, 3).await.unwrap();
        assert_eq!(v.digest, digests[e as usize]);
    }
    let b = sql::run(
        &store,
        "SELECT sum(emission) AS m, count(DISTINCT epoch) AS e FROM state",
        2,
    )
    .await
    .unwrap();
    let text = sql::render(&b, sql::Format::Csv).unwrap();
    assert_eq!(text.trim(), "m,e\n3000000000,3");
    // The newcomer got uid 4 and a marker to find it.
    let uid = faceblock_worker::identity::uid(&store, &net, &newcomer.public())
        .await
        .unwrap();
    assert_eq!(uid, 4);
    let head = faceblock_worker::identity::head(&store, &net)
        .await
        .unwrap();
    assert_eq!(head.open_epoch, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    flow(
        Store::open(dir.path().to_str().unwrap()).unwrap(),
        Some(cache.path().to_path_buf()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    flow(Store::open("memory://suite/net").unwrap(), None).await;
}
