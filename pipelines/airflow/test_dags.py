"""Runs FaceBlock's DAGs with Airflow itself (`dag.test()`, SQLite, a fresh
AIRFLOW_HOME) against real networks, and checks the ledger they leave.

usage: python test_dags.py --faceblock BIN --peer BIN --store DIR
           --s3-store s3://bucket/prefix --s3-endpoint http://127.0.0.1:PORT
           --demo-dir DIR

--store and --s3-store are initialised networks whose open epoch 0 has weight
rows (coordinator/tests/it/airflow.rs makes them; the S3 one on the loopback
moto server, whose credentials come from the AWS_* environment). Exits 0 when
every case passed; prints one line per case with its time.

Cases:
  a. faceblock_epoch commits epoch 0, verifies it, draws the charts; a run
     for the next logical date closes epoch 1.
  b. a rerun of the first logical date commits nothing new and succeeds.
  c. lost race: another coordinator claims the epoch while this run is
     between reading the claims and writing its own (a proxy holds this
     run's conditional PUT of the claim until the other has committed); the
     coordinator exits 75 and the run ends with its tasks skipped, not failed.
  d. exit 1 (a store that cannot be opened, from the faceblock_store
     Variable, which wins over FACEBLOCK_STORE) is retried, then fails.
  e. faceblock_demo: init, every peer's query/answer/learn, then the epoch.
"""

from __future__ import annotations

import argparse
import glob
import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--faceblock", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--s3-store", required=True)
    ap.add_argument("--s3-endpoint", required=True)
    ap.add_argument("--demo-dir", required=True)
    return ap.parse_args()


ARGS = parse_args()
HOME = tempfile.mkdtemp(prefix="faceblock-airflow-")
PLOTS = os.path.join(HOME, "plots")
# Airflow reads its configuration when first imported: set it up before.
os.environ.update(
    {
        "AIRFLOW_HOME": HOME,
        "AIRFLOW__CORE__DAGS_FOLDER": os.path.join(HERE, "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # Airflow's own INFO lines would bury the tasks' output and the cases' results.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "FACEBLOCK_BIN": ARGS.faceblock,
        "FACEBLOCK_PEER_BIN": ARGS.peer,
        "FACEBLOCK_STORE": ARGS.store,
        "FACEBLOCK_PLOT_DIR": PLOTS,
        "FACEBLOCK_RETRIES": "1",
        "FACEBLOCK_RETRY_DELAY": "1",
        "AWS_ENDPOINT_URL": ARGS.s3_endpoint,
    }
)
subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)

from airflow.models import DagBag, Variable  # noqa: E402

BAG = DagBag(dag_folder=os.path.join(HERE, "dags"))
assert not BAG.import_errors, BAG.import_errors
EPOCH_DAG = BAG.get_dag("faceblock_epoch")
DEMO_DAG = BAG.get_dag("faceblock_demo")
assert EPOCH_DAG is not None and DEMO_DAG is not None, sorted(BAG.dag_ids)

failures: list[str] = []


def check(cond: bool, what: str) -> None:
    if not cond:
        failures.append(what)
        print(f"FAILED: {what}", flush=True)


