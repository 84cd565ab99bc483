//! Signed submissions: join requests and weight rows, each one PUT of one
//! Parquet file with its signature in the metadata.

use faceblock_schemas::schema::{self, EPOCH_KEY, SIGNATURE_KEY, SOURCE_KEY};
use faceblock_schemas::signing::{Kind, SignContext};
use faceblock_schemas::{layout, parquet_io, Keypair, NetworkFile, Store};

use crate::{Error, Result};

/// Writes a signed join request for `key`; the next epoch run gives it a uid.
pub async fn register(store: &Store, net: &NetworkFile, key: &Keypair) -> Result<String> {
    let pk = key.public().to_hex();
    let batch = schema::join_batch(&pk, schema::MODALITY_TEXT);
    let ctx = SignContext {
        kind: Kind::Join,
        network_id: net.id(),
        epoch: 0,
        uid: 0,
    };
    let sig = key.sign_batch(&ctx, &[], &batch);
    let path = layout::join_request(&pk);
    let bytes = parquet_io::encode(&path, &batch, &[(SIGNATURE_KEY, hex::encode(sig))])?;
    store.put(&path, bytes).await?;
    Ok(path)
}

/// Parses `3=0.5,7=0.25`.
pub fn parse_set(s: &str) -> Result<(Vec<u32>, Vec<f64>)> {
    let mut dst = Vec::new();
    let mut w = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (d, v) = part
            .split_once('=')
            .ok_or_else(|| Error::Row(format!("'{part}' is not uid=weight")))?;
        dst.push(
            d.trim()
                .parse::<u32>()
                .map_err(|e| Error::Row(format!("uid '{d}': {e}")))?,
        );
        w.push(
            v.trim()
                .parse::<f64>()
                .map_err(|e| Error::Row(format!("weight '{v}': {e}")))?,
        );
    }
    Ok((dst, w))
}

/// Parses a CSV with header `dst,weight`.
pub fn parse_csv(text: &str) -> Result<(Vec<u32>, Vec<f64>)> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let h = rdr
        .headers()
        .map_err(|e| Error::Row(e.to_string()))?
        .clone();
    if h.iter().collect::<Vec<_>>() != ["dst", "weight"] {
        return Err(Error::Row("the CSV header must be 'dst,weight'".into()));
    }
    let mut dst = Vec::new();
    let mut w = Vec::new();
    for (i, r) in rdr.records().enumerate() {
        let r = r.map_err(|e| Error::Row(format!("line {}: {e}", i + 2)))?;
        dst.push(
            r[0].parse::<u32>()
                .map_err(|e| Error::Row(format!("line {}: dst '{}': {e}", i + 2, &r[0])))?,
        );
        w.push(
            r[1].parse::<f64>()
                .map_err(|e| Error::Row(format!("line {}: weight '{}': {e}", i + 2, &r[1])))?,
        );
    }
    Ok((dst, w))
}

/// What a weight submission carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// Weights set by the peer: destination uids and raw (unnormalised) weights.
    Explicit {
        /// Destination uids.
        dst: Vec<u32>,
        /// Raw weights.
        weight: Vec<f64>,
    },
    /// Use the Fisher scores the coordinator measured for this peer.
    Fisher,
}

/// Signs and uploads a weight row for `uid` in `epoch`.
pub async fn weights(
    store: &Store,
    net: &NetworkFile,
    key: &Keypair,
    uid: u32,
    epoch: u64,
    row: &Row,
) -> Result<String> {
    let (dst, weight, fisher): (&[u32], &[f64], bool) = match row {
        Row::Explicit { dst, weight } => (dst, weight, false),
        Row::Fisher => (&[], &[], true),
    };
    let batch = schema::weights_batch(dst, weight);
    let ctx = SignContext {
        kind: Kind::Weights,
        network_id: net.id(),
        epoch,
        uid,
    };
    let attrs: Vec<(&str, &str)> = if fisher {
        vec![(SOURCE_KEY, "fisher")]
    } else {
        vec![]
    };
    let sig = key.sign_batch(&ctx, &attrs, &batch);
    let path = layout::weights(epoch, uid);
    let mut meta = vec![
        (SIGNATURE_KEY, hex::encode(sig)),
        (EPOCH_KEY, epoch.to_string()),
    ];
    if fisher {
        meta.push((SOURCE_KEY, "fisher".to_string()));
    }
    let bytes = parquet_io::encode(&path, &batch, &meta)?;
    store.put(&path, bytes).await?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows() {
        assert_eq!(
            parse_set("3=0.5, 7=0.25").unwrap(),
            (vec![3, 7], vec![0.5, 0.25])
        );
        assert!(parse_set("3:0.5").is_err());
        assert!(parse_set("x=1").is_err());
        assert_eq!(
            parse_csv("dst,weight\n1,2.5\n").unwrap(),
            (vec![1], vec![2.5])
        );
        assert!(parse_csv("a,b\n1,2\n").is_err());
    }
}
