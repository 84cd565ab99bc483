"""A loopback S3-compatible server for FaceBlock's tests: moto, served one
request at a time so conditional PUTs (If-None-Match: *) have exactly one
winner, plus an optional fault-injecting HTTP proxy in front of it.

usage: python3 s3_server.py PORT [--bucket NAME]... [--proxy PORT]
                            [--iam USERS.json --iam-credentials OUT.json]

With --iam, the server enforces IAM policies the way AWS does for S3 (moto's
access control): USERS.json maps user names to policy documents; each user
is created with its policy attached (a managed policy, as the README tells
operators to do) and an access key, the keys are written to OUT.json as
{"name": {"access_key_id": ..., "secret_access_key": ...}}, and from then on
every request must be signed by one of these users and allowed by its policy.

The proxy's faults are set at run time with
  POST http://127.0.0.1:PROXY/__faults?error_rate=0.3&drop_rate=0.1&delay_ms=200&down=0&seed=1
and counted at GET /__faults. Prints "ready" once both listen.
"""
import argparse
import logging
import http.client
import json
import random
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.error_rate = 0.0
        self.drop_rate = 0.0
        self.delay_ms = 0
        self.down = False
        self.rng = random.Random(1)
        self.counts = {"requests": 0, "errors": 0, "drops": 0, "delays": 0}

    def set(self, q):
        with self.lock:
            self.error_rate = float(q.get("error_rate", ["0"])[0])
            self.drop_rate = float(q.get("drop_rate", ["0"])[0])
            self.delay_ms = int(q.get("delay_ms", ["0"])[0])
            self.down = q.get("down", ["0"])[0] == "1"
            self.rng = random.Random(int(q.get("seed", ["1"])[0]))

    def pick(self):
        with self.lock:
            self.counts["requests"] += 1
            if self.down:
                self.counts["errors"] += 1
                return "error"
            r = self.rng.random()
            if r < self.drop_rate:
                self.counts["drops"] += 1
                return "drop"
            if r < self.drop_rate + self.error_rate:
                self.counts["errors"] += 1
                return "error"
            if self.delay_ms:
                self.counts["delays"] += 1
                return "delay"
            return "pass"


def proxy_handler(upstream_port, faults):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _control(self):
            if self.command == "POST":
                faults.set(parse_qs(urlparse(self.path).query))
            body = json.dumps(faults.counts).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _any(self):
            if self.path.startswith("/__faults"):
                return self._control()
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else None
            what = faults.pick()
            if what == "drop":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if what == "error":
                msg = b"<Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error>"
                self.send_response(503)
                self.send_header("Content-Length", str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)
                return
            if what == "delay":
                time.sleep(faults.delay_ms / 1000.0)
            conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
            headers = {k: v for k, v in self.headers.items()}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
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

    return Handler


def create_users(port, users_file, out_file):
    """Creates one IAM user per policy, then turns on enforcement."""
    import boto3
    from moto import settings

    iam = boto3.client(
        "iam",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    with open(users_file) as f:
        users = json.load(f)
    keys = {}
    for name, policy in users.items():
        iam.create_user(UserName=name)
        arn = iam.create_policy(PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))[
            "Policy"
        ]["Arn"]
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
        k = iam.create_access_key(UserName=name)["AccessKey"]
        keys[name] = {
            "access_key_id": k["AccessKeyId"],
            "secret_access_key": k["SecretAccessKey"],
        }
    with open(out_file, "w") as f:
        json.dump(keys, f)
    # moto checks credentials and policies once this many requests have
    # been served without (the setup above): from now on, every request.
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--bucket", action="append", default=[])
    ap.add_argument("--proxy", type=int, default=0)
    ap.add_argument("--iam", default=None)
    ap.add_argument("--iam-credentials", default=None)
    a = ap.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    # One request at a time, but a deep accept queue: with the default of 5,
    # bursts of parallel clients lose SYNs and stall for seconds.
    BaseWSGIServer.request_queue_size = 1024
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    ThreadingHTTPServer.request_queue_size = 1024
    server = make_server("127.0.0.1", a.port, app, threaded=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if a.bucket:
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{a.port}",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        for b in a.bucket:
            s3.create_bucket(Bucket=b)
    if a.iam:
        create_users(a.port, a.iam, a.iam_credentials)
    if a.proxy:
        faults = Faults()
        proxy = ThreadingHTTPServer(("127.0.0.1", a.proxy), proxy_handler(a.port, faults))
        proxy.daemon_threads = True
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
    print("ready", flush=True)
    try:
        sys.stdin.read()  # exit when the test closes our stdin (or dies)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
