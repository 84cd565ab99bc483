//! Logs of both binaries: human text by default, or one JSON object per line
//! (`--log-format json`) for machines that collect logs (Airflow, cron,
//! journald, a log shipper). Everything goes to stderr, so stdout keeps only
//! the command's answer; the level comes from `FACEBLOCK_LOG` (default `warn`).

use std::io::{IsTerminal, Write};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, fields.message, target, spans.
    Json,
}

/// The variable that sets the log level and filters (tracing's `EnvFilter` syntax).
pub const LEVEL_ENV: &str = "FACEBLOCK_LOG";
/// The variable that sets the log format when `--log-format` is not given.
pub const FORMAT_ENV: &str = "FACEBLOCK_LOG_FORMAT";

/// Installs the global subscriber; call once, first thing in `main`.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(LEVEL_ENV)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}

/// Prints the error that ends the process, in the log format: a JSON line
/// (level `ERROR`, `fields.message`, `fields.exit_code`) or `error: ...`.
/// It bypasses the level filter: the reason a run failed is never filtered out.
pub fn report_error(format: LogFormat, target: &str, message: &str, exit_code: u8) {
    let mut err = std::io::stderr().lock();
    let _ = match format {
        LogFormat::Text => writeln!(err, "error: {message}"),
        LogFormat::Json => {
            let line = serde_json::json!({
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "level": "ERROR",
                "fields": { "message": message, "exit_code": exit_code },
                "target": target,
            });
            writeln!(err, "{line}")
        }
    };
}
