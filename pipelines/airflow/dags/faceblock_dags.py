"""FaceBlock's Airflow DAGs (Airflow 3).

faceblock_epoch: closes one epoch per run, then verifies it and draws the
charts: `faceblock epoch run --epoch E`, `faceblock epoch verify --epoch E`,
`faceblock plot --out DIR --to E`.

faceblock_demo: a small local network in a folder (the `dir` param): init on
the first run, then each run is one epoch of every peer's phases (query,
answer, learn; one task per peer and phase) followed by the same three
coordinator tasks.

Settings, each an Airflow Variable or else an environment variable, else the
default:

  Variable             environment            default
  faceblock_store      FACEBLOCK_STORE        (required by faceblock_epoch)
  faceblock_schedule   FACEBLOCK_SCHEDULE     @hourly (read when the DAG is parsed)
  faceblock_bin        FACEBLOCK_BIN          faceblock (on PATH)
  faceblock_peer_bin   FACEBLOCK_PEER_BIN     faceblock-peer (on PATH)
  faceblock_plot_dir   FACEBLOCK_PLOT_DIR     $AIRFLOW_HOME/faceblock-plots
  faceblock_retries    FACEBLOCK_RETRIES      4 (per task, exponential backoff)
  faceblock_retry_delay FACEBLOCK_RETRY_DELAY 60 (seconds before the first retry; doubles, at most 1 h)
  faceblock_demo_dir   FACEBLOCK_DEMO_DIR     /tmp/faceblock-demo (the demo's `dir` param)

Exit codes of `faceblock` and what the task does (README "Exit codes"):
  0   success (an epoch that was already committed is success too)
  75  another coordinator claimed the epoch first and commits it: the task
      and the rest of the run are skipped, not failed
  1   an error (store down, ...): the task fails and is retried
  2   usage error, 3 `epoch verify` mismatch: failed at once, no retry

Reruns are idempotent: the epoch a run closes is recorded (Variable
`faceblock_epoch_runs`, per store and logical date) before the coordinator
runs, so clearing or re-triggering the same logical date closes the same
epoch again, which commits nothing new.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, Param, Variable, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

# Exit codes of `faceblock` (`faceblock --help`).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_MISMATCH = 3
EXIT_LOST_RACE = 75

RUNS_VARIABLE = "faceblock_epoch_runs"
RUNS_KEPT = 500


def setting(name: str, default: str | None = None) -> str | None:
    """Airflow Variable `faceblock_<name>`, else $FACEBLOCK_<NAME>, else `default`."""
    try:
        value = Variable.get(f"faceblock_{name}", default=None)
    except Exception:  # no metadata database reachable while parsing: use the environment
        value = None
    if value in (None, ""):
        value = os.environ.get(f"FACEBLOCK_{name.upper()}", default)
    return value


def run_binary(args: list[str], store: str | None) -> subprocess.CompletedProcess:
    """Runs a FaceBlock binary, copying its output into the task log."""
    env = dict(os.environ)
    if store:
        env["FACEBLOCK_STORE"] = store
    print("+", " ".join(args), flush=True)
    p = subprocess.run(args, env=env, capture_output=True, text=True)
    if p.stdout:
        print(p.stdout, end="" if p.stdout.endswith("\n") else "\n", flush=True)
    if p.stderr:
        print(p.stderr, end="" if p.stderr.endswith("\n") else "\n", flush=True)
    print(f"exit {p.returncode}", flush=True)
    return p


def fail_for(p: subprocess.CompletedProcess, what: str) -> None:
    """Maps a non-zero exit code to the task's fate."""
    if p.returncode == EXIT_OK:
        return
    if p.returncode == EXIT_LOST_RACE:
        raise AirflowSkipException(
            f"{what}: another coordinator claimed the epoch first and commits it (exit 75)"
        )
    tail = (p.stderr.strip().splitlines() or ["(no message)"])[-1]
    if p.returncode in (EXIT_USAGE, EXIT_MISMATCH):
        raise AirflowFailException(f"{what} failed with exit {p.returncode}, not retried: {tail}")
    raise RuntimeError(f"{what} failed with exit {p.returncode} (retried): {tail}")