def sql(store: str, query: str, env: dict | None = None) -> list[list[str]]:
    e = dict(os.environ, FACEBLOCK_STORE=store, **(env or {}))
    p = subprocess.run([ARGS.faceblock, "sql", "--format", "csv", query], env=e, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return [l.split(",") for l in p.stdout.splitlines()[1:] if l.strip()]


def epochs(store: str, env: dict | None = None) -> list[str]:
    return [r[0] for r in sql(store, "SELECT epoch FROM epochs ORDER BY epoch", env)]


def states(dr) -> dict[str, list[str]]:
    """Task id -> the states of its task instances (several when mapped)."""
    out: dict[str, list[str]] = {}
    for ti in dr.get_task_instances():
        out.setdefault(ti.task_id, []).append(str(ti.state))
    return out


def tries(dr, task_id: str) -> int:
    return max(ti.try_number for ti in dr.get_task_instances() if ti.task_id == task_id)


def xcom(dr, task_id: str):
    ti = next(ti for ti in dr.get_task_instances() if ti.task_id == task_id)
    return ti.xcom_pull(task_ids=task_id)


def run(dag, when: datetime, **kw):
    t = time.time()
    dr = dag.test(logical_date=when, **kw)
    print(f"  {dag.dag_id} @ {when.isoformat()}: {dr.state} in {time.time() - t:.1f} s: {states(dr)}", flush=True)
    return dr


def case(name: str):
    def wrap(f):
        t = time.time()
        n = len(failures)
        print(f"case {name} ...", flush=True)
        try:
            f()
        except Exception as e:  # a crash in a case is a failure, reported with the rest
            import traceback

            traceback.print_exc()
            failures.append(f"{name}: {e!r}")
        ok = "ok" if len(failures) == n else "FAILED"
        print(f"case {name}: {ok} ({time.time() - t:.1f} s)", flush=True)
        return f

    return wrap


D1 = datetime(2026, 1, 1, tzinfo=timezone.utc)
D2 = datetime(2026, 1, 1, 1, tzinfo=timezone.utc)
ALL_DONE = {"epoch_run": ["success"], "epoch_verify": ["success"], "plot": ["success"]}


@case("a: one epoch per run, verified, charts drawn")
def _():
    store = ARGS.store
    check(epochs(store) == [], "the network starts with no committed epoch")
    dr = run(EPOCH_DAG, D1)
    check(str(dr.state) == "success", f"run for {D1} succeeded (got {dr.state})")
    check(states(dr) == ALL_DONE, f"every task succeeded: {states(dr)}")
    check(xcom(dr, "epoch_run") == 0, "epoch_run returned epoch 0")
    check(epochs(store) == ["0"], f"epoch 0 committed: {epochs(store)}")
    check(sql(store, "SELECT count(*) FROM state WHERE epoch = 0") == [["4"]], "state has the 4 peers")
    p = subprocess.run([ARGS.faceblock, "epoch", "verify", "--epoch", "0"], env=dict(os.environ, FACEBLOCK_STORE=store))
    check(p.returncode == 0, "epoch 0 verifies")
    pngs = sorted(glob.glob(os.path.join(PLOTS, "*.png")))
    check(len(pngs) >= 4, f"charts drawn into {PLOTS}: {pngs}")
    for f in pngs:
        with open(f, "rb") as fh:
            check(fh.read(8) == b"\x89PNG\r\n\x1a\n", f"{f} is a PNG")
    dr = run(EPOCH_DAG, D2)
    check(str(dr.state) == "success" and states(dr) == ALL_DONE, f"run for {D2}: {states(dr)}")
    check(xcom(dr, "epoch_run") == 1, "the next logical date closed epoch 1")
    check(epochs(store) == ["0", "1"], f"epochs 0 and 1 committed: {epochs(store)}")


@case("b: a rerun of the same logical date commits nothing new")
def _():
    store = ARGS.store
    before = sql(store, "SELECT epoch, digest FROM epochs ORDER BY epoch")
    dr = run(EPOCH_DAG, D1)
    check(str(dr.state) == "success", f"rerun succeeded (got {dr.state})")
    check(states(dr) == ALL_DONE, f"every task succeeded: {states(dr)}")
    check(xcom(dr, "epoch_run") == 0, "the rerun closed its own epoch 0 again")
    check(sql(store, "SELECT epoch, digest FROM epochs ORDER BY epoch") == before, "epochs unchanged")


class ClaimHold:
    """An HTTP proxy in front of the S3 server that holds conditional PUTs of
    epoch claims until released: the coordinator behind it has read the
    claims (none) and is writing its own when another coordinator wins."""

    def __init__(self, upstream: str):
        host, port = upstream.split("//")[1].split(":")
        self.upstream = (host, int(port.rstrip("/")))
        self.held = threading.Event()
        self.release = threading.Event()
        self.statuses: list[int] = []
        hold = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                claim = (
                    self.command == "PUT"
                    and "/_claims/" in self.path
                    and self.headers.get("If-None-Match") is not None
                )
                if claim:
                    hold.held.set()
                    hold.release.wait(120)
                conn = http.client.HTTPConnection(*hold.upstream, timeout=120)
                conn.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
                resp = conn.getresponse()
                data = resp.read()
                if claim:
                    hold.statuses.append(resp.status)
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@case("c: a lost race (exit 75) ends the run skipped, not failed")
def _():
    store = ARGS.s3_store
    direct = {"AWS_ENDPOINT_URL": ARGS.s3_endpoint}
    check(epochs(store, direct) == [], "the S3 network starts with no committed epoch")
    hold = ClaimHold(ARGS.s3_endpoint)
    other: dict = {}

    dag_done = threading.Event()

    def other_coordinator():
        while not hold.held.wait(0.1):
            if dag_done.is_set():
                other["error"] = "the DAG's coordinator never tried to claim"
                return
        e = dict(os.environ, FACEBLOCK_STORE=store, **direct)
        p = subprocess.run([ARGS.faceblock, "epoch", "run"], env=e, capture_output=True, text=True)
        other["code"], other["stdout"], other["stderr"] = p.returncode, p.stdout, p.stderr
        hold.release.set()

    t = threading.Thread(target=other_coordinator)
    t.start()
    Variable.set("faceblock_store", store)
    os.environ["AWS_ENDPOINT_URL"] = hold.url
    try:
        dr = run(EPOCH_DAG, D1)
    finally:
        dag_done.set()
        os.environ["AWS_ENDPOINT_URL"] = ARGS.s3_endpoint
        Variable.delete("faceblock_store")
        hold.release.set()
        t.join()
        hold.server.shutdown()
    check("error" not in other, other.get("error", ""))
    check(other.get("code") == 0, f"the other coordinator committed: {other}")
    check("epoch 0 committed" in other.get("stdout", ""), f"the other committed epoch 0: {other}")
    check(hold.statuses[:1] == [412], f"the DAG's claim was refused by the store: {hold.statuses}")
    check(str(dr.state) != "failed", f"the run did not fail (got {dr.state})")
    s = states(dr)
    check(
        s == {"epoch_run": ["skipped"], "epoch_verify": ["skipped"], "plot": ["skipped"]},
        f"epoch_run skipped and the rest with it: {s}",
    )
    check(tries(dr, "epoch_run") == 1, "a lost race is not retried")
    check(epochs(store, direct) == ["0"], f"epoch 0 committed once: {epochs(store, direct)}")


@case("d: exit 1 is retried, then the run fails")
def _():
    Variable.set("faceblock_store", "bogus://nowhere")
    try:
        dr = run(EPOCH_DAG, datetime(2026, 1, 2, tzinfo=timezone.utc))
    finally:
        Variable.delete("faceblock_store")
    check(str(dr.state) == "failed", f"the run failed (got {dr.state})")
    s = states(dr)
    check(s.get("epoch_run") == ["failed"], f"epoch_run failed: {s}")
    check(tries(dr, "epoch_run") == 2, f"epoch_run was tried twice (retries=1): {tries(dr, 'epoch_run')}")
    check(s.get("epoch_verify") == ["upstream_failed"], f"verify did not run: {s}")
    check(epochs(ARGS.store) == ["0", "1"], "the good store was not touched")


@case("e: the demo network: every peer's phases, then the epoch")
def _():
    root = ARGS.demo_dir
    dr = run(DEMO_DAG, D1, run_conf={"dir": root, "peers": 3})
    s = states(dr)
    check(str(dr.state) == "success", f"demo run succeeded (got {dr.state})")
    for phase in ("query", "answer", "learn"):
        check(s.get(phase) == ["success"] * 3, f"{phase} ran for the 3 peers: {s.get(phase)}")
    for t in ("init", "epoch_run", "epoch_verify", "plot"):
        check(s.get(t) == ["success"], f"{t} succeeded: {s.get(t)}")
    net = os.path.join(root, "net")
    check(epochs(net) == ["0"], f"demo epoch 0 committed: {epochs(net)}")
    check(sql(net, "SELECT count(*) FROM metrics WHERE epoch = 0") == [["3"]], "each peer reported its loss")
    check(len(glob.glob(os.path.join(root, "plots", "*.png"))) >= 4, "demo charts drawn")


if failures:
    print(f"{len(failures)} check(s) failed:", *failures, sep="\n  ")
    sys.exit(1)
print("all Airflow cases passed")
