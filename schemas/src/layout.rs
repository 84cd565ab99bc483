//! Where every object lives under a network's root (SPEC 2). Paths are
//! relative to the store root; [`crate::Store`] adds the prefix.
//!
//! Every path is built by one private `*_at` function that takes any
//! `Display` value, so the same format gives both a concrete path
//! (`weights(3, 7)`) and a pattern with [`ANY`] where a value varies
//! ([`Authored::pattern`]): the access policies of [`crate::policy`] are made
//! from these patterns, never from a second copy of the layout.

use std::fmt::Display;

/// Stands for "any value" in a path pattern, as IAM resource ARNs write it.
pub const ANY: &str = "*";

/// Folder of the network files the coordinator writes.
pub const NETWORK_DIR: &str = "network";
/// Written once by `faceblock init`.
pub const PARAMS: &str = "network/params.json";
/// The open epoch and its k, rewritten after every commit so peers need not
/// read the ledger.
pub const HEAD: &str = "network/head.json";
/// Folder of pending join requests.
pub const JOIN_REQUESTS: &str = "registry/requests";
/// Folder of the uid markers the coordinator writes for joined peers.
pub const UID_MARKERS: &str = "registry/uids";
/// Folder of the ledger's Delta tables.
pub const LEDGER: &str = "ledger";

/// A pending join request for `public_key_hex`.
pub fn join_request(public_key_hex: &str) -> String {
    join_request_at(public_key_hex)
}

fn join_request_at(public_key_hex: impl Display) -> String {
    format!("{JOIN_REQUESTS}/{public_key_hex}.parquet")
}

/// Where a joined peer finds its uid once registered.
pub fn uid_marker(public_key_hex: &str) -> String {
    format!("{UID_MARKERS}/{public_key_hex}.json")
}

/// Folder of weight submissions for `epoch`.
pub fn weights_dir(epoch: u64) -> String {
    weights_dir_at(epoch)
}

fn weights_dir_at(epoch: impl Display) -> String {
    format!("submissions/epoch={epoch}/weights")
}

/// Peer `uid`'s weight submission for `epoch`.
pub fn weights(epoch: u64, uid: u32) -> String {
    weights_at(epoch, uid)
}

fn weights_at(epoch: impl Display, uid: impl Display) -> String {
    format!("{}/uid={uid}.parquet", weights_dir_at(epoch))
}

