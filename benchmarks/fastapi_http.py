"""The request of fastapi_request.py, served over HTTP by uvicorn: unguarded vs. mode "on"
vs. mode "strict", as a client and the server's CPU see it.

Run:  python benchmarks/fastapi_http.py [--rounds 200] [--requests 20]
Needs uvicorn (``pip install uvicorn httptools``; httptools is used when installed).

The apps are fastapi_request.py's (the same provider unguarded, in mode "on", in mode
"strict", and a second unguarded app as the control), each served by its own uvicorn
server on a loopback port, all in one server process; this process is the client, with
one keep-alive connection per app. Rounds time blocks of ``--requests`` requests per app
in rotating order and report, per mode, the median of the per-round ratios to the
unguarded block and the median time added per request, on two clocks:

* ``client wall``: from the first request sent to the last response read, what a client
  of the service waits (the loopback and the client's own work included);
* ``server CPU``: the server process's CPU time (all its threads, aiosqlite's worker
  included) over the block, read through a bare ASGI endpoint on a port of its own
  before and after the block (the two readings' own requests are in every block alike).

As in fastapi_request.py, strict mode's SQLAlchemy listener is installed for the strict
app's blocks only (the reading before a block sets it).

This is a production-shaped denominator: HTTP parsing, the server, the socket. The
strict figure for protoguard's target is fastapi_request.py's (straight to the ASGI app,
the smallest request): read this one as what the same microseconds are on a served one.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from fastapi_request import PATH, build_apps, set_listener_for  # noqa: E402

CPU_PATH = "/cpu"


async def cpu_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app answering the server process's CPU time, in seconds. Its query
    names the app whose block begins or has ended (see set_listener_for): it is read
    before the clock."""
    if scope["type"] != "http":
        return
    set_listener_for(scope["query_string"].decode())
    body = repr(time.process_time()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def serve(db_path: str) -> None:
    """The server process: every app on its own loopback port; prints the ports as JSON
    on one line, then serves until its standard input closes."""
    import uvicorn
    from sqlalchemy import text

    apps, engine = build_apps("sqlite+aiosqlite:///" + db_path)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"))
        await conn.execute(text("INSERT INTO users (name) VALUES ('ada'), ('grace')"))
    apps_and_cpu: dict[str, Any] = {**apps, "cpu": cpu_app}
    servers, tasks, ports = [], [], {}
    for name, app in apps_and_cpu.items():
        # IPPROTO_TCP named: asyncio turns Nagle off only on sockets whose proto says TCP
        # (with proto 0 every response's second write waits out a delayed ACK, 40 ms).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        ports[name] = sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", loop="asyncio"
        )
        server = uvicorn.Server(config)
        servers.append(server)
        tasks.append(asyncio.ensure_future(server.serve(sockets=[sock])))
    while not all(server.started for server in servers):
        await asyncio.sleep(0.01)
    print(json.dumps(ports), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks)
    await engine.dispose()


def connect(port: int) -> http.client.HTTPConnection:
    """A keep-alive connection that sends each request at once (no Nagle delay)."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def get(conn: http.client.HTTPConnection, path: str) -> bytes:
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise SystemExit(f"{path} answered {response.status}")
    return body


def server_cpu(conn: http.client.HTTPConnection, mode: str) -> float:
    """The server's CPU time, once SQLAlchemy's listener is set for ``mode``'s block."""
    return float(get(conn, f"{CPU_PATH}?{mode}"))


def main(rounds: int, requests: int) -> None:
    if importlib.util.find_spec("uvicorn") is None:
        raise SystemExit("fastapi_http.py needs uvicorn: pip install uvicorn httptools")
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", os.path.join(tmp, "bench.db")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            if not line:
                raise SystemExit("the server process did not start (see its error above)")
            ports = json.loads(line)
            conns = {name: connect(port) for name, port in ports.items()}
            cpu = conns.pop("cpu")
            names = list(conns)
            for name in names:  # warm up every path once
                server_cpu(cpu, name)
                for _ in range(requests):
                    get(conns[name], PATH)
            clocks = ("client wall", "server CPU")
            ratios: dict[tuple[str, str], list[float]] = {
                (clock, n): [] for clock in clocks for n in names[1:]
            }
            added: dict[tuple[str, str], list[float]] = {
                (clock, n): [] for clock in clocks for n in names[1:]
            }
            per_request: dict[str, list[float]] = {clock: [] for clock in clocks}
            for number in range(rounds):
                turn = number % len(names)
                seconds: dict[tuple[str, str], float] = {}
                for name in names[turn:] + names[:turn]:
                    conn = conns[name]
                    cpu_start = server_cpu(cpu, name)
                    start = time.perf_counter()
                    for _ in range(requests):
                        get(conn, PATH)
                    seconds["client wall", name] = time.perf_counter() - start
                    seconds["server CPU", name] = server_cpu(cpu, name) - cpu_start
                for clock in clocks:
                    base = seconds[clock, "unguarded"]
                    per_request[clock].append(base / requests)
                    for name in names[1:]:
                        ratios[clock, name].append(seconds[clock, name] / base)
                        added[clock, name].append((seconds[clock, name] - base) / requests)
        finally:
            if server.stdin is not None:
                server.stdin.close()
            server.wait(timeout=30)
    print(f"{rounds} rounds x {requests} requests each, interleaved, over HTTP (uvicorn)")
    for clock in clocks:
        print(
            f"\n{clock}: unguarded request median "
            f"{statistics.median(per_request[clock]) * 1e6:.0f} us"
        )
        print(f"{'mode':<10}{'median ratio':>14}{'p25-p75':>16}{'added per request':>20}")
        for name in names[1:]:
            values = ratios[clock, name]
            low, _, high = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
            extra = statistics.median(added[clock, name]) * 1e6
            print(
                f"{name:<10}{statistics.median(values):>14.3f}{low:>10.3f}-{high:.3f}"
                f"{extra:>+17.1f} us"
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        asyncio.run(serve(sys.argv[2]))
        raise SystemExit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--requests", type=int, default=20, help="requests per timed block")
    arguments = parser.parse_args()
    if arguments.rounds < 1 or arguments.requests < 1:
        parser.error("--rounds and --requests must be at least 1")
    main(arguments.rounds, arguments.requests)
