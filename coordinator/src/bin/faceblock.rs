//! `faceblock`: the coordinator's command line (SPEC 9).

/// Keeps freed memory for reuse instead of unmapping it per batch (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use faceblock_coordinator::epoch::{self, Outcome, RunOptions};
use faceblock_coordinator::sql::Format;
use faceblock_coordinator::{init, plot, sql, status, verify};
use faceblock_schemas::logging::{self, LogFormat};
use faceblock_schemas::{Genesis, Params, Store};

/// Shown at the end of `--help`; README and the schedulers rely on these.
const EXIT_CODES: &str = "Exit codes:
  0   success (also: `epoch run` for an epoch that is already committed)
  1   error (store unreachable, bad input, ...): the message says what to do
  2   usage error (unknown command or option, missing argument)
  3   `epoch verify`: the recomputed digest does not match the ledger
  75  `epoch run`: another coordinator claimed the epoch first; it commits it,
      this run wrote nothing visible (EX_TEMPFAIL: not a failure, retry later)";

/// FaceBlock coordinator: closes epochs and keeps the ledger.
///
/// Logs go to stderr; set FACEBLOCK_LOG=info (or debug) for more, and
/// --log-format json for one JSON object per line.
#[derive(Parser)]
#[command(name = "faceblock", version, about, long_about, after_help = EXIT_CODES)]
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
    /// Log format on stderr: human text, or one JSON object per line (no progress bars).
    #[arg(long, value_enum, env = "FACEBLOCK_LOG_FORMAT", global = true, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
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
    ///
    /// The query comes as an argument, from --file, or from standard input
    /// (`-` as the query or the file). Ready analyst queries live in
    /// pipelines/sql/analysts/.
    Sql {
        /// Output format (parquet needs --out).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Read the query from this file (`-`: standard input).
        #[arg(long, conflicts_with = "query", value_name = "FILE")]
        file: Option<PathBuf>,
        /// Write the answer to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The query, e.g. "SELECT uid, stake FROM state WHERE epoch = 0" (`-`: standard input).
        #[arg(required_unless_present = "file")]
        query: Option<String>,
    },
    /// Draw PNG charts of the committed ledger, each with its series as CSV.
    ///
    /// Writes stake_share, rank_consensus, peg and fisher_weight (.png and
    /// .csv) into --out. The top 8 peers by stake at the last plotted epoch
    /// are named; the rest are grouped as "others".
    Plot {
        /// Folder to write the charts into (created).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// First epoch to plot (default: the first committed).
        #[arg(long, value_name = "E")]
        from: Option<u64>,
        /// Last epoch to plot (default: the last committed).
        #[arg(long, value_name = "E")]
        to: Option<u64>,
        /// Image width in pixels.
        #[arg(long, default_value_t = 1200)]
        width: u32,
        /// Image height in pixels.
        #[arg(long, default_value_t = 700)]
        height: u32,
    },
    /// Open epoch, k, last loss and top peers.
    Status {
        /// How many peers to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Run a synthetic market (honest peers, a disjoint cabal, noise peers,
    /// weight copiers) through the real epoch code and ledger, and print the
    /// cabal's stake share per epoch.
    ///
    /// The store defaults to a private in-memory one; --store names a local
    /// directory or memory:// URL to keep the ledger. With --frontier the
    /// file is a frontier spec: every scenario in it runs, --jobs at a time,
    /// and the Markdown tables are printed (pipelines/scenarios/ holds both kinds).
    Simulate {
        /// Scenario TOML (with --frontier: a frontier TOML).
        file: PathBuf,
        /// Write the per-epoch CSV here (with --frontier: a folder for one CSV per scenario).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// Run a frontier spec instead of one scenario.
        #[arg(long)]
        frontier: bool,
        /// Scenarios run at once (--frontier); default: the number of cores.
        #[arg(long, value_name = "N")]
        jobs: Option<usize>,
        /// Also write the frontier's Markdown tables to this file.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// With --frontier --out DIR: keep the scenarios whose CSV in DIR is
        /// complete (a stopped frontier goes on where it stopped) and run the rest.
        #[arg(long, requires = "out", requires = "frontier")]
        resume: bool,
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
        /// Local folder where a run leaves the rows in force and bond
        /// segments it commits, so the next run need not decode them from the
        /// ledger (checked against the committed digest; never used by
        /// `verify`). It holds the last epoch's entry and spare files for the
        /// next, up to about 80 bytes per edge in force in all (2 GB at
        /// 100,000 × 256). `off` reads the ledger every time. [default:
        /// $XDG_CACHE_HOME/faceblock/epochs or ~/.cache/faceblock/epochs]
        #[arg(long, env = "FACEBLOCK_CACHE", value_name = "DIR|off")]
        cache: Option<PathBuf>,
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
    if let Command::Sql {
        format: Format::Parquet,
        out: None,
        ..
    } = cli.command
    {
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "--format parquet writes a binary file: name it with --out FILE",
            )
            .exit();
    }
    let log_format = cli.log_format;
    logging::init(log_format);
    faceblock_coordinator::progress::set_enabled(log_format == LogFormat::Text);
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
            let msg = format!("cannot start the runtime: {e}");
            logging::report_error(log_format, "faceblock", &msg, 1);
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
            let msg = faceblock_schemas::error::report(e.as_ref());
            logging::report_error(log_format, "faceblock", &msg, code);
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli, partitions: usize) -> anyhow::Result<ExitCode> {
    if let Command::Policy { role } = &cli.command {
        println!("{}", policy_json(role)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Simulate {
        file,
        out,
        frontier,
        jobs,
        report,
        resume,
    } = &cli.command
    {
        let jobs = jobs.unwrap_or(partitions);
        if *frontier {
            simulate_frontier(file, out.as_deref(), jobs, report.as_deref(), *resume)?;
        } else {
            simulate_one(&cli.store, file, out.as_deref(), partitions).await?;
        }
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
            EpochCommand::Run {
                epoch,
                timings,
                cache,
            } => {
                let cache = match cache {
                    Some(dir) if dir.as_os_str() == "off" => None,
                    Some(dir) => Some(dir),
                    None => epoch::cache::EpochCache::default_root(),
                };
                let out = epoch::run(
                    &store,
                    &RunOptions {
                        epoch,
                        partitions,
                        cache,
                    },
                )
                .await?;
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
        Command::Sql {
            format,
            file,
            out,
            query,
        } => {
            let text = read_query(query, file)?;
            let answer = sql::answer(&store, &text, partitions).await?;
            match out {
                Some(path) => {
                    let mut buf = Vec::new();
                    sql::write(&answer, format, &mut buf)?;
                    std::fs::write(&path, buf)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("wrote {} rows to {}", answer.rows(), path.display());
                }
                None => sql::write(
                    &answer,
                    format,
                    &mut ClosedPipeIsDone(std::io::stdout().lock()),
                )?,
            }
        }
        Command::Plot {
            out,
            from,
            to,
            width,
            height,
        } => {
            let opts = plot::Options {
                out,
                from,
                to,
                width,
                height,
            };
            for f in plot::plot(&store, &opts, partitions).await? {
                println!("wrote {}", f.display());
            }
        }
        Command::Status { top } => print!("{}", status::report(&store, top).await?),
        Command::Policy { role } => println!("{}", policy_json(&role)?),
        Command::Simulate { .. } => unreachable!("handled before the store is opened"),
    }
    Ok(ExitCode::SUCCESS)
}

fn sim_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    if !faceblock_coordinator::progress::visible() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} (eta {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

/// `faceblock simulate SCENARIO.toml`.
async fn simulate_one(
    store_url: &str,
    file: &std::path::Path,
    out: Option<&std::path::Path>,
    partitions: usize,
) -> anyhow::Result<()> {
    use faceblock_coordinator::simulate::{self, Group, Scenario};
    let scenario = Scenario::load(file)?;
    let store = if store_url.trim().is_empty() {
        simulate::private_memory_store(&scenario.name)?
    } else {
        Store::open(store_url)?.acting_as("coordinator")
    };
    let pb = sim_bar(scenario.epochs, &scenario.name);
    println!(
        "simulating {} ({} epochs, {} peers) on {}",
        scenario.name,
        scenario.epochs,
        scenario.market.peers(),
        store.url()
    );
    let stats = simulate::run::run(&scenario, &store, partitions, |e| {
        let line = format!(
            "epoch {:>4}  k {:>3}  cabal {:>6.2} %  honest {:>6.2} %  minted {}",
            e.epoch,
            e.k,
            e.group(Group::Cabal).share * 100.0,
            e.group(Group::Honest).share * 100.0,
            e.emission
        );
        if pb.is_hidden() {
            println!("{line}");
        } else {
            pb.println(line);
        }
        pb.inc(1);
    })
    .await?;
    pb.finish_and_clear();
    if let Some(path) = out {
        std::fs::write(path, simulate::csv(&stats))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {} epochs to {}", stats.len(), path.display());
    }
    Ok(())
}

/// `faceblock simulate --frontier FRONTIER.toml`.
fn simulate_frontier(
    file: &std::path::Path,
    out: Option<&std::path::Path>,
    jobs: usize,
    report: Option<&std::path::Path>,
    resume: bool,
) -> anyhow::Result<()> {
    use faceblock_coordinator::simulate::{self, frontier};
    let spec = frontier::Spec::load(file)?;
    let all = spec.jobs()?;
    // Scenarios a stopped run finished: their CSVs, complete, in --out.
    let mut kept: Vec<Option<Vec<simulate::EpochStats>>> = vec![None; all.len()];
    if let (true, Some(dir)) = (resume, out) {
        for (i, job) in all.iter().enumerate() {
            let p = dir.join(format!("{}.csv", job.scenario.name));
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            let stats = simulate::parse_csv(&text, &p.display().to_string())?;
            if stats.len() as u64 == spec.epochs {
                kept[i] = Some(stats);
            }
        }
    }
    let todo: Vec<usize> = (0..all.len()).filter(|i| kept[*i].is_none()).collect();
    eprintln!(
        "{} scenarios of {} epochs, {jobs} at a time{}",
        all.len(),
        spec.epochs,
        if resume {
            format!(
                " ({} kept from {}, {} to run)",
                all.len() - todo.len(),
                out.map(|d| d.display().to_string()).unwrap_or_default(),
                todo.len()
            )
        } else {
            String::new()
        }
    );
    let run_jobs: Vec<frontier::Job> = todo.iter().map(|i| all[*i].clone()).collect();
    let t = std::time::Instant::now();
    let pb = sim_bar(run_jobs.len() as u64, "scenarios");
    // Each job runs on its own thread and one-thread runtime: parallel
    // scenarios, not parallel partitions, keep every core busy.
    // Off a terminal (no bar), one line per finished scenario on stderr.
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let finished = std::sync::atomic::AtomicUsize::new(0);
    let write_failed = std::sync::Mutex::new(None);
    let ran = frontier::run_all(&run_jobs, jobs, |job, stats| {
        pb.inc(1);
        let n = finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if pb.is_hidden() {
            eprintln!(
                "[{n}/{}] {} done at {:.0} s",
                run_jobs.len(),
                job.scenario.name,
                t.elapsed().as_secs_f64()
            );
        }
        // Each scenario's CSV as soon as it is done: a stopped frontier keeps what it ran.
        if let Some(dir) = out {
            let p = dir.join(format!("{}.csv", job.scenario.name));
            if let Err(e) = std::fs::write(&p, simulate::csv(stats)) {
                *write_failed.lock().expect("lock") =
                    Some(format!("cannot write {}: {e}", p.display()));
            }
        }
    })?;
    pb.finish_and_clear();
    let secs = t.elapsed().as_secs_f64();
    if let Some(e) = write_failed.into_inner().expect("lock") {
        anyhow::bail!(e);
    }
    for (i, stats) in todo.into_iter().zip(ran) {
        kept[i] = Some(stats);
    }
    let results: Vec<_> = kept.into_iter().map(Option::unwrap_or_default).collect();
    let md = frontier::report(&spec, &all, &results);
    print!("{md}");
    println!(
        "{} scenarios run in {secs:.1} s ({:.2} s per scenario per job slot)",
        run_jobs.len(),
        secs * jobs.min(run_jobs.len()).max(1) as f64 / run_jobs.len().max(1) as f64
    );
    if let Some(p) = report {
        std::fs::write(p, &md).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

/// The query text from the argument, `--file`, or standard input (`-`).
fn read_query(query: Option<String>, file: Option<PathBuf>) -> anyhow::Result<String> {
    let from_stdin = || {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the query from standard input")?;
        anyhow::Ok(s)
    };
    let text = match (query, file) {
        (Some(q), _) if q == "-" => from_stdin()?,
        (Some(q), _) => q,
        (None, Some(f)) if f.as_os_str() == "-" => from_stdin()?,
        (None, Some(f)) => std::fs::read_to_string(&f)
            .with_context(|| format!("cannot read the query file {}", f.display()))?,
        (None, None) => String::new(),
    };
    if text.trim().is_empty() {
        anyhow::bail!(
            "the query is empty: give SQL as an argument, with --file FILE, or on standard input with `-`"
        );
    }
    Ok(text)
}

/// Standard output that treats a closed pipe (`faceblock sql ... | head`) as
/// the reader having seen enough, not as an error.
struct ClosedPipeIsDone<W>(W);

impl<W: std::io::Write> std::io::Write for ClosedPipeIsDone<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(buf.len()),
            r => r,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r,
        }
    }
}
