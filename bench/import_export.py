"""Measure import and export speed through the REST API, and the server's peak memory.

Usage:
    .venv/bin/python bench/import_export.py [--database sqlite|postgres] [--rows 1000000] [--skip-alpaca]

Starts a real server (uvicorn, one process) on 127.0.0.1 with a fresh data directory, then:
1. imports the 52,002 Stanford Alpaca rows from ../shared/data/en/alpaca_52k (18 JSON files),
2. imports a generated JSONL file of --rows rows (written to a temporary folder first),
3. freezes one snapshot of everything in the messages format, and one in all formats,
and prints rows per second for each step and the server's peak resident memory during each step.
"""

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


class PeakMemory:
    """Polls the resident memory of a process and its children every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.process.memory_info().rss + sum(c.memory_info().rss for c in self.process.children(recursive=True))
            except psutil.Error:
                break
            self.peak = max(self.peak, rss)
            time.sleep(0.05)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_generated_rows(path: Path, rows: int) -> None:
    with path.open("wb") as out:
        for n in range(rows):
            out.write(orjson.dumps({
                "instruction": f"Generated instruction {n}: explain item {n % 997} in one sentence.",
                "input": "" if n % 3 else f"Context for {n}: 中文上下文 {n}",
                "output": f"Answer {n}. This is a generated response with a little text, ünïcödé and 表情 🙂.",
            }) + b"\n")


def prepare_database(env: dict[str, str]) -> str:
    """Migrate the database and create an admin with an API token; return the token."""
    code = (
        "from app.migrate import upgrade_to_head; upgrade_to_head()\n"
        "from app.db import unit_of_work\n"
        "from app.auth.service import create_user, create_api_token\n"
        "from app.projects.service import create_project\n"
        "with unit_of_work() as db:\n"
        "    user = create_user(db, username='bench', password='bench-password', role='admin')\n"
        "    create_project(db, user, slug='bench', name='Benchmark')\n"
        "    print(create_api_token(db, user, 'bench').secret)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    return result.stdout.strip().splitlines()[-1]


def stream_file(path: Path, chunk: int = 1 << 20):
    with path.open("rb") as handle:
        while data := handle.read(chunk):
            yield data


def timed_import(client: httpx.Client, paths: list[Path], server: PeakMemory | None) -> tuple[int, float]:
    created = 0
    started = time.perf_counter()
    for path in paths:
        content_type = "application/jsonl" if path.suffix == ".jsonl" else "application/json"
        response = client.post(
            "/api/v1/projects/bench/items", content=stream_file(path), headers={"Content-Type": content_type},
            params={"filename": path.name},
        )
        response.raise_for_status()
        body = response.json()
        if body["rejected"]:
            print(f"  {path.name}: {body['rejected']} rejected, first: {body['errors'][:1]}")
        created += body["created"] + body["duplicates"]
    return created, time.perf_counter() - started


def timed_export(client: httpx.Client, formats: list[str]) -> tuple[int, float, dict]:
    started = time.perf_counter()
    response = client.post(
        "/api/v1/projects/bench/snapshots", json={"include_unreviewed": True, "formats": formats}, timeout=3600,
    )
    response.raise_for_status()
    elapsed = time.perf_counter() - started
    snapshot = response.json()
    return snapshot["row_counts"]["items"], elapsed, snapshot


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the generated file")
    parser.add_argument("--skip-alpaca", action="store_true", help="do not import the 52,002 Alpaca rows")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="sftdesk-bench-"))
    env = {**os.environ, "SFTDESK_DATA_DIR": str(workdir / "data"), "SFTDESK_ENVIRONMENT": "test",
           "SFTDESK_SECRET_KEY": secrets.token_urlsafe(32)}
    database_name = None
    if args.database == "postgres":
        from sqlalchemy import create_engine, text

        database_name = f"sftdesk_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{database_name}"'))
        env["SFTDESK_DATABASE_URL"] = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{database_name}"

    token = prepare_database(env)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        env=env, cwd=ROOT,
    )
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=3600)
        for _ in range(100):
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        print(f"database: {args.database}; cpu cores: {os.cpu_count()}; "
              f"memory: {psutil.virtual_memory().total / 2**30:.0f} GiB")

        if not args.skip_alpaca:
            alpaca = sorted((SHARED_DATA / "en" / "alpaca_52k").glob("*.json"))
            if not alpaca:
                print(f"skipping Alpaca: {SHARED_DATA / 'en' / 'alpaca_52k'} not found")
            else:
                with PeakMemory(server.pid) as memory:
                    rows, seconds = timed_import(client, alpaca, memory)
                print(f"import alpaca_52k: {rows} rows in {seconds:.1f} s = {rows / seconds:,.0f} rows/s; "
                      f"server peak RSS {memory.peak / 2**20:.0f} MiB")

        generated = workdir / "generated.jsonl"
        write_generated_rows(generated, args.rows)
        with PeakMemory(server.pid) as memory:
            rows, seconds = timed_import(client, [generated], memory)
        print(f"import generated: {rows} rows ({generated.stat().st_size / 2**20:.0f} MiB) in {seconds:.1f} s = "
              f"{rows / seconds:,.0f} rows/s; server peak RSS {memory.peak / 2**20:.0f} MiB")

        for formats in (["messages"], ["messages", "prompt_completion", "alpaca", "sharegpt", "preference"]):
            with PeakMemory(server.pid) as memory:
                rows, seconds, _ = timed_export(client, formats)
            print(f"export {'+'.join(formats)}: {rows} rows in {seconds:.1f} s = {rows / seconds:,.0f} rows/s; "
                  f"server peak RSS {memory.peak / 2**20:.0f} MiB")
    finally:
        server.terminate()
        server.wait(timeout=30)
        if database_name:
            from sqlalchemy import create_engine, text

            admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)'))
        subprocess.run(["rm", "-rf", str(workdir)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