/// Reads the uid out of a `uid=<u>.parquet` file name; `None` for anything else.
pub fn parse_uid_file(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("uid=")?.strip_suffix(".parquet")?;
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Reads a public key hex out of `<hex>.parquet`.
pub fn parse_join_file(name: &str) -> Option<&str> {
    let hex = name.strip_suffix(".parquet")?;
    // Lower case only: one key, one spelling, one request (hex::encode's form).
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(hex)
}

/// Folder of everything peers exchanged in `epoch`.
pub fn exchange_dir(epoch: u64) -> String {
    exchange_dir_at(epoch)
}

fn exchange_dir_at(epoch: impl Display) -> String {
    format!("exchange/epoch={epoch}")
}

/// Peer `querier`'s query batch for `epoch`.
pub fn queries(epoch: u64, querier: u32) -> String {
    queries_at(epoch, querier)
}

fn queries_at(epoch: impl Display, querier: impl Display) -> String {
    format!("{}/queries/uid={querier}.parquet", exchange_dir_at(epoch))
}

/// Folder of the query batches of `epoch`.
pub fn queries_dir(epoch: u64) -> String {
    format!("{}/queries", exchange_dir(epoch))
}

/// `f_i(x)` computed by `answerer` for `querier`'s examples.
pub fn activations(epoch: u64, querier: u32, answerer: u32) -> String {
    activations_at(epoch, querier, answerer)
}

fn activations_at(epoch: impl Display, querier: impl Display, answerer: impl Display) -> String {
    format!(
        "{}/activations/query={querier}/uid={answerer}.parquet",
        exchange_dir_at(epoch)
    )
}

/// Folder of all activations of `epoch`.
pub fn activations_dir(epoch: u64) -> String {
    format!("{}/activations", exchange_dir(epoch))
}

/// `dL_querier/df_answerer(x)`, written by `querier`.
pub fn gradients(epoch: u64, querier: u32, answerer: u32) -> String {
    gradients_at(epoch, querier, answerer)
}

fn gradients_at(epoch: impl Display, querier: impl Display, answerer: impl Display) -> String {
    format!(
        "{}/gradients/query={querier}/uid={answerer}.parquet",
        exchange_dir_at(epoch)
    )
}

/// Folder of all gradients of `epoch`.
pub fn gradients_dir(epoch: u64) -> String {
    format!("{}/gradients", exchange_dir(epoch))
}

/// Peer `uid`'s self-reported metrics for `epoch`.
pub fn metrics(epoch: u64, uid: u32) -> String {
    metrics_at(epoch, uid)
}

fn metrics_at(epoch: impl Display, uid: impl Display) -> String {
    format!("{}/metrics/uid={uid}.parquet", exchange_dir_at(epoch))
}

/// Folder of the metrics of `epoch`.
pub fn metrics_dir(epoch: u64) -> String {
    format!("{}/metrics", exchange_dir(epoch))
}

/// Reads `(querier, writer)` out of a path ending in
/// `query=<j>/uid=<i>.parquet`; `None` for anything else.
pub fn parse_pair_path(object: &str) -> Option<(u32, u32)> {
    let mut parts = object.rsplit('/');
    let file = parts.next()?;
    let dir = parts.next()?;
    let uid = parse_uid_file(file)?;
    let q = dir.strip_prefix("query=")?;
    let querier = parse_uid_file(&format!("uid={q}.parquet"))?;
    Some((querier, uid))
}

/// A ledger table's folder.
pub fn ledger_table(name: &str) -> String {
    format!("{LEDGER}/{name}")
}

/// The kinds of object a peer writes (SPEC 2): each one's path names its
/// author, so a store policy can let a peer write its own and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Authored {
    /// `registry/requests/<public-key-hex>.parquet`, by the key that asks to join.
    JoinRequest,
    /// `submissions/epoch=<e>/weights/uid=<u>.parquet`, by u.
    Weights,
    /// `exchange/epoch=<e>/queries/uid=<j>.parquet`, by j.
    Queries,
    /// `exchange/epoch=<e>/activations/query=<j>/uid=<i>.parquet`, by i.
    Activations,
    /// `exchange/epoch=<e>/gradients/query=<j>/uid=<i>.parquet`, by j.
    Gradients,
    /// `exchange/epoch=<e>/metrics/uid=<i>.parquet`, by i.
    Metrics,
}

impl Authored {
    /// Every kind, in SPEC 2 order.
    pub const ALL: [Authored; 6] = [
        Authored::JoinRequest,
        Authored::Weights,
        Authored::Queries,
        Authored::Activations,
        Authored::Gradients,
        Authored::Metrics,
    ];

