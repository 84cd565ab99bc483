//! Where an epoch's time goes; printed by `epoch run --timings` and the benchmark.

use std::time::Duration;

/// Wall time per phase of an epoch run.
#[derive(Debug, Clone, Default)]
pub struct Phases {
    /// Listing the submissions folder.
    pub list: Duration,
    /// Fetching, hashing and decoding objects (one pass from a local store).
    pub read: Duration,
    /// Signature checks and row validation.
    pub verify: Duration,
    /// Loading the previous epoch from the ledger.
    pub load_previous: Duration,
    /// SPEC 5.2.
    pub arithmetic: Duration,
    /// Building tables and the digest.
    pub digest: Duration,
    /// Writing data files and committing the ledger.
    pub commit: Duration,
    /// The Fisher job: reading and checking the exchange, measuring φ.
    pub fisher: Duration,
}

impl Phases {
    /// One line, milliseconds.
    pub fn summary(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "list {:.0} ms, read+decode {:.0} ms, verify {:.0} ms, load previous {:.0} ms, arithmetic {:.0} ms, tables+digest {:.0} ms, ledger commit {:.0} ms, fisher {:.0} ms",
            ms(self.list),
            ms(self.read),
            ms(self.verify),
            ms(self.load_previous),
            ms(self.arithmetic),
            ms(self.digest),
            ms(self.commit),
            ms(self.fisher)
        )
    }
}
