//! The one error type of the shared crate; every variant says what failed and where.

/// Errors from layout, parameters, signing and store access.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A store URL that can't be opened.
    #[error("invalid store URL '{url}': {reason}")]
    StoreUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A store operation that failed (after retries).
    #[error("store error on '{path}': {source}")]
    Store {
        /// The object or prefix.
        path: String,
        /// The underlying error.
        #[source]
        source: object_store::Error,
    },
    /// The store refused a request for lack of permission (HTTP 401/403).
    /// Not transient: retrying can't help, the credentials or policy must change.
    #[error("access denied {op} {path}: check this {who}'s credentials and policy")]
    AccessDenied {
        /// "reading", "writing", "listing" or "deleting".
        op: &'static str,
        /// The object or prefix.
        path: String,
        /// Who uses the store: "peer", "coordinator" or "client".
        who: &'static str,
        /// The underlying error (boxed: it is rare, and keeps every `Result` small).
        #[source]
        source: Box<object_store::Error>,
    },
    /// An `s3://` store with nothing to sign requests with.
    #[error(
        "no S3 credentials found for {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
         (and AWS_SESSION_TOKEN for temporary keys), or AWS_WEB_IDENTITY_TOKEN_FILE and \
         AWS_ROLE_ARN; AWS profiles (~/.aws/credentials, AWS_PROFILE) are not read. \
         On a cloud machine with an instance role, set AWS_METADATA_ENDPOINT to its \
         metadata endpoint to use it; for a public bucket, AWS_SKIP_SIGNATURE=true"
    )]
    NoCredentials {
        /// The store URL as given.
        url: String,
    },
    /// A store policy that can't be made as asked.
    #[error("cannot make the policy: {0}")]
    Policy(String),
    /// The params file is not valid.
    #[error("invalid params: {0}")]
    Params(String),
    /// The genesis file is not valid.
    #[error("invalid genesis file, {0}")]
    Genesis(String),
    /// A key file or key string is not valid.
    #[error("invalid key {what}: {reason}")]
    Key {
        /// Which key (a path or a hex string).
        what: String,
        /// Why it was refused.
        reason: String,
    },
    /// A signature did not verify.
    #[error("signature does not verify: {0}")]
    Signature(String),
    /// A Parquet object can't be encoded or decoded.
    #[error("parquet error on '{path}': {reason}")]
    Parquet {
        /// The object.
        path: String,
        /// Why.
        reason: String,
    },
    /// The network has not been initialised in this store.
    #[error("no network at {0}: run `faceblock init --params params.toml --genesis genesis.csv --store {0}` first")]
    NoNetwork(String),
    /// Local file I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// JSON that can't be read or written.
    #[error("invalid JSON in {path}: {source}")]
    Json {
        /// The object or file.
        path: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
}

/// Result with the shared [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes for a person: each cause once (errors that quote
/// their source in their own message are not repeated).
pub fn report(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}
