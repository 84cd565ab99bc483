//! Progress bars on stderr, shown only to a person at a terminal: never when
//! stderr is piped or a file, and never with `--log-format json` (a bar's
//! redraws would break the one-JSON-object-per-line contract).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns bars off (or back on) for the whole process; the binary turns them
/// off in JSON log mode.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether a bar may be drawn: enabled and stderr is a terminal.
pub fn visible() -> bool {
    ENABLED.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

/// A bar for `len` steps, hidden unless [`visible`] (and for short jobs).
pub fn bar(len: u64, what: &str) -> ProgressBar {
    if !visible() || len < 100 {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_bars_are_hidden_even_on_a_terminal() {
        set_enabled(false);
        assert!(!visible());
        assert!(bar(1_000, "x").is_hidden());
        set_enabled(true);
        // Under `cargo test` stderr is captured or piped, so still hidden.
        assert_eq!(visible(), std::io::stderr().is_terminal());
    }
}
