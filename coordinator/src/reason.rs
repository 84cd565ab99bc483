//! Reason codes for rejected submissions (SPEC 7), as stored in `rejections.reason`.

/// Why a submission was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// Not a readable Parquet file.
    Unreadable,
    /// Wrong columns or types, or nulls.
    Schema,
    /// Larger than `max_submission_bytes`; not read.
    TooLarge,
    /// No signature, or one that does not verify for this path, network and epoch.
    BadSignature,
    /// Validly signed, but for another epoch (a replay).
    WrongEpoch,
    /// The uid in the path is not registered.
    UnknownUid,
    /// A NaN or infinite weight.
    NonFinite,
    /// A negative weight.
    Negative,
    /// A `dst` that is not a registered uid.
    UnknownDst,
    /// A `dst` listed twice.
    DuplicateDst,
    /// Fewer than k nonzero entries (after dropping the self entry).
    TooFewWeights,
    /// More than `max_weights` entries.
    TooManyWeights,
    /// No rows at all.
    Empty,
    /// An object in a submissions folder whose name is not `uid=<u>.parquet`.
    UnexpectedObject,
    /// A join request whose key is already registered under another request.
    AlreadyRegistered,
    /// A weight row with source `fisher` from a peer without Fisher scores.
    NoFisherScores,
    /// An exchange tensor of the wrong shape.
    Shape,
    /// An answer or gradient for a query batch that is missing or was
    /// rejected (or that addresses no example to its writer), or a gradient
    /// whose answer is missing or was rejected: nothing to check it against.
    NoQuery,
    /// A join request when every uid up to `u32::MAX` is taken.
    NoFreeUid,
    /// Not a submission: a row in force from an earlier epoch that sets
    /// fewer than the current k entries, withdrawn because `rows_meet_k` is
    /// on (the object named is the row's own submission).
    BelowK,
}

impl Reason {
    /// The code stored in the ledger.
    pub fn code(self) -> &'static str {
        match self {
            Reason::Unreadable => "unreadable",
            Reason::Schema => "schema",
            Reason::TooLarge => "too_large",
            Reason::BadSignature => "bad_signature",
            Reason::WrongEpoch => "wrong_epoch",
            Reason::UnknownUid => "unknown_uid",
            Reason::NonFinite => "non_finite",
            Reason::Negative => "negative",
            Reason::UnknownDst => "unknown_dst",
            Reason::DuplicateDst => "duplicate_dst",
            Reason::TooFewWeights => "too_few_weights",
            Reason::TooManyWeights => "too_many_weights",
            Reason::Empty => "empty",
            Reason::UnexpectedObject => "unexpected_object",
            Reason::AlreadyRegistered => "already_registered",
            Reason::NoFisherScores => "no_fisher_scores",
            Reason::Shape => "shape",
            Reason::NoQuery => "no_query",
            Reason::NoFreeUid => "no_free_uid",
            Reason::BelowK => "below_k",
        }
    }

    /// Every reason, in declaration order.
    pub const ALL: [Reason; 20] = [
        Reason::Unreadable,
        Reason::Schema,
        Reason::TooLarge,
        Reason::BadSignature,
        Reason::WrongEpoch,
        Reason::UnknownUid,
        Reason::NonFinite,
        Reason::Negative,
        Reason::UnknownDst,
        Reason::DuplicateDst,
        Reason::TooFewWeights,
        Reason::TooManyWeights,
        Reason::Empty,
        Reason::UnexpectedObject,
        Reason::AlreadyRegistered,
        Reason::NoFisherScores,
        Reason::Shape,
        Reason::NoQuery,
        Reason::NoFreeUid,
        Reason::BelowK,
    ];

    /// The reason stored as `code`, e.g. one named by the shared exchange checks.
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for r in Reason::ALL {
            assert_eq!(Reason::from_code(r.code()), Some(r));
        }
        assert_eq!(Reason::from_code("nonsense"), None);
    }
}