def last_committed(store: str) -> int | None:
    """The last committed epoch, from the ledger (None before the first)."""
    p = run_binary(
        [setting("bin", "faceblock"), "sql", "--format", "csv", "SELECT max(epoch) AS e FROM epochs"],
        store,
    )
    fail_for(p, "reading the last committed epoch")
    rows = [r for r in csv.reader(io.StringIO(p.stdout)) if r]
    value = rows[1][0] if len(rows) > 1 and rows[1] else ""
    return int(value) if value.strip() else None  # max() over no rows is NULL: empty


def run_key(store: str) -> str:
    """Which run this is: the store and the logical date (the run id for runs without one)."""
    ctx = get_current_context()
    when = ctx.get("logical_date")
    ident = when.isoformat() if when is not None else ctx["run_id"]
    return f"{ctx['dag'].dag_id}|{store}|{ident}"


def epoch_for_run(store: str) -> int:
    """The epoch this run closes: the one recorded for it, else the open one (recorded now)."""
    runs = json.loads(Variable.get(RUNS_VARIABLE, default="{}") or "{}")
    key = run_key(store)
    if key in runs:
        return int(runs[key])
    last = last_committed(store)
    epoch = 0 if last is None else last + 1
    runs[key] = epoch
    # Keep the newest entries only (dicts keep insertion order).
    runs = dict(list(runs.items())[-RUNS_KEPT:])
    Variable.set(RUNS_VARIABLE, json.dumps(runs))
    return epoch


def resolve_store(store: str | None) -> str:
    store = store or setting("store")
    if not store:
        raise AirflowFailException(
            "no store: set the Airflow Variable faceblock_store or FACEBLOCK_STORE"
        )
    return store


@task(task_id="epoch_run")
def epoch_run(store: str | None = None) -> int:
    """`faceblock epoch run --epoch E`; returns E (committed now or before)."""
    store = resolve_store(store)
    epoch = epoch_for_run(store)
    p = run_binary([setting("bin", "faceblock"), "epoch", "run", "--epoch", str(epoch)], store)
    fail_for(p, f"epoch run (epoch {epoch})")
    m = re.search(r"^epoch (\d+) ", p.stdout, re.MULTILINE)
    if not m or int(m.group(1)) != epoch:
        raise RuntimeError(f"epoch run did not report epoch {epoch}: {p.stdout!r}")
    return epoch


@task(task_id="epoch_verify")
def epoch_verify(epoch: int, store: str | None = None) -> int:
    """`faceblock epoch verify --epoch E`: recompute it from its recorded inputs."""
    store = resolve_store(store)
    p = run_binary([setting("bin", "faceblock"), "epoch", "verify", "--epoch", str(epoch)], store)
    fail_for(p, f"epoch verify (epoch {epoch})")
    return epoch


@task(task_id="plot")
def plot(epoch: int, store: str | None = None, out: str | None = None) -> str:
    """`faceblock plot --out DIR --to E`: the charts up to this epoch (PNG files)."""
    store = resolve_store(store)
    out = out or setting(
        "plot_dir",
        os.path.join(os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "faceblock-plots"),
    )
    os.makedirs(out, exist_ok=True)
    p = run_binary([setting("bin", "faceblock"), "plot", "--out", out, "--to", str(epoch)], store)
    fail_for(p, f"plot (epoch {epoch})")
    return out


def task_defaults() -> dict:
    return {
        "retries": int(setting("retries", "4")),
        "retry_delay": timedelta(seconds=float(setting("retry_delay", "60"))),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(hours=1),
    }


