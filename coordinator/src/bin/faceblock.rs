//! `faceblock`: the coordinator's command line (SPEC 9).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use faceblock_coordinator::epoch::{self, Outcome, RunOptions};
use faceblock_coordinator::sql::Format;
use faceblock_coordinator::{init, sql, status, verify};
use faceblock_schemas::{Genesis, Params, Store};

/// FaceBlock coordinator: closes epochs and keeps the ledger.
///
/// Exit codes: 0 success (also: epoch already committed), 1 error,
/// 2 usage, 3 `epoch verify` found a mismatch, 75 another coordinator
/// claimed the epoch first (it commits it; retry later to see it).
///
/// Logs go to stderr; set FACEBLOCK_LOG=info (or debug) for more.
#[derive(Parser)]
#[command(version, about, long_about)]
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
    /// Worker threads and DataFusion partitions (results never depend on it).
    #[arg(long, env = "FACEBLOCK_PARTITIONS", global = true)]
    partitions: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a network: write network/params.json and the ledger tables.
    Init {
        /// TOML file of parameters (SPEC 4); every field optional.
        #[arg(long)]
        params: Option<PathBuf>,
        /// CSV with columns uid,public_key,stake.
        #[arg(long)]
        genesis: PathBuf,
    },
    /// Close or verify epochs.
    Epoch {
        #[command(subcommand)]
        command: EpochCommand,
    },
    /// Query the ledger tables by name (state, weights, bonds, fisher, epochs,
    /// rejections, registry, metrics, inputs); committed epochs only.
    Sql {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// The query, e.g. "SELECT uid, stake FROM state WHERE epoch = 0".
        query: String,
    },
    /// Open epoch, k, last loss and top peers.
    Status {
        /// How many peers to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Print the IAM policy (JSON) of one role on a shared bucket (AWS S3,
    /// MinIO): give each peer and the coordinator credentials of their own
    /// with this policy attached. Needs no store.
    Policy {
        #[command(subcommand)]
        role: PolicyRole,
    },
}

#[derive(Subcommand)]
enum PolicyRole {
    /// A peer: writes only the objects it authors, reads what it needs, deletes nothing.
    Peer {
        /// The peer's uid (a registered peer).
        #[arg(long, required_unless_present = "public_key")]
        uid: Option<u32>,
        /// The peer's public key hex: lets it write its join request before it has a uid.
        #[arg(long)]
        public_key: Option<String>,
        #[command(flatten)]
        bucket: BucketArgs,
    },
    /// The coordinator: reads everything, writes the ledger, the network files and uid markers.
    Coordinator {
        #[command(flatten)]
        bucket: BucketArgs,
    },
}

#[derive(clap::Args)]
struct BucketArgs {
    /// The bucket that holds the network.
    #[arg(long)]
    bucket: String,
    /// The network's prefix in the bucket (the PREFIX of s3://BUCKET/PREFIX); empty for its root.
    #[arg(long, default_value = "")]
    prefix: String,
}

/// The policy of `role` as pretty JSON.
fn policy_json(role: &PolicyRole) -> anyhow::Result<String> {
    use faceblock_schemas::policy::{self, Bucket};
    let doc = match role {
        PolicyRole::Peer {
            uid,
            public_key,
            bucket,
        } => policy::peer(
            &Bucket::new(&bucket.bucket, &bucket.prefix)?,
            *uid,
            public_key.as_deref(),
        )?,
        PolicyRole::Coordinator { bucket } => {
            policy::coordinator(&Bucket::new(&bucket.bucket, &bucket.prefix)?)
        }
    };
    Ok(serde_json::to_string_pretty(&doc)?)
}

#[derive(Subcommand)]
enum EpochCommand {
    /// Close the open epoch (idempotent; finishes an interrupted run).
    Run {
        /// Epoch to close; an already committed one is reported and exits 0.
        #[arg(long)]
        epoch: Option<u64>,
        /// Print where the time went.
        #[arg(long)]
        timings: bool,
    },
    /// Recompute a committed epoch from its recorded inputs; exit 0 when the digest matches.
    Verify {
        /// The epoch.
        #[arg(long)]
        epoch: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FACEBLOCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let partitions = cli
        .partitions
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
        .max(1);
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(partitions)
        .build_global();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(partitions.max(2))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli, partitions)) {
        Ok(code) => code,
        Err(e) => {
            let code = e
                .downcast_ref::<faceblock_coordinator::Error>()
                .map(|e| e.exit_code())
                .unwrap_or(1);
            eprintln!("error: {}", faceblock_schemas::error::report(e.as_ref()));
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli, partitions: usize) -> anyhow::Result<ExitCode> {
    if let Command::Policy { role } = &cli.command {
        println!("{}", policy_json(role)?);
        return Ok(ExitCode::SUCCESS);
    }
    let store = Store::open(&cli.store)?.acting_as("coordinator");
    match cli.command {
        Command::Init { params, genesis } => {
            let params = match params {
                Some(p) => {
                    let text = std::fs::read_to_string(&p)
                        .with_context(|| format!("cannot read params file {}", p.display()))?;
                    Params::from_toml(&text)
                        .with_context(|| format!("in params file {}", p.display()))?
                }
                None => Params::default(),
            };
            let text = std::fs::read_to_string(&genesis)
                .with_context(|| format!("cannot read genesis file {}", genesis.display()))?;
            let genesis =
                Genesis::from_csv(&text).with_context(|| format!("in {}", genesis.display()))?;
            let n = genesis.peers.len();
            let net = init::init(&store, params, genesis).await?;
            println!(
                "initialised network {} with {n} genesis peers at {}",
                net.network_id,
                store.url()
            );
        }
        Command::Epoch { command } => match command {
            EpochCommand::Run { epoch, timings } => {
                let out = epoch::run(&store, &RunOptions { epoch, partitions }).await?;
                match out {
                    Outcome::Committed {
                        row,
                        digest,
                        phases,
                    } => {
                        println!(
                            "epoch {} committed: {} peers, {} rows in force ({} accepted, {} rejected), emission {}, loss {:.6}, k {} -> {}, digest {}",
                            row.epoch,
                            row.n_peers,
                            row.rows_in_force,
                            row.rows_accepted,
                            row.rows_rejected,
                            row.emission,
                            row.loss,
                            row.k,
                            row.k_next,
                            digest
                        );
                        if timings {
                            println!("timings: {}", phases.summary());
                        }
                    }
                    Outcome::Finished { epoch, digest } => {
                        println!("epoch {epoch} committed (finished an interrupted run), digest {digest}")
                    }
                    Outcome::AlreadyCommitted { epoch } => {
                        println!("epoch {epoch} is already committed; nothing to do")
                    }
                }
            }
            EpochCommand::Verify { epoch } => {
                let v = verify::verify(&store, epoch, partitions).await?;
                println!("epoch {} verified: digest {}", v.epoch, v.digest);
            }
        },
        Command::Sql { format, query } => {
            let batches = sql::run(&store, &query, partitions).await?;
            println!("{}", sql::render(&batches, format)?);
        }
        Command::Status { top } => print!("{}", status::report(&store, top).await?),
        Command::Policy { role } => println!("{}", policy_json(&role)?),
    }
    Ok(ExitCode::SUCCESS)
}
