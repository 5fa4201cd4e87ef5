"""Start the service (or the floor relay) as a process on free ports of 127.0.0.1.

The one launcher of the tests and the load tools (also of redis-server and of nginx with
the shipped site config, below). The server is started with
``--port 0 --metrics-port 0 --ready-file PATH`` and writes the ports it bound to PATH
as JSON once it listens (atomically: the file is complete or absent), so nothing
parses the human ``listening on`` log line. Its stderr (the log) goes to a file.

Standard library only: the benchmark, soak and fuzz scripts import it as a sibling
module (``from launch import launch``), the tests as ``loadtests.launch``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ("-m", "transport.server")
FLOOR = (str(Path(__file__).resolve().parent / "floor_relay.py"),)


class LaunchError(RuntimeError):
    pass


class Launched:
    """A started server: its process, the ports it reported, and its log."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        port: int,
        metrics_port: int,
        log_path: Path,
        ready_file: Path | None = None,
    ) -> None:
        self.proc = proc
        self.port = port
        self.metrics_port = metrics_port
        self.log_path = log_path
        self.ready_file = ready_file
        self._final_log: str | None = None  # kept once the log file's directory is gone

    def log_text(self) -> str:
        if self._final_log is not None:
            return self._final_log
        return self.log_path.read_text(errors="replace")

    @property
    def log(self) -> list[str]:
        """The log so far, one line per item (each with its newline)."""
        return self.log_text().splitlines(keepends=True)

    def cpu_seconds(self) -> float:
        """user + sys CPU of the process so far, from /proc/PID/stat (fields 14 and 15)."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kb(self) -> int:
        return int(Path(f"/proc/{self.proc.pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise LaunchError(f"server exited with {self.proc.returncode}:\n{self.log_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes], grace: float) -> int | None:
    """SIGTERM, then SIGKILL after ``grace`` seconds (at once if 0); returns the exit code (None if killed)."""
    if proc.poll() is None and grace <= 0:
        proc.kill()
        proc.wait(10)
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            return None
    return proc.returncode


def wait_ready(proc: subprocess.Popen[bytes], ready_file: Path, log_path: Path, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while not ready_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            state = f"exited with {proc.returncode}" if proc.poll() is not None else f"not ready in {timeout:g}s"
            raise LaunchError(f"server {state}:\n{log_path.read_text(errors='replace')[-3000:]}")
        # Another process's file: there is no event to await, so poll (bounded above).
        time.sleep(0.02)
    info: dict[str, int] = json.loads(ready_file.read_text())
    return info


@contextmanager
def launch(
    *args: str,
    program: Sequence[str] = SERVICE,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    timeout: float = 30.0,
    kill_after: float = 15.0,
    cwd: Path = ROOT,
) -> Iterator[Launched]:
    """Run ``program`` (the service by default) with ``args``; yields once it is listening.

    ``--port 0 --metrics-port 0`` come first, so ``args`` can name a port of their own.
    The process always ends on exit (SIGTERM, then SIGKILL after ``kill_after``
    seconds; 0: SIGKILL at once). Without ``log_path`` the log lives in a temporary directory and is
    kept in memory (``Launched.log``) after exit.
    """
    workdir = Path(tempfile.mkdtemp(prefix="signaling-launch-"))
    ready_file = workdir / "ready.json"
    own_log = log_path is None
    log_file_path = workdir / "server.log" if log_path is None else log_path
    ports = ["--port", "0", "--metrics-port", "0"] if program == SERVICE else ["--port", "0"]
    cmd = [sys.executable, *program, *ports, "--ready-file", str(ready_file)]
    try:
        with log_file_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [*cmd, *args],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                env={**os.environ, **(env or {})},
            )
        try:
            info = wait_ready(proc, ready_file, log_file_path, timeout)
            if info.get("pid") != proc.pid:
                raise LaunchError(f"the ready file names another process: {info}")
            server = Launched(proc, info["port"], info.get("metrics_port", 0), log_file_path, ready_file)
            yield server
        finally:
            stop(proc, kill_after)
        if own_log:
            server._final_log = log_file_path.read_text(errors="replace")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(proc: subprocess.Popen[bytes], port: int, timeout: float, ping: bytes = b"", pong: bytes = b"") -> None:
    """Until ``port`` accepts a connection (and, with ``ping``, answers it with ``pong``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                if not ping:
                    return
                conn.sendall(ping)
                if conn.recv(16).startswith(pong):
                    return
        except OSError:
            pass
        if proc.poll() is not None:
            raise LaunchError(f"{proc.args[0]} exited with {proc.returncode}")
        time.sleep(0.02)  # a process we started: no readiness signal but its answering port
    raise LaunchError(f"{proc.args[0]} did not listen on {port} in {timeout:g}s")


def start_redis(port: int, workdir: Path, timeout: float = 15.0) -> subprocess.Popen[bytes]:
    """A throwaway redis-server on 127.0.0.1:``port`` (no persistence), once it answers PING."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise LaunchError("redis-server is not installed (.ci/run installs it)")
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(workdir), "--protected-mode", "no"]
    proc = subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(proc, port, timeout, ping=b"PING\r\n", pong=b"+PONG")
    except BaseException:
        stop(proc, 0)
        raise
    return proc


@contextmanager
def redis_server(workdir: Path, timeout: float = 15.0) -> Iterator[str]:
    """A redis-server on a free port; yields its URL, stops it on exit."""
    port = free_port()
    proc = start_redis(port, workdir, timeout)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc, 5)


NGINX_SITE = ROOT / "deploy" / "nginx" / "signaling.conf"
NGINX_UPSTREAM = "    server 127.0.0.1:8080 max_fails=0;"
NGINX_ACCESS_LOG = "/var/log/nginx/signaling-access.log"


class Nginx:
    """A started nginx: what tests.support's helpers read (``port``), and its access log."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, access_log: Path) -> None:
        self.proc = proc
        self.port = port
        self.access_log = access_log


def render_nginx(backend_ports: Sequence[int], port: int, workdir: Path, worker_connections: int) -> Path:
    """The shipped site config for these backends and listen port, in a minimal nginx.conf."""
    site = NGINX_SITE.read_text()
    for needed in (NGINX_UPSTREAM, "listen 80;", NGINX_ACCESS_LOG):
        if needed not in site:
            raise LaunchError(f"{NGINX_SITE} no longer contains {needed!r}")
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=0;" for p in backend_ports)
    site = site.replace(NGINX_UPSTREAM, servers).replace("listen 80;", f"listen 127.0.0.1:{port};")
    (workdir / "site.conf").write_text(site.replace(NGINX_ACCESS_LOG, str(workdir / "signaling-access.log")))
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
daemon off;
worker_processes 1;
worker_rlimit_nofile {2 * worker_connections + 100};
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections {worker_connections}; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    include {workdir}/site.conf;
}}
""")
    return conf


@contextmanager
def nginx(
    backend_ports: Sequence[int], workdir: Path, timeout: float = 15.0, worker_connections: int = 1024
) -> Iterator[Nginx]:
    """nginx with deploy/nginx/signaling.conf in front of ``backend_ports``, on a free port.

    The config is rendered into ``workdir`` and checked with ``nginx -t`` first; nginx
    always stops on exit. Its access log is ``workdir/signaling-access.log``.
    """
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise LaunchError("nginx is not installed (.ci/run installs it)")
    port = free_port()
    conf = render_nginx(backend_ports, port, workdir, worker_connections)
    command = [binary, "-p", str(workdir), "-c", str(conf)]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=timeout, check=False)
    if check.returncode != 0:
        raise LaunchError(f"nginx -t failed:\n{check.stderr}")
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(proc, port, timeout)
        yield Nginx(proc, port, workdir / "signaling-access.log")
    finally:
        stop(proc, 10)