with DAG(
    dag_id="faceblock_epoch",
    description="Close one FaceBlock epoch per run, verify it, draw the charts",
    schedule=setting("schedule", "@hourly"),
    start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=task_defaults(),
    tags=["faceblock"],
    doc_md=__doc__,
):
    e = epoch_run()
    plot(epoch_verify(e))


# The demo network: keys, text and genesis under `dir`, the store at dir/net.
STYLES = ["arithmetic", "prose", "records", "code"]


@task(task_id="init")
def demo_init() -> dict:
    """Creates the demo network on the first run; later runs reuse it."""
    params = get_current_context()["params"]
    root = params["dir"]
    peers = int(params["peers"])
    store = os.path.join(root, "net")
    peer_bin = setting("peer_bin", "faceblock-peer")
    keys = [os.path.join(root, "peers", str(i), "peer.key") for i in range(peers)]
    data = [os.path.join(root, "peers", str(i), "data") for i in range(peers)]
    if os.path.exists(os.path.join(store, "network")):
        print(f"network at {store} exists: running its open epoch")
    else:
        rows = ["uid,public_key,stake"]
        for i in range(peers):
            os.makedirs(os.path.dirname(keys[i]), exist_ok=True)
            # keygen prints the public key and never overwrites a key, so a
            # retried init keeps the key and its public half from before.
            public = keys[i] + ".public"
            if not os.path.exists(public):
                p = run_binary([peer_bin, "keygen", "--out", keys[i]], None)
                fail_for(p, "keygen")
                with open(public, "w") as f:
                    f.write(p.stdout.strip() + "\n")
            if not os.path.exists(data[i]):
                p = run_binary([peer_bin, "text", "--out", data[i], "--style", STYLES[i % 4], "--seed", str(i)], None)
                fail_for(p, "text")
            with open(public) as f:
                rows.append(f"{i},{f.read().strip()},1000000000")
        genesis = os.path.join(root, "genesis.csv")
        with open(genesis, "w") as f:
            f.write("\n".join(rows) + "\n")
        params_toml = os.path.join(root, "params.toml")
        with open(params_toml, "w") as f:
            f.write(params["network_params"])
        p = run_binary(
            [setting("bin", "faceblock"), "init", "--genesis", genesis, "--params", params_toml], store
        )
        fail_for(p, "init")
    return {"store": store, "peers": [{"key": k, "data": d} for k, d in zip(keys, data)]}


def demo_phase(phase: str):
    @task(task_id=phase)
    def step(peer: dict, net: dict) -> None:
        p = run_binary(
            [setting("peer_bin", "faceblock-peer"), "step", "--key", peer["key"], "--data", peer["data"], "--phase", phase],
            net["store"],
        )
        fail_for(p, f"faceblock-peer step --phase {phase} ({peer['key']})")

    return step


@task
def peers_of(net: dict) -> list[dict]:
    return net["peers"]


with DAG(
    dag_id="faceblock_demo",
    description="A small local FaceBlock network: every peer's phases as tasks, then the epoch",
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=task_defaults(),
    tags=["faceblock", "demo"],
    params={
        "dir": Param(setting("demo_dir", "/tmp/faceblock-demo"), type="string", description="folder of the demo network"),
        "peers": Param(3, type="integer", minimum=2, description="genesis peers (first run only)"),
        "network_params": Param(
            "seq_len = 16\nout_dim = 16\n", type="string", description="params.toml for init (small tensors: quick)"
        ),
    },
    doc_md=__doc__,
):
    net = demo_init()
    peers = peers_of(net)
    # Task arguments are templates: the store and the charts live under `dir`.
    store = "{{ params.dir }}/net"
    query = demo_phase("query").partial(net=net).expand(peer=peers)
    answer = demo_phase("answer").partial(net=net).expand(peer=peers)
    learn = demo_phase("learn").partial(net=net).expand(peer=peers)
    e = epoch_run(store)
    query >> answer >> learn >> e
    plot(epoch_verify(e, store), store, "{{ params.dir }}/plots")
