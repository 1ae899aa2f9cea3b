"""A FastAPI request doing one SELECT through an AsyncSession over aiosqlite:
unguarded vs. mode "on" vs. mode "strict".

Run:  python benchmarks/fastapi_request.py [--rounds 200] [--requests 20] [--clock cpu|wall]
                                          [--sample-rate 1]

The apps are the same code behind the same async generator provider (FastAPI's Depends
style): left unguarded, guarded with mode "on", and guarded with mode "strict". A fourth,
"control", is a second unguarded app built the same way: its ratio to the first is what
the method reads when nothing differs (it should be 1.00), so a mode's distance from it
is what protoguard costs, and a control away from 1.00 says the run was disturbed.
Requests go straight to the ASGI app (no HTTP server, no test client), so what is timed
is FastAPI + SQLAlchemy + aiosqlite + protoguard. Rounds interleave the apps in rotating
order; the report is the median of the per-round ratios to the unguarded run, with the
middle half (p25-p75) of those ratios, and the median time a mode adds to one request
(its block's time less the unguarded block's, per request): the figure that carries over
to a request of another size, since protoguard's cost does not grow with the request's.

The default clock is the process's CPU time (all its threads, aiosqlite's worker thread
included): protoguard adds computation, never waiting, and CPU time leaves out the time
other processes on a busy machine hold the CPU, which wall time would charge to whichever
block they land in. ``--clock wall`` times with ``time.perf_counter`` instead.

Strict mode's SQLAlchemy listener (``protoguard.sqlalchemy``), which SQLAlchemy calls at
every transaction begin of every session once it is installed, is installed for the
strict app's blocks only, as it is in a service that runs strict mode and is not in one
that does not.

``--sample-rate`` sets ``protoguard.configure(sample_rate=...)``, the share of provider
uses strict mode watches (the others run as mode "on"); by default every use is watched.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from typing import Any

from fastapi import Depends, FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

import protoguard
import protoguard.sqlalchemy

QUERY = text("SELECT count(*) FROM users")
PATH = "/users/count"


def build_apps(url: str) -> tuple[dict[str, FastAPI], Any]:
    """One app per mode, each with the same single route, so routing costs the same."""
    engine = create_async_engine(url, pool_size=5)
    maker = async_sessionmaker(engine, expire_on_commit=False)

    async def get_db():  # the FastAPI-style provider, as a user writes it
        async with maker() as session:
            yield session

    async def get_db_again():  # the same provider once more, for the control app
        async with maker() as session:
            yield session

    providers = {
        "unguarded": get_db,
        "control": get_db_again,
        "on": protoguard.provider(mode="on")(get_db),
        "strict": protoguard.provider(mode="strict")(get_db),
    }
    apps = {}
    for name, provider in providers.items():

        async def endpoint(db: AsyncSession = Depends(provider)) -> dict[str, int]:  # noqa: B008
            return {"count": (await db.execute(QUERY)).scalar_one()}

        apps[name] = app = FastAPI()
        app.add_api_route(PATH, endpoint, methods=["GET"])
    return apps, engine


async def request(app: FastAPI, path: str = PATH) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def set_listener_for(mode: str) -> None:
    """Install protoguard's SQLAlchemy listener for the strict app's requests only.

    Strict mode installs it the first time it watches a session, and then SQLAlchemy
    calls it at every transaction begin of every session in the process: left in place,
    the unguarded apps timed beside the strict one in this process would pay for it too
    and make strict mode look cheaper than it is. A service that does not use strict
    mode never has it.
    """
    if mode == "strict":
        protoguard.sqlalchemy.install()
    else:
        protoguard.sqlalchemy.uninstall()


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


async def timed(app: FastAPI, n: int, clock: Any = time.perf_counter) -> float:
    start = clock()
    for _ in range(n):
        if await request(app) != 200:
            raise SystemExit(f"{PATH} did not answer 200")
    return clock() - start


async def main(rounds: int, requests: int, clock_name: str, sample_rate: float = 1.0) -> None:
    clock = CLOCKS[clock_name]
    protoguard.configure(sample_rate=sample_rate)
    with tempfile.TemporaryDirectory() as tmp:
        url = "sqlite+aiosqlite:///" + os.path.join(tmp, "bench.db")
        apps, engine = build_apps(url)
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"))
            await conn.execute(text("INSERT INTO users (name) VALUES ('ada'), ('grace')"))
        names = list(apps)
        for name in names:  # warm up every path once
            set_listener_for(name)
            await timed(apps[name], requests // 4 or 1)
        ratios: dict[str, list[float]] = {name: [] for name in names[1:]}
        added: dict[str, list[float]] = {name: [] for name in names[1:]}
        per_request: list[float] = []
        for number in range(rounds):
            turn = number % len(names)
            order = names[turn:] + names[:turn]
            seconds = {}
            for name in order:
                set_listener_for(name)
                seconds[name] = await timed(apps[name], requests, clock)
            per_request.append(seconds["unguarded"] / requests)
            for name in ratios:
                ratios[name].append(seconds[name] / seconds["unguarded"])
                added[name].append((seconds[name] - seconds["unguarded"]) / requests)
        await engine.dispose()
    print(
        f"{rounds} rounds x {requests} requests each, interleaved, {clock_name} clock, "
        f"strict mode's sample rate {sample_rate:g}"
    )
    print(f"unguarded request: median {statistics.median(per_request) * 1e6:.0f} us")
    print(f"{'mode':<10}{'median ratio':>14}{'p25-p75':>16}{'added per request':>20}")
    for name, values in ratios.items():
        low, _, high = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
        extra = statistics.median(added[name]) * 1e6
        print(
            f"{name:<10}{statistics.median(values):>14.3f}{low:>10.3f}-{high:.3f}{extra:>+17.1f} us"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--requests", type=int, default=20, help="requests per timed block")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    parser.add_argument("--sample-rate", type=float, default=1.0, help="0 to 1 (default 1)")
    arguments = parser.parse_args()
    if arguments.rounds < 1 or arguments.requests < 1:
        parser.error("--rounds and --requests must be at least 1")
    if not 0 <= arguments.sample_rate <= 1:
        parser.error("--sample-rate must be from 0 to 1")
    asyncio.run(main(arguments.rounds, arguments.requests, arguments.clock, arguments.sample_rate))
