//! `faceblock-peer`: a peer's command line (SPEC 9).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use faceblock_schemas::{Keypair, NetworkFile, Store};
use faceblock_worker::{identity, submit};

/// FaceBlock peer: keys, join requests and signed weight rows.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Network root: a directory, file://, memory:// or s3://bucket/prefix.
    #[arg(
        long,
        env = "FACEBLOCK_STORE",
        global = true,
        default_value = "",
        hide_default_value = true
    )]
    store: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a new key pair; prints the public key (your identity).
    Keygen {
        /// Where to write the secret key (never overwritten).
        #[arg(long, default_value = "peer.key")]
        out: PathBuf,
    },
    /// Ask to join: the next epoch run gives this key a uid (stake 0).
    Register {
        /// The peer's key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Sign and upload this peer's weight row for an epoch.
    Weights {
        /// The peer's key file.
        #[arg(long)]
        key: PathBuf,
        /// Epoch to submit for (default: the open epoch).
        #[arg(long)]
        epoch: Option<u64>,
        /// Entries as uid=weight, comma separated: 3=0.5,7=0.25.
        #[arg(long, conflicts_with_all = ["file", "source"])]
        set: Option<String>,
        /// CSV file with header dst,weight.
        #[arg(long, conflicts_with = "source")]
        file: Option<PathBuf>,
        /// `fisher`: use the Fisher scores the coordinator measured for this peer.
        #[arg(long, value_parser = ["fisher"])]
        source: Option<String>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FACEBLOCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", faceblock_schemas::error::report(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn load_key(path: &std::path::Path) -> anyhow::Result<Keypair> {
    Keypair::load(path).with_context(|| "create one with `faceblock-peer keygen --out FILE`")
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Keygen { out } => {
            let k = Keypair::generate();
            k.save(&out)?;
            println!("{}", k.public().to_hex());
        }
        Command::Register { key } => {
            let key = load_key(&key)?;
            let store = Store::open(&cli.store)?;
            let net = NetworkFile::load(&store).await?;
            let path = submit::register(&store, &net, &key).await?;
            println!(
                "join request for {} written to {path}; the next epoch run gives it a uid",
                key.public().to_hex()
            );
        }
        Command::Weights {
            key,
            epoch,
            set,
            file,
            source,
        } => {
            let key = load_key(&key)?;
            let store = Store::open(&cli.store)?;
            let net = NetworkFile::load(&store).await?;
            let uid = identity::uid(&store, &net, &key.public()).await?;
            let head = identity::head(&store, &net).await?;
            let epoch = epoch.unwrap_or(head.open_epoch);
            let row = match (set, file, source) {
                (Some(s), None, None) => {
                    let (dst, weight) = submit::parse_set(&s)?;
                    submit::Row::Explicit { dst, weight }
                }
                (None, Some(f), None) => {
                    let text = std::fs::read_to_string(&f)
                        .with_context(|| format!("cannot read {}", f.display()))?;
                    let (dst, weight) =
                        submit::parse_csv(&text).with_context(|| format!("in {}", f.display()))?;
                    submit::Row::Explicit { dst, weight }
                }
                (None, None, Some(_)) => submit::Row::Fisher,
                _ => anyhow::bail!("give the row with one of --set, --file or --source fisher"),
            };
            let entries = match &row {
                submit::Row::Explicit { dst, .. } => dst.len(),
                submit::Row::Fisher => 0,
            };
            let path = submit::weights(&store, &net, &key, uid, epoch, &row).await?;
            println!(
                "weights for uid {uid}, epoch {epoch} ({} entries) written to {path}; k this epoch is {}",
                entries,
                head.k
            );
        }
    }
    Ok(())
}
