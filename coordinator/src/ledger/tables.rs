//! Arrow schemas of the ledger tables (SPEC 6). Delta Lake has no unsigned
//! types, so uids, epochs and stake are Int64 (stake stays below 2^63; `init`
//! and the epoch refuse totals that would not fit).
//!
//! The ledger grows with what changed:
//! - `weights` holds a row once, at the epoch it was accepted;
//!   `state.weights_epoch` names the row in force at every epoch (view
//!   [`WEIGHTS_IN_FORCE`]);
//! - `bonds` holds bond segments (`math::bonds`): at the epoch a holder's
//!   segment starts (`state.bonds_epoch`), its `bond`s after that epoch and
//!   the `weight`s of its row; `state.bond_stake` is the holder's stake summed
//!   over the segment's later epochs, so the bond at epoch e is
//!   `bond + weight · bond_stake` (view [`BONDS_IN_FORCE`]).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Commit order: `epochs` last, so a reader that goes through `epochs` never
/// sees half an epoch.
pub const TABLES: [&str; 9] = [
    "registry",
    "state",
    "weights",
    "bonds",
    "fisher",
    "rejections",
    "metrics",
    "inputs",
    "epochs",
];

fn f(name: &str, t: DataType, nullable: bool) -> Field {
    Field::new(name, t, nullable)
}

/// The schema of a ledger table; `None` for an unknown name.
pub fn schema(table: &str) -> Option<SchemaRef> {
    use DataType::*;
    let e = || f("epoch", Int64, false);
    let fields = match table {
        "state" => vec![
            e(),
            f("uid", Int64, false),
            f("stake_before", Int64, false),
            f("emission", Int64, false),
            f("stake", Int64, false),
            f("stake_share", Float64, false),
            f("rank", Float64, false),
            f("trust", Float64, false),
            f("consensus", Float64, false),
            f("incentive", Float64, false),
            f("dividends", Float64, false),
            f("fisher_rank", Float64, false),
            f("fisher_divergence", Float64, true),
            f("weights_epoch", Int64, true),
            f("bonds_epoch", Int64, false),
            f("bond_stake", Int64, false),
        ],
        "weights" => vec![
            e(),
            f("src", Int64, false),
            f("dst", Int64, false),
            f("weight", Float64, false),
        ],
        "bonds" => vec![
            e(),
            f("holder", Int64, false),
            f("peer", Int64, false),
            f("bond", Float64, false),
            f("weight", Float64, false),
        ],
        "fisher" => vec![
            e(),
            f("src", Int64, false),
            f("dst", Int64, false),
            f("score", Float64, false),
            f("examples", Int64, false),
        ],
        "epochs" => vec![
            e(),
            f("n_peers", Int64, false),
            f("total_stake_before", Int64, false),
            f("emission", Int64, false),
            f("loss", Float64, false),
            f("k", Int64, false),
            f("k_next", Int64, false),
            f("rows_in_force", Int64, false),
            f("rows_accepted", Int64, false),
            f("rows_rejected", Int64, false),
            f("inputs_digest", Utf8, false),
            f("digest", Utf8, false),
            f("prev_digest", Utf8, false),
            f("version", Utf8, false),
            f(
                "committed_at",
                Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ],
        "rejections" => vec![
            e(),
            f("uid", Int64, true),
            f("object", Utf8, false),
            f("reason", Utf8, false),
            f("detail", Utf8, false),
        ],
        "registry" => vec![
            e(),
            f("uid", Int64, false),
            f("public_key", Utf8, false),
            f("modality", Utf8, false),
            f("registered_epoch", Int64, false),
        ],
        "metrics" => vec![
            e(),
            f("uid", Int64, false),
            f("loss", Float64, true),
            f("distill_loss", Float64, true),
            f("examples", Int64, true),
        ],
        "inputs" => vec![
            e(),
            f("object", Utf8, false),
            f("uid", Int64, true),
            f("kind", Utf8, false),
            f("bytes", Int64, false),
            f("sha256", Utf8, false),
        ],
        _ => return None,
    };
    Some(Arc::new(Schema::new(fields)))
}

/// View: the rows in force at every epoch, `(epoch, src, dst, weight,
/// weights_epoch)`.
pub const WEIGHTS_IN_FORCE: &str =
    include_str!("../../../pipelines/sql/views/weights_in_force.sql");

/// View: the bonds after every epoch, `(epoch, holder, peer, bond)`, nonzero
/// only: what the epoch's dividends used.
pub const BONDS_IN_FORCE: &str = include_str!("../../../pipelines/sql/views/bonds_in_force.sql");

/// The views over the tables, by name.
pub const VIEWS: [(&str, &str); 2] = [
    ("weights_in_force", WEIGHTS_IN_FORCE),
    ("bonds_in_force", BONDS_IN_FORCE),
];
