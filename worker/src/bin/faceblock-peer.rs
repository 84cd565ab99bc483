//! `faceblock-peer`: a peer's command line (SPEC 9).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use faceblock_schemas::logging::{self, LogFormat};
use faceblock_schemas::{Keypair, NetworkFile, Store};

/// Shown at the end of `--help`.
const EXIT_CODES: &str = "Exit codes:
  0  success (also: a phase that was already done for this epoch)
  1  error (no key, store unreachable, network not initialised, ...): the message says what to do
  2  usage error (unknown command or option, missing argument)";
use faceblock_worker::peer::{self, Behaviour, Peer, Settings, WeightsFrom};
use faceblock_worker::phases::{self, LearnReport, RunTiming};
use faceblock_worker::{identity, submit, text};

/// FaceBlock peer: trains a small model on its own text, answers other
/// peers' queries, learns whom to listen to, and submits signed weight rows.
#[derive(Parser)]
#[command(name = "faceblock-peer", version, about, after_help = EXIT_CODES)]
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
    /// Log format on stderr: human text, or one JSON object per line
    /// (level from FACEBLOCK_LOG, default warn).
    #[arg(long, value_enum, env = "FACEBLOCK_LOG_FORMAT", global = true, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
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
    /// Do one phase of the open epoch and exit (query, then answer, then learn).
    Step {
        #[command(flatten)]
        peer: PeerArgs,
        /// The phase to run.
        #[arg(long, value_enum)]
        phase: Phase,
        /// Epoch (default: the open epoch).
        #[arg(long)]
        epoch: Option<u64>,
    },
    /// Loop over the phases for N epochs (or forever), each as soon as its
    /// inputs are there or the wait is over.
    Run {
        #[command(flatten)]
        peer: PeerArgs,
        /// Epochs to take part in (default: until stopped).
        #[arg(long)]
        epochs: Option<u64>,
        /// Longest wait, in seconds, for others' queries and again for answers.
        #[arg(long, default_value_t = 60.0)]
        wait: f64,
        /// Seconds between looks at the store.
        #[arg(long, default_value_t = 0.5)]
        poll: f64,
    },
    /// Write generated text with learnable structure (no download needed).
    Text {
        /// Folder to write `<style>.txt` into (created).
        #[arg(long)]
        out: PathBuf,
        /// arithmetic, prose, records or code.
        #[arg(long, default_value = "prose")]
        style: String,
        /// Random seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Approximate size in bytes.
        #[arg(long, default_value_t = 200_000)]
        bytes: usize,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Phase {
    /// Sample a batch and ask the peers the gating layer picks.
    Query,
    /// Answer every query addressed to this peer.
    Answer,
    /// Train on the answers, send gradients, submit weights and metrics.
    Learn,
}

/// What `step` and `run` share.
#[derive(Args)]
struct PeerArgs {
    /// The peer's key file.
    #[arg(long)]
    key: PathBuf,
    /// Folder (or file) of the peer's own text.
    #[arg(long)]
    data: PathBuf,
    /// State directory for the model (default: next to the key, `<key>.state/`).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Examples per batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Peers each example is sent to (top-k of the gating layer).
    #[arg(long, default_value_t = 2)]
    fanout: usize,
    /// Training steps on the queried batch with the answers.
    #[arg(long, default_value_t = 4)]
    exchange_steps: usize,
    /// Further steps on local batches, with the distilled student standing in.
    #[arg(long, default_value_t = 16)]
    local_steps: usize,
    /// Learning rate (AdamW).
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Learning rate of the gating layer (higher: it sees few real answers).
    #[arg(long, default_value_t = 3e-2)]
    gating_lr: f64,
    /// How this peer answers (`noise` is for experiments).
    #[arg(long, value_enum, default_value = "honest")]
    behaviour: Behaviour,
    /// Where the submitted weight row comes from.
    #[arg(long, value_enum, default_value = "gating", visible_alias = "source")]
    weights_from: WeightsFrom,
}

impl PeerArgs {
    async fn open(&self, store: &str) -> anyhow::Result<Peer> {
        let key = load_key(&self.key)?;
        let store = Store::open(store)?.acting_as("peer");
        let settings = Settings {
            batch: self.batch.max(1),
            fanout: self.fanout,
            exchange_steps: self.exchange_steps.max(1),
            local_steps: self.local_steps,
            lr: self.lr,
            gating_lr: self.gating_lr,
            behaviour: self.behaviour,
            weights: self.weights_from,
            ..Settings::default()
        };
        let state = self
            .state
            .clone()
            .unwrap_or_else(|| peer::default_state_dir(&self.key));
        Ok(Peer::open(store, key, state, &self.data, settings).await?)
    }
}

fn print_learn(uid: u32, r: &LearnReport) {
    if !r.learned {
        println!("uid {uid} epoch {}: already learned", r.epoch);
        return;
    }
    println!(
        "uid {uid} epoch {}: loss {:.4} distill {:.4} answered {:?} missing {:?} remote gradients {} examples {}",
        r.epoch, r.loss, r.distill_loss, r.answered, r.missing, r.remote_gradients, r.examples
    );
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = cli.log_format;
    logging::init(log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let msg = format!("cannot start the runtime: {e}");
            logging::report_error(log_format, "faceblock_peer", &msg, 1);
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = faceblock_schemas::error::report(e.as_ref());
            logging::report_error(log_format, "faceblock_peer", &msg, 1);
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
            let store = Store::open(&cli.store)?.acting_as("peer");
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
            let store = Store::open(&cli.store)?.acting_as("peer");
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
        Command::Step { peer, phase, epoch } => {
            let mut p = peer.open(&cli.store).await?;
            let epoch = match epoch {
                Some(e) => e,
                None => identity::head(&p.store, &p.net).await?.open_epoch,
            };
            match phase {
                Phase::Query => {
                    let r = phases::query(&mut p, epoch).await?;
                    if r.written {
                        println!(
                            "uid {} epoch {epoch}: queried {} examples from peers {:?}",
                            p.uid, r.examples, r.peers
                        );
                    } else {
                        println!("uid {} epoch {epoch}: already queried", p.uid);
                    }
                }
                Phase::Answer => {
                    let r = phases::answer(&mut p, epoch).await?;
                    println!("uid {} epoch {epoch}: answered queries of {:?}", p.uid, r);
                }
                Phase::Learn => {
                    let r = phases::learn(&mut p, epoch).await?;
                    print_learn(p.uid, &r);
                }
            }
        }
        Command::Run {
            peer,
            epochs,
            wait,
            poll,
        } => {
            let mut p = peer.open(&cli.store).await?;
            let timing = RunTiming {
                wait: std::time::Duration::from_secs_f64(wait.max(0.0)),
                poll: std::time::Duration::from_secs_f64(poll.max(0.01)),
            };
            let uid = p.uid;
            phases::run(&mut p, epochs, timing, |r| print_learn(uid, r)).await?;
        }
        Command::Text {
            out,
            style,
            seed,
            bytes,
        } => {
            let Some(i) = text::STYLES.iter().position(|s| *s == style) else {
                anyhow::bail!(
                    "unknown style '{style}'; choose one of {}",
                    text::STYLES.join(", ")
                );
            };
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let path = out.join(format!("{style}.txt"));
            std::fs::write(&path, text::generate(i, seed, bytes))
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}
