//! `faceblock epoch verify`: recompute a committed epoch from its recorded
//! inputs (the ledger at e−1 and the submissions listed in `inputs`) and check
//! the digest chain.

use std::collections::HashMap;

use faceblock_schemas::{NetworkFile, Store};

use crate::epoch::{self, Recorded};
use crate::ledger::Ledger;
use crate::{Error, Result};

/// What verification found.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The epoch.
    pub epoch: u64,
    /// The committed (and recomputed) digest.
    pub digest: String,
}

async fn strings(ctx: &datafusion::prelude::SessionContext, sql: &str) -> Result<Vec<Vec<String>>> {
    let mut out = Vec::new();
    for b in Ledger::query(ctx, sql).await? {
        let cols: Vec<_> = (0..b.num_columns())
            .map(|i| crate::ledger::string_col(&b, i))
            .collect::<Result<_>>()?;
        for i in 0..b.num_rows() {
            out.push(cols.iter().map(|c| c.value(i).to_string()).collect());
        }
    }
    Ok(out)
}

/// Recomputes `epoch` and compares it with the ledger.
pub async fn verify(store: &Store, epoch: u64, partitions: usize) -> Result<Verified> {
    let net = NetworkFile::load(store).await?;
    let ledger = Ledger::new(store.clone());
    let last = ledger.last_committed().await?;
    if last.is_none_or(|l| epoch > l) {
        return Err(Error::Epoch(format!(
            "epoch {epoch} is not committed ({})",
            match last {
                Some(l) => format!("the last committed epoch is {l}"),
                None => "no epoch has been committed yet".into(),
            }
        )));
    }
    let ctx = ledger.session(last, partitions).await?;
    let row = crate::ledger::epochs::read(&ctx, epoch).await?;
    let (digest, inputs_digest, prev_digest) = (&row.digest, &row.inputs_digest, &row.prev_digest);
    if epoch > 0 {
        let prev = crate::ledger::epochs::read(&ctx, epoch - 1).await?;
        if &prev.digest != prev_digest {
            return Err(Error::VerifyMismatch {
                epoch,
                detail: format!(
                    "prev_digest {prev_digest} is not epoch {}'s digest {}",
                    epoch - 1,
                    prev.digest
                ),
            });
        }
    }
    let recorded: Recorded = strings(
        &ctx,
        &format!("SELECT object, sha256 FROM inputs WHERE epoch = {epoch}"),
    )
    .await?
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect();
    let p = epoch::prepare(
        store,
        &net,
        &ledger,
        epoch,
        partitions,
        Some(&recorded),
        None,
    )
    .await?;
    if &p.row.inputs_digest != inputs_digest {
        let now: HashMap<&str, &str> = p
            .inputs
            .iter()
            .map(|i| (i.object.as_str(), i.sha256.as_str()))
            .collect();
        let mut changed: Vec<String> = recorded
            .iter()
            .filter(|(o, sha)| now.get(o.as_str()) != Some(&sha.as_str()))
            .map(|(o, _)| o.clone())
            .collect();
        changed.sort();
        return Err(Error::VerifyMismatch {
            epoch,
            detail: format!(
                "its inputs changed since it ran ({} object(s) differ or are gone: {})",
                changed.len(),
                changed
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    if &p.digest != digest {
        return Err(Error::VerifyMismatch {
            epoch,
            detail: format!("recomputed digest {} != committed {digest}", p.digest),
        });
    }
    Ok(Verified {
        epoch,
        digest: digest.clone(),
    })
}
