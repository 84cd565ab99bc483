//! Where every object lives under a network's root (SPEC 2). Paths are
//! relative to the store root; [`crate::Store`] adds the prefix.

/// Written once by `faceblock init`.
pub const PARAMS: &str = "network/params.json";
/// The open epoch and its k, rewritten after every commit so peers need not
/// read the ledger.
pub const HEAD: &str = "network/head.json";
/// Folder of pending join requests.
pub const JOIN_REQUESTS: &str = "registry/requests";
/// Folder of the ledger's Delta tables.
pub const LEDGER: &str = "ledger";

/// A pending join request for `public_key_hex`.
pub fn join_request(public_key_hex: &str) -> String {
    format!("{JOIN_REQUESTS}/{public_key_hex}.parquet")
}

/// Where a joined peer finds its uid once registered.
pub fn uid_marker(public_key_hex: &str) -> String {
    format!("registry/uids/{public_key_hex}.json")
}

/// Folder of weight submissions for `epoch`.
pub fn weights_dir(epoch: u64) -> String {
    format!("submissions/epoch={epoch}/weights")
}

/// Peer `uid`'s weight submission for `epoch`.
pub fn weights(epoch: u64, uid: u32) -> String {
    format!("{}/uid={uid}.parquet", weights_dir(epoch))
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
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// Folder of everything peers exchanged in `epoch`.
pub fn exchange_dir(epoch: u64) -> String {
    format!("exchange/epoch={epoch}")
}

/// Peer `querier`'s query batch for `epoch`.
pub fn queries(epoch: u64, querier: u32) -> String {
    format!("{}/queries/uid={querier}.parquet", exchange_dir(epoch))
}

/// Folder of the query batches of `epoch`.
pub fn queries_dir(epoch: u64) -> String {
    format!("{}/queries", exchange_dir(epoch))
}

/// `f_i(x)` computed by `answerer` for `querier`'s examples.
pub fn activations(epoch: u64, querier: u32, answerer: u32) -> String {
    format!(
        "{}/activations/query={querier}/uid={answerer}.parquet",
        exchange_dir(epoch)
    )
}

/// Folder of all activations of `epoch`.
pub fn activations_dir(epoch: u64) -> String {
    format!("{}/activations", exchange_dir(epoch))
}

/// `dL_querier/df_answerer(x)`, written by `querier`.
pub fn gradients(epoch: u64, querier: u32, answerer: u32) -> String {
    format!(
        "{}/gradients/query={querier}/uid={answerer}.parquet",
        exchange_dir(epoch)
    )
}

/// Folder of all gradients of `epoch`.
pub fn gradients_dir(epoch: u64) -> String {
    format!("{}/gradients", exchange_dir(epoch))
}

/// Peer `uid`'s self-reported metrics for `epoch`.
pub fn metrics(epoch: u64, uid: u32) -> String {
    format!("{}/metrics/uid={uid}.parquet", exchange_dir(epoch))
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

/// The claim that decides which coordinator run commits `epoch`.
pub fn epoch_claim(epoch: u64) -> String {
    format!("{LEDGER}/_claims/epoch={epoch}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
