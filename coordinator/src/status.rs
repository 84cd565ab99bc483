//! `faceblock status`: where the network stands.

use faceblock_schemas::{NetworkFile, Store};

use crate::ledger::Ledger;
use crate::Result;

/// Text report: open epoch, k, last loss, top peers.
pub async fn report(store: &Store, top: usize) -> Result<String> {
    let net = NetworkFile::load(store).await?;
    let ledger = Ledger::new(store.clone());
    let last = ledger.last_committed().await?;
    let mut out = format!("network {}\nstore   {}\n", net.network_id, store.url());
    let Some(last) = last else {
        out.push_str(&format!(
            "open epoch 0 (nothing committed yet), k = {}, {} genesis peers\n",
            net.params.k_initial,
            net.genesis.peers.len()
        ));
        return Ok(out);
    };
    let ctx = ledger.session(Some(last), 2).await?;
    let e = Ledger::query(
        &ctx,
        &format!(
            "SELECT epoch AS last_epoch, k_next AS k, loss, emission, n_peers, rows_in_force, rows_rejected, digest \
             FROM epochs WHERE epoch = {last}"
        ),
    )
    .await?;
    out.push_str(&format!("open epoch {}\n", last + 1));
    out.push_str(&arrow::util::pretty::pretty_format_batches(&e)?.to_string());
    out.push('\n');
    let peers = Ledger::query(
        &ctx,
        &format!(
            "SELECT uid, stake, stake_share, rank, trust, consensus, incentive, dividends, emission \
             FROM state WHERE epoch = {last} ORDER BY stake DESC, uid LIMIT {top}"
        ),
    )
    .await?;
    out.push_str(&format!("top {top} peers by stake\n"));
    out.push_str(&arrow::util::pretty::pretty_format_batches(&peers)?.to_string());
    out.push('\n');
    Ok(out)
}
