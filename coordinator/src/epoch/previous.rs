//! The state an epoch starts from: genesis for epoch 0, else what the ledger
//! committed for epoch e−1 (read through DataFusion).

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type};
use faceblock_schemas::{NetworkFile, PublicKey};

use crate::ledger::Ledger;
use crate::registry::Peer;
use crate::{Error, Result};

/// Genesis digest: what epoch 0 chains onto.
pub const GENESIS_DIGEST: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// State after epoch e−1, keyed by uid.
#[derive(Debug, Default)]
pub struct Previous {
    /// Registered peers.
    pub peers: Vec<Peer>,
    /// Stake by uid.
    pub stake: HashMap<u32, u64>,
    /// Epoch of each peer's row in force.
    pub weights_epoch: HashMap<u32, u64>,
    /// Rows in force as (src uid, dst uid, weight), any order.
    pub weights: (Vec<u32>, Vec<u32>, Vec<f64>),
    /// Bonds as (holder uid, peer uid, bond), any order.
    pub bonds: (Vec<u32>, Vec<u32>, Vec<f64>),
    /// k in force for the epoch being run.
    pub k: u32,
    /// Digest of epoch e−1.
    pub prev_digest: String,
}

fn col_i64(b: &RecordBatch, i: usize) -> &arrow::array::Int64Array {
    b.column(i).as_primitive::<Int64Type>()
}

fn uid(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Corrupt(format!("uid {v} out of range")))
}

/// Loads the state epoch `epoch` starts from.
pub async fn load(
    net: &NetworkFile,
    ledger: &Ledger,
    epoch: u64,
    partitions: usize,
) -> Result<Previous> {
    if epoch == 0 {
        let mut p = Previous {
            k: net.params.k_initial,
            prev_digest: GENESIS_DIGEST.into(),
            ..Default::default()
        };
        for g in &net.genesis.peers {
            p.peers.push(Peer {
                uid: g.uid,
                public_key: PublicKey::from_hex(&g.public_key)?,
                modality: faceblock_schemas::schema::MODALITY_TEXT.into(),
                registered_epoch: 0,
            });
            p.stake.insert(g.uid, g.stake);
        }
        return Ok(p);
    }
    let e = epoch - 1;
    let ctx = ledger.session(Some(e), partitions).await?;
    let mut p = Previous::default();

    let rows = Ledger::query(
        &ctx,
        &format!("SELECT k_next, digest FROM epochs WHERE epoch = {e}"),
    )
    .await?;
    let row = rows
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| Error::Corrupt(format!("epochs has no row for committed epoch {e}")))?;
    p.k = u32::try_from(col_i64(row, 0).value(0)).map_err(|_| Error::Corrupt("k_next".into()))?;
    p.prev_digest = crate::ledger::string_col(row, 1)?.value(0).to_string();

    for b in Ledger::query(
        &ctx,
        "SELECT uid, public_key, modality, registered_epoch FROM registry",
    )
    .await?
    {
        let keys = crate::ledger::string_col(&b, 1)?;
        let modality = crate::ledger::string_col(&b, 2)?;
        for i in 0..b.num_rows() {
            p.peers.push(Peer {
                uid: uid(col_i64(&b, 0).value(i))?,
                public_key: PublicKey::from_hex(keys.value(i))?,
                modality: modality.value(i).to_string(),
                registered_epoch: col_i64(&b, 3).value(i) as u64,
            });
        }
    }
    for b in Ledger::query(
        &ctx,
        &format!("SELECT uid, stake, weights_epoch FROM state WHERE epoch = {e}"),
    )
    .await?
    {
        let we = col_i64(&b, 2);
        for i in 0..b.num_rows() {
            let u = uid(col_i64(&b, 0).value(i))?;
            p.stake.insert(u, col_i64(&b, 1).value(i) as u64);
            if we.is_valid(i) {
                p.weights_epoch.insert(u, we.value(i) as u64);
            }
        }
    }
    p.weights = triples(
        &ctx,
        &format!("SELECT src, dst, weight FROM weights WHERE epoch = {e}"),
    )
    .await?;
    p.bonds = triples(
        &ctx,
        &format!("SELECT holder, peer, bond FROM bonds WHERE epoch = {e}"),
    )
    .await?;
    Ok(p)
}

async fn triples(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
) -> Result<(Vec<u32>, Vec<u32>, Vec<f64>)> {
    let batches = Ledger::query(ctx, sql).await?;
    let n: usize = batches.iter().map(|b| b.num_rows()).sum();
    let (mut a, mut b, mut c) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for batch in &batches {
        for v in col_i64(batch, 0).values() {
            a.push(uid(*v)?);
        }
        for v in col_i64(batch, 1).values() {
            b.push(uid(*v)?);
        }
        c.extend_from_slice(batch.column(2).as_primitive::<Float64Type>().values());
    }
    Ok((a, b, c))
}
