"""A FastAPI request doing one SELECT through an AsyncSession over aiosqlite:
unguarded vs. mode "on" vs. mode "strict".

Run:  python benchmarks/fastapi_request.py [--rounds 30] [--requests 200]

The three endpoints are the same code behind three providers: the same async generator
provider (FastAPI's Depends style) left unguarded, guarded with mode "on", and guarded
with mode "strict". Requests go straight to the ASGI app (no HTTP server, no test
client), so what is timed is FastAPI + SQLAlchemy + aiosqlite + protoguard. Rounds
interleave the three in rotating order; the report is the median of the per-round
ratios to the unguarded run, with the spread (min-max) of those ratios.
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

QUERY = text("SELECT count(*) FROM users")


def build_app(url: str) -> tuple[FastAPI, Any]:
    engine = create_async_engine(url, pool_size=5)
    maker = async_sessionmaker(engine, expire_on_commit=False)

    async def get_db():  # the FastAPI-style provider, as a user writes it
        async with maker() as session:
            yield session

    providers = {
        "unguarded": get_db,
        "on": protoguard.provider(mode="on")(get_db),
        "strict": protoguard.provider(mode="strict")(get_db),
    }
    app = FastAPI()
    for name, provider in providers.items():

        async def endpoint(db: AsyncSession = Depends(provider)) -> dict[str, int]:  # noqa: B008
            return {"count": (await db.execute(QUERY)).scalar_one()}

        app.add_api_route(f"/{name}", endpoint, methods=["GET"])
    return app, engine


async def request(app: FastAPI, path: str) -> int:
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


async def timed(app: FastAPI, path: str, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        if await request(app, path) != 200:
            raise SystemExit(f"{path} did not answer 200")
    return time.perf_counter() - start


async def main(rounds: int, requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = "sqlite+aiosqlite:///" + os.path.join(tmp, "bench.db")
        app, engine = build_app(url)
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"))
            await conn.execute(text("INSERT INTO users (name) VALUES ('ada'), ('grace')"))
        names = ["unguarded", "on", "strict"]
        for name in names:  # warm up every path once
            await timed(app, f"/{name}", requests // 4 or 1)
        ratios: dict[str, list[float]] = {"on": [], "strict": []}
        per_request: list[float] = []
        for number in range(rounds):
            order = names[number % 3 :] + names[: number % 3]
            seconds = {name: await timed(app, f"/{name}", requests) for name in order}
            per_request.append(seconds["unguarded"] / requests)
            for name in ratios:
                ratios[name].append(seconds[name] / seconds["unguarded"])
        await engine.dispose()
    print(f"{rounds} rounds x {requests} requests each, interleaved")
    print(f"unguarded request: median {statistics.median(per_request) * 1e6:.0f} us")
    print(f"{'mode':<10}{'median ratio':>14}{'min':>8}{'max':>8}")
    for name, values in ratios.items():
        print(f"{name:<10}{statistics.median(values):>14.3f}{min(values):>8.3f}{max(values):>8.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=200)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.requests))
