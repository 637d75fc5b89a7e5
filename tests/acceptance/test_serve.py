"""The main job, started as the README starts it: `agglo db upgrade`, `agglo demo`, then
`agglo serve --with-worker` (development) and gunicorn with its config (production), each a
real process answering real HTTP on a free port, and stopping cleanly (the worker with it)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent
AGGLO = str(BIN / "agglo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            get(url)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] if Path(f"/proc/{pid}").exists() else "X"
    return state not in ("Z", "X")


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    workdir = tmp_path_factory.mktemp("serve")
    env = {
        **os.environ,
        "AGGLO_DATABASE_URL": f"sqlite:///{workdir / 'agglo.db'}",
        "AGGLO_ARGON2_TIME_COST": "1",
        "AGGLO_ARGON2_MEMORY_KIB": "8192",
        "AGGLO_SECRET_KEY": "test-secret-key-for-the-serve-tests-0123456789",
    }
    for args in (["db", "upgrade"], ["demo"]):
        done = subprocess.run([AGGLO, *args], env=env, cwd=workdir, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
    env["_WORKDIR"] = str(workdir)
    yield env


@pytest.mark.skipif(not Path("/proc").exists(), reason="needs /proc to see the worker process")
def test_agglo_serve_with_worker_answers_and_stops_its_worker(demo_db: dict[str, str]) -> None:
    port = free_port()
    log = Path(demo_db["_WORKDIR"]) / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [AGGLO, "serve", "--port", str(port), "--with-worker"],
            env=demo_db,
            cwd=demo_db["_WORKDIR"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/healthz", server)
        status, body = get(f"{base}/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        status, page = get(f"{base}/login")
        assert status == 200 and 'name="csrf_token"' in page and 'name="password"' in page
        status, spec = get(f"{base}/api/v1/openapi.json")
        assert status == 200 and json.loads(spec)["openapi"].startswith("3.1")
        status, _ = get(f"{base}/api/v1/tasks")
        assert status == 401  # the API answers, and wants credentials
        printed = log.read_text()
        assert f"http://127.0.0.1:{port}/" in printed and "password: agglo-demo" in printed
        worker_pid = int(re.search(r"worker running \(pid (\d+)\)", printed).group(1))  # type: ignore[union-attr]
        assert worker_pid in children(server.pid) and alive(worker_pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)
    deadline = time.monotonic() + 15
    while alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(worker_pid), "stopping `agglo serve` stops its worker"


def test_gunicorn_serves_the_app_with_its_config(demo_db: dict[str, str]) -> None:
    port = free_port()
    env = {**demo_db, "AGGLO_BIND": f"127.0.0.1:{port}", "AGGLO_WEB_WORKERS": "2"}
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "web/gunicorn.conf.py", "web.wsgi:app"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/healthz", server)
        for _ in range(4):  # whichever worker answers, the same app and database
            status, body = get(f"{base}/healthz")
            assert status == 200 and json.loads(body)["status"] == "ok"
        status, page = get(f"{base}/login")
        assert status == 200 and 'name="password"' in page
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