    /// The kind's name, as rejections and reports write it.
    pub fn name(self) -> &'static str {
        match self {
            Authored::JoinRequest => "join",
            Authored::Weights => "weights",
            Authored::Queries => "queries",
            Authored::Activations => "activations",
            Authored::Gradients => "gradients",
            Authored::Metrics => "metrics",
        }
    }

    /// The object of this kind that `author` writes in `epoch`, with `other`
    /// the second peer of a pair (the querier of activations, the answerer
    /// of gradients); `public_key_hex` names a join request.
    pub fn path(self, epoch: u64, author: u32, other: u32, public_key_hex: &str) -> String {
        match self {
            Authored::JoinRequest => join_request(public_key_hex),
            Authored::Weights => weights(epoch, author),
            Authored::Queries => queries(epoch, author),
            Authored::Activations => activations(epoch, other, author),
            Authored::Gradients => gradients(epoch, author, other),
            Authored::Metrics => metrics(epoch, author),
        }
    }

    /// Every object of this kind that `author` may write, as a pattern with
    /// [`ANY`] for the epoch and the other peer; `None` for a join request
    /// without a public key, or another kind without a uid.
    pub fn pattern(self, uid: Option<u32>, public_key_hex: Option<&str>) -> Option<String> {
        Some(match self {
            Authored::JoinRequest => join_request_at(public_key_hex?),
            Authored::Weights => weights_at(ANY, uid?),
            Authored::Queries => queries_at(ANY, uid?),
            Authored::Activations => activations_at(ANY, ANY, uid?),
            Authored::Gradients => gradients_at(ANY, uid?, ANY),
            Authored::Metrics => metrics_at(ANY, uid?),
        })
    }
}

/// What peer `uid` reads besides the network files and its own objects: every
/// query batch (to answer them), the answers to its own queries, and the
/// gradients sent to it.
pub fn peer_reads(uid: u32) -> [String; 3] {
    [
        queries_at(ANY, ANY),
        activations_at(ANY, uid, ANY),
        gradients_at(ANY, ANY, uid),
    ]
}

/// The claim that decides which coordinator run commits `epoch`.
pub fn epoch_claim(epoch: u64) -> String {
    format!("{LEDGER}/_claims/epoch={epoch}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_request_has_one_spelling() {
        let lower = "ab".repeat(32);
        assert_eq!(
            parse_join_file(&format!("{lower}.parquet")),
            Some(lower.as_str())
        );
        // The same key spelled in upper case would register it a second time.
        assert_eq!(
            parse_join_file(&format!("{}.parquet", lower.to_uppercase())),
            None
        );
        assert_eq!(
            parse_join_file(&format!("{}.parquet", "aB".repeat(32))),
            None
        );
    }

    #[test]
    fn uid_file_names() {
        assert_eq!(parse_uid_file("uid=12.parquet"), Some(12));
        assert_eq!(parse_uid_file("uid=0.parquet"), Some(0));
        assert_eq!(parse_uid_file("uid=012.parquet"), None);
        assert_eq!(parse_uid_file("uid=-1.parquet"), None);
        assert_eq!(parse_uid_file("uid=99999999999.parquet"), None);
        assert_eq!(parse_uid_file("notes.txt"), None);
        assert_eq!(weights(3, 7), "submissions/epoch=3/weights/uid=7.parquet");
        assert_eq!(
            activations(2, 5, 9),
            "exchange/epoch=2/activations/query=5/uid=9.parquet"
        );
        assert_eq!(parse_pair_path(&gradients(2, 5, 9)), Some((5, 9)));
        assert_eq!(parse_pair_path("x/query=05/uid=9.parquet"), None);
        assert_eq!(parse_pair_path("x/uid=9.parquet"), None);
    }

    #[test]
    fn network_files_live_in_the_network_folder() {
        for f in [PARAMS, HEAD] {
            assert!(f.starts_with(&format!("{NETWORK_DIR}/")), "{f}");
        }
    }

    #[test]
    fn patterns_are_the_paths_with_any() {
        let pk = "ab".repeat(32);
        for kind in Authored::ALL {
            let pattern = kind.pattern(Some(7), Some(&pk)).unwrap();
            let path = kind.path(3, 7, 5, &pk);
            let concrete = pattern.replacen(ANY, "3", 1).replacen(ANY, "5", 1);
            assert_eq!(concrete, path, "{kind:?}");
            assert!(kind.pattern(None, None).is_none());
        }
        assert_eq!(
            Authored::Gradients.pattern(Some(7), None).unwrap(),
            "exchange/epoch=*/gradients/query=7/uid=*.parquet"
        );
    }
}
