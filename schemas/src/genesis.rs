//! The genesis file (SPEC 3): `uid,public_key,stake`, the first peers.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::signing::PublicKey;
use crate::{Error, Result};

/// One genesis peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisPeer {
    /// Short name in every table.
    pub uid: u32,
    /// Identity, lower-case hex.
    pub public_key: String,
    /// Starting stake in base units.
    pub stake: u64,
}

/// All genesis peers, sorted by uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// The peers.
    pub peers: Vec<GenesisPeer>,
}

impl Genesis {
    /// Parses and checks a genesis CSV: unique uids and keys, valid keys, and a
    /// total stake the ledger can hold.
    pub fn from_csv(text: &str) -> Result<Self> {
        let mut rdr = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_reader(text.as_bytes());
        let headers = rdr
            .headers()
            .map_err(|e| Error::Genesis(format!("header: {e}")))?
            .clone();
        let want = ["uid", "public_key", "stake"];
        if headers.iter().collect::<Vec<_>>() != want {
            return Err(Error::Genesis(format!(
                "expected the header 'uid,public_key,stake', found '{}'",
                headers.iter().collect::<Vec<_>>().join(",")
            )));
        }
        let mut peers = Vec::new();
        for (i, rec) in rdr.records().enumerate() {
            let line = i + 2;
            let rec = rec.map_err(|e| Error::Genesis(format!("line {line}: {e}")))?;
            let uid = rec[0]
                .parse::<u32>()
                .map_err(|e| Error::Genesis(format!("line {line}: uid '{}': {e}", &rec[0])))?;
            let pk = PublicKey::from_hex(&rec[1])
                .map_err(|e| Error::Genesis(format!("line {line}: {e}")))?;
            let stake = rec[2]
                .parse::<u64>()
                .map_err(|e| Error::Genesis(format!("line {line}: stake '{}': {e}", &rec[2])))?;
            peers.push(GenesisPeer {
                uid,
                public_key: pk.to_hex(),
                stake,
            });
        }
        let g = Genesis { peers };
        g.validate()?;
        Ok(g)
    }

    /// Checks uniqueness and the stake total.
    pub fn validate(&self) -> Result<()> {
        if self.peers.is_empty() {
            return Err(Error::Genesis("it lists no peers".into()));
        }
        let mut uids = HashSet::new();
        let mut keys = HashSet::new();
        let mut total: u128 = 0;
        for p in &self.peers {
            if !uids.insert(p.uid) {
                return Err(Error::Genesis(format!("uid {} appears twice", p.uid)));
            }
            if !keys.insert(p.public_key.as_str()) {
                return Err(Error::Genesis(format!(
                    "public key {} appears twice",
                    p.public_key
                )));
            }
            total += p.stake as u128;
        }
        if total > (i64::MAX / 2) as u128 {
            return Err(Error::Genesis(format!(
                "total stake {total} leaves no room for emission (the ledger stores Int64; keep it under 2^62)"
            )));
        }
        Ok(())
    }

    /// Sorted by uid, the canonical order.
    pub fn sorted(mut self) -> Self {
        self.peers.sort_by_key(|p| p.uid);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;

    #[test]
    fn parses_and_rejects() {
        let a = Keypair::from_seed([1; 32]).public().to_hex();
        let b = Keypair::from_seed([2; 32]).public().to_hex();
        let ok = format!("uid,public_key,stake\n0,{a},100\n1,{b},50\n");
        let g = Genesis::from_csv(&ok).unwrap();
        assert_eq!(g.peers.len(), 2);
        assert!(Genesis::from_csv(&format!("uid,public_key,stake\n0,{a},1\n0,{b},1\n")).is_err());
        assert!(Genesis::from_csv(&format!("uid,public_key,stake\n0,{a},1\n1,{a},1\n")).is_err());
        assert!(Genesis::from_csv(&format!("uid,public_key,stake\n0,{a},-1\n")).is_err());
        assert!(Genesis::from_csv("uid,key,stake\n").is_err());
        let e = Genesis::from_csv("uid,public_key,stake\n0,abc,1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
