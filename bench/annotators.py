"""Benchmark of the annotation queue: concurrent annotators take the next item, then submit it.

Starts a real server (uvicorn subprocess on 127.0.0.1) on a fresh SQLite data directory or a fresh
PostgreSQL database, with one process on SQLite and one per CPU core on PostgreSQL, as deployed
(change with --workers). It creates a project with a fixed set of items, and drives the REST API from
one thread per annotator. Two modes:

- flat: every annotator loops next -> submit with no pause until the queue is empty;
- paced: every annotator pauses 1 s after each step, for --paced-seconds. The annotators start
  at seeded random moments within the first 2 s instead of all at once.

Prints duplicates (an item leased to more people than it needs), lost submissions (acknowledged with 200
but not stored), errors (any other status or a transport error), cycles per second, the p50/p95/p99
latency of each step, and the transfer size of the annotate page (HTML, CSS and JS, uncompressed).

Usage:
    .venv/bin/python bench/annotators.py                      # both databases, both modes
    .venv/bin/python bench/annotators.py --database sqlite --mode flat --items 3000
PostgreSQL runs need a server on 127.0.0.1:5432; set SFTDESK_BENCH_POSTGRES_ADMIN_URL to change it.
"""

import argparse
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-password-123"
POSTGRES_ADMIN_URL = os.environ.get(
    "SFTDESK_BENCH_POSTGRES_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
RATINGS = {"helpfulness": 4, "correctness": 5, "harmlessness": 5}
PACE_S = 1.0

SETUP_SCRIPT = """
import json, sys
from app.migrate import upgrade_to_head
from app.db import unit_of_work
from app.auth import service
upgrade_to_head()
tokens = {}
with unit_of_work() as db:
    for name in json.loads(sys.argv[1]):
        role = "admin" if name == "admin" else "annotator"
        user = service.create_user(db, username=name, password=sys.argv[2], role=role)
        tokens[name] = service.create_api_token(db, user, "bench").secret
print(json.dumps(tokens))
"""


@dataclass
class RunLog:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    offered: list[tuple[int, str]] = field(default_factory=list)
    acknowledged: list[tuple[int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, step: str, seconds: float) -> None:
        with self.lock:
            self.latencies[step].append(seconds)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Server:
    """A uvicorn subprocess with its own data directory and database, removed on close."""

    def __init__(self, database: str, annotators: list[str], workers: int) -> None:
        self.database = database
        self.workers = workers
        self.data_dir = Path(tempfile.mkdtemp(prefix="sftdesk-bench-"))
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("SFTDESK_")}
        self.env.update(SFTDESK_DATA_DIR=str(self.data_dir), SFTDESK_ENVIRONMENT="test")
        self.pg_name = None
        if database == "postgres":
            self.pg_name = f"sftdesk_bench_{uuid.uuid4().hex[:8]}"
            self._admin_sql(f'CREATE DATABASE "{self.pg_name}"')
            self._checkpoint()
            self.env["SFTDESK_DATABASE_URL"] = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{self.pg_name}"

        setup = subprocess.run(
            [sys.executable, "-c", SETUP_SCRIPT, json.dumps(["admin", *annotators]), PASSWORD],
            cwd=ROOT, env=self.env, capture_output=True, text=True, check=True,
        )
        self.tokens = json.loads(setup.stdout.strip().splitlines()[-1])

        port = _free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = (self.data_dir / "server.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited; see {self.data_dir / 'server.log'}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not respond to /healthz within 30 s")
            time.sleep(0.1)

    def _checkpoint(self) -> None:
        """Write back PostgreSQL's dirty pages, so that a run does not pay for the previous run's writes.

        After a flat run the server still flushes its pages to disk for a while, and a paced run
        started then saw fdatasync calls of 30 to 50 ms in its commits.
        """
        from sqlalchemy.exc import ProgrammingError

        try:
            self._admin_sql("CHECKPOINT")
        except ProgrammingError as error:
            print(f"CHECKPOINT failed, so this run may wait for the previous one's writes: {error}", file=sys.stderr)

    def _admin_sql(self, statement: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(statement))
        engine.dispose()

    def client(self, username: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.tokens[username]}"}, timeout=120,
        )

    def stored_annotations(self, slug: str) -> list[tuple[int, str]]:
        """(item id, username) of every submitted annotation, read straight from the database."""
        from sqlalchemy import create_engine, text

        url = self.env.get("SFTDESK_DATABASE_URL") or f"sqlite:///{self.data_dir / 'sftdesk.sqlite3'}"
        engine = create_engine(url)
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT a.item_id, u.username FROM annotations a JOIN users u ON u.id = a.user_id "
                "JOIN projects p ON p.id = a.project_id WHERE p.slug = :slug AND a.status <> 'draft'"
            ), {"slug": slug}).all()
        engine.dispose()
        return [(item_id, username) for item_id, username in rows]

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server and its worker processes."""
        import psutil

        root = psutil.Process(self.process.pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            times = process.cpu_times()
            total += times.user + times.system
        return total

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        if self.pg_name:
            self._admin_sql(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        shutil.rmtree(self.data_dir, ignore_errors=True)


def create_project(server: Server, annotators: list[str], items: int, overlap: int) -> str:
    slug = f"bench-{secrets.token_hex(3)}"
    with server.client("admin") as admin:
        admin.post("/api/v1/projects", json={"slug": slug, "name": "Benchmark", "annotations_per_item": overlap})
        rows = [
            {"instruction": f"Benchmark prompt {i}: explain topic {i} briefly.", "input": "",
             "output": f"A short draft answer for topic {i}."}
            for i in range(items)
        ]
        body = b"".join(json.dumps(row).encode() + b"\n" for row in rows)
        imported = admin.post(
            f"/api/v1/projects/{slug}/items", content=body, headers={"Content-Type": "application/jsonl"},
        )
        imported.raise_for_status()
        for name in annotators:
            admin.put(f"/api/v1/projects/{slug}/members/{name}", json={"role": "annotator"}).raise_for_status()
    return slug


def annotate(
    server: Server, slug: str, username: str, log: RunLog, *, pace_s: float, stop_at: float, start_delay_s: float,
) -> None:
    time.sleep(start_delay_s)
    with server.client(username) as client:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                offered = client.post(f"/api/v1/projects/{slug}/queue/next")
            except httpx.HTTPError as error:
                log.errors.append(f"next: {error!r}")
                return
            log.add("next", time.perf_counter() - started)
            if offered.status_code != 200:
                log.errors.append(f"next: HTTP {offered.status_code} {offered.text[:200]}")
                return
            body = offered.json()
            if body["item"] is None:
                if body["reason"] == "in_progress":
                    time.sleep(0.05)
                    continue
                return
            item_id = body["item"]["id"]
            with log.lock:
                log.offered.append((item_id, username))
            time.sleep(pace_s)

            started = time.perf_counter()
            try:
                submitted = client.post(
                    f"/api/v1/projects/{slug}/items/{item_id}/annotation",
                    json={"response": f"Reviewed answer {item_id}.", "ratings": RATINGS, "version": 0,
                          "submit_token": secrets.token_hex(8)},
                )
            except httpx.HTTPError as error:
                log.errors.append(f"submit: {error!r}")
                return
            log.add("submit", time.perf_counter() - started)
            if submitted.status_code != 200:
                log.errors.append(f"submit: HTTP {submitted.status_code} {submitted.text[:200]}")
                return
            with log.lock:
                log.acknowledged.append((item_id, username))
            time.sleep(pace_s)


def run_mode(server: Server, annotators: list[str], mode: str, args) -> dict:
    pace_s = PACE_S if mode == "paced" else 0.0
    items = args.items if mode == "flat" else len(annotators) * (int(args.paced_seconds / (2 * PACE_S)) + 2)
    slug = create_project(server, annotators, items, args.overlap)
    log = RunLog()
    stop_at = time.monotonic() + (args.paced_seconds if mode == "paced" else 3600)

    # Paced annotators start at seeded random moments within one cycle, as people do; started
    # together they would send every request in 32-wide bursts.
    delays = random.Random(7)
    threads = [
        threading.Thread(
            target=annotate, args=(server, slug, name, log),
            kwargs={"pace_s": pace_s, "stop_at": stop_at, "start_delay_s": delays.uniform(0, 2 * pace_s)},
        )
        for name in annotators
    ]
    server_cpu = server.cpu_seconds()
    client_cpu = sum(os.times()[:2])
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    server_cpu = server.cpu_seconds() - server_cpu
    client_cpu = sum(os.times()[:2]) - client_cpu

    stored = server.stored_annotations(slug)
    per_item = Counter(item_id for item_id, _ in stored)
    offered_to = defaultdict(set)
    for item_id, username in log.offered:
        offered_to[item_id].add(username)
    duplicates = sum(1 for users in offered_to.values() if len(users) > args.overlap)
    duplicates += sum(1 for count in per_item.values() if count > args.overlap)
    duplicates += len(stored) - len(set(stored))
    lost = len(set(log.acknowledged) - set(stored))
    cycles = len(log.acknowledged)
    return {
        "database": server.database, "mode": mode, "workers": server.workers, "annotators": len(annotators),
        "items": items,
        "cycles": cycles, "seconds": round(elapsed, 2), "cycles_per_s": round(cycles / elapsed, 1),
        "server_cpu_ms_per_cycle": round(server_cpu * 1000 / max(cycles, 1), 2),
        "client_cpu_ms_per_cycle": round(client_cpu * 1000 / max(cycles, 1), 2),
        "duplicates": duplicates, "lost": lost, "errors": len(log.errors), "error_samples": log.errors[:3],
        "latency_ms": {
            step: {
                name: round(_percentile(values, q) * 1000, 1) for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
            }
            for step, values in sorted(log.latencies.items())
        },
    }


def page_weight(server: Server, annotators: list[str]) -> dict:
    """Log in through the form, open the workspace of a leased item, and add up what it loads."""
    slug = create_project(server, annotators[:1], 2, 1)
    with httpx.Client(base_url=server.base_url, timeout=30) as browser:
        login_page = browser.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', login_page.text).group(1)
        browser.post("/login", data={"username": annotators[0], "password": PASSWORD, "csrf_token": token, "next": "/"})
        start = browser.get(f"/projects/{slug}/annotate")
        token = re.search(r'name="csrf_token" value="([^"]+)"', start.text).group(1)
        page = browser.post(f"/projects/{slug}/annotate/next", data={"csrf_token": token}, follow_redirects=True)
        assert "/annotate/items/" in str(page.url), page.url
        sizes = {"html": len(page.content), "css": 0, "js": 0}
        for kind, pattern in (("css", r'<link rel="stylesheet" href="([^"]+)"'), ("js", r'<script src="([^"]+)"')):
            for url in re.findall(pattern, page.text):
                sizes[kind] += len(browser.get(url).content)
    sizes["total"] = sum(sizes.values())
    return sizes


def default_workers(database: str) -> int:
    """Return the server processes to run: SQLite writes one transaction at a time, PostgreSQL does not."""
    if database == "sqlite":
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--mode", choices=("flat", "paced", "both"), default="both")
    parser.add_argument("--annotators", type=int, default=32, help="concurrent annotators (threads)")
    parser.add_argument("--items", type=int, default=3000, help="items in the flat run")
    parser.add_argument("--overlap", type=int, default=1, help="annotations each item needs")
    parser.add_argument("--paced-seconds", type=float, default=30.0, help="length of the paced run in seconds")
    parser.add_argument(
        "--workers", type=int,
        help="uvicorn worker processes (default: 1 on SQLite; on PostgreSQL one per CPU core, up to 4, "
             "the production shape of docker-compose.yml)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()

    annotators = [f"annotator{i:02d}" for i in range(args.annotators)]
    databases = ("sqlite", "postgres") if args.database == "both" else (args.database,)
    modes = ("flat", "paced") if args.mode == "both" else (args.mode,)
    results = []
    weight = None
    # Each run gets a fresh server and database, so one mode's figures do not depend on what the
    # run before it left behind (on PostgreSQL, dirty pages still being written back after a flat run).
    for database in databases:
        for mode in modes:
            server = Server(database, annotators, args.workers or default_workers(database))
            try:
                if weight is None:
                    weight = page_weight(server, annotators)
                result = run_mode(server, annotators, mode, args)
                results.append(result)
                print(json.dumps(result), flush=True)
            finally:
                server.close()

    print()
    print(
        "| database | mode | workers | cycles | cycles/s | duplicates | lost | errors "
        "| next p50/p95/p99 ms | submit p50/p95/p99 ms |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        steps = {
            step: "/".join(str(r["latency_ms"].get(step, {}).get(q, "-")) for q in ("p50", "p95", "p99"))
            for step in ("next", "submit")
        }
        print(f"| {r['database']} | {r['mode']} | {r['workers']} | {r['cycles']} | {r['cycles_per_s']} | {r['duplicates']} | "
              f"{r['lost']} | {r['errors']} | {steps['next']} | {steps['submit']} |")
    print(f"\nannotate page: {weight['total'] / 1024:.1f} KiB in all (HTML {weight['html'] / 1024:.1f}, "
          f"CSS {weight['css'] / 1024:.1f}, JS {weight['js'] / 1024:.1f}), uncompressed")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "page_bytes": weight}, indent=2))
    failed = any(r["duplicates"] or r["lost"] or r["errors"] for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
