//! Join requests: a new key asks for a uid; the request is signed by that key.

use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use faceblock_schemas::schema::SIGNATURE_KEY;
use faceblock_schemas::signing::{self, Kind, SignContext};
use faceblock_schemas::{layout, NetworkFile, PublicKey, Store};
use sha2::{Digest, Sha256};

use crate::reason::Reason;
use crate::registry::Registry;
use crate::Result;

use super::{
    decode_guarded, fetch_all, list_inputs, reject, Fetched, InputObject, Recorded, Rejection,
};

/// A checked join request.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The new key.
    pub public_key: PublicKey,
    /// Its modality.
    pub modality: String,
    /// The request's object, for a rejection.
    pub object: String,
}

/// Reads pending join requests; already-registered keys are skipped silently
/// (their request was honoured in an earlier epoch).
pub async fn read_join_requests(
    store: &Store,
    net: &NetworkFile,
    registry: &Registry,
    only: Option<&Recorded>,
) -> Result<(Vec<JoinRequest>, Vec<Rejection>, Vec<InputObject>)> {
    let listed = list_inputs(store, layout::JOIN_REQUESTS, only).await?;
    let mut objects = Vec::new();
    let mut rejections = Vec::new();
    let mut inputs = Vec::new();
    for (object, meta) in listed {
        let name = object.rsplit('/').next().unwrap_or("").to_string();
        let unread_input = |inputs: &mut Vec<InputObject>| {
            inputs.push(InputObject::unread(object.clone(), None, "join", meta.size))
        };
        let Some(hexkey) = layout::parse_join_file(&name) else {
            unread_input(&mut inputs);
            rejections.push(reject(
                None,
                &object,
                Reason::UnexpectedObject,
                "registry/requests/ holds only <public-key-hex>.parquet files, the key in lower-case hex",
            ));
            continue;
        };
        let Ok(pk) = PublicKey::from_hex(hexkey) else {
            unread_input(&mut inputs);
            rejections.push(reject(
                None,
                &object,
                Reason::BadSignature,
                "the file name is not a valid ed25519 public key",
            ));
            continue;
        };
        if registry.index_of_key(&pk).is_some() {
            continue;
        }
        if meta.size > net.params.max_submission_bytes {
            unread_input(&mut inputs);
            rejections.push(reject(None, &object, Reason::TooLarge, "too large"));
            continue;
        }
        objects.push((object, pk));
    }
    let pb = indicatif::ProgressBar::hidden();
    let fetched = fetch_all(
        store,
        objects.iter().map(|o| o.0.clone()).collect(),
        32,
        &pb,
    )
    .await?;
    let keys: HashMap<String, PublicKey> = objects.into_iter().collect();
    let mut requests = Vec::new();
    let ctx = SignContext {
        kind: Kind::Join,
        network_id: net.id(),
        epoch: 0,
        uid: 0,
    };
    for f in fetched {
        let pk = keys[&f.object];
        inputs.push(InputObject {
            object: f.object.clone(),
            uid: None,
            kind: "join",
            bytes: f.bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&f.bytes)),
        });
        match check_join(&f, &pk, &ctx) {
            Ok(modality) => requests.push(JoinRequest {
                public_key: pk,
                modality,
                object: f.object.clone(),
            }),
            Err((reason, detail)) => rejections.push(reject(None, &f.object, reason, detail)),
        }
    }
    requests.sort_by_key(|r| r.public_key);
    rejections.sort_by(|a, b| a.object.cmp(&b.object));
    inputs.sort_by(|a, b| a.object.cmp(&b.object));
    Ok((requests, rejections, inputs))
}

fn check_join(f: &Fetched, pk: &PublicKey, ctx: &SignContext) -> Result<String, (Reason, String)> {
    let d = decode_guarded(&f.object, f.bytes.clone())?;
    if d.schema.fields().len() != 2
        || d.schema.field(0).name() != "public_key"
        || d.schema.field(1).name() != "modality"
        || d.schema.field(0).data_type() != &DataType::Utf8
        || d.schema.field(1).data_type() != &DataType::Utf8
        || d.batch.num_rows() != 1
        || d.batch.columns().iter().any(|c| c.null_count() > 0)
    {
        return Err((
            Reason::Schema,
            "a join request is one row of public_key: Utf8, modality: Utf8".into(),
        ));
    }
    let key_col = d.batch.column(0).as_string::<i32>().value(0);
    if key_col != pk.to_hex() {
        return Err((
            Reason::BadSignature,
            "the public_key column does not match the file name".into(),
        ));
    }
    let modality = d.batch.column(1).as_string::<i32>().value(0).to_string();
    if modality != faceblock_schemas::schema::MODALITY_TEXT {
        return Err((
            Reason::Schema,
            format!("unknown modality '{modality}' (TEXT)"),
        ));
    }
    let sig = d
        .metadata
        .get(SIGNATURE_KEY)
        .ok_or((Reason::BadSignature, "no signature".to_string()))
        .and_then(|s| {
            signing::signature_from_hex(s).map_err(|e| (Reason::BadSignature, e.to_string()))
        })?;
    pk.verify_batch(ctx, &[], &d.batch, &sig)
        .map_err(|e| (Reason::BadSignature, e.to_string()))?;
    Ok(modality)
}
