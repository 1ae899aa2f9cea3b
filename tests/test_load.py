"""Strict mode under load and over time: no leaked connection, no lost exception, no
growing memory, and no finding for correct code."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import tracemalloc

from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

import protoguard

from .conftest import COUNT

TASKS = 2000
POOL = 5


def test_bounded_load_in_strict_mode(db_path, run) -> None:
    """2,000 tasks over a 5-connection pool, 10% cancelled and 10% raising in the body."""
    protoguard.configure(mode="strict")
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{db_path}", pool_size=POOL, max_overflow=0, pool_timeout=60
    )
    maker = async_sessionmaker(engine)
    reached: dict[str, int] = {"ValueError": 0, "CancelledError": 0, "clean": 0}

    @protoguard.provider
    @contextlib.asynccontextmanager
    async def get_db():
        async with maker() as session:
            try:
                yield session
            except BaseException as exc:
                reached[type(exc).__name__] += 1
                await session.rollback()
                raise
            else:
                reached["clean"] += 1

    async def request(number: int) -> int:
        async with get_db() as session:
            count = (await session.execute(COUNT)).scalar_one()
            if number % 10 == 0:
                raise ValueError(number)
            if number % 10 == 1:
                task = asyncio.current_task()
                assert task is not None
                task.cancel()
                await asyncio.sleep(0)  # the cancellation lands here, inside the body
            return int(count)

    async def main() -> list[object]:
        try:
            return await asyncio.gather(*(request(n) for n in range(TASKS)), return_exceptions=True)
        finally:
            checked_out = engine.pool.checkedout()
            await engine.dispose()
            assert checked_out == 0

    results = run(main())
    assert sum(isinstance(r, ValueError) for r in results) == TASKS // 10
    assert sum(isinstance(r, asyncio.CancelledError) for r in results) == TASKS // 10
    assert results.count(2) == TASKS - TASKS // 5
    assert reached == {
        "ValueError": TASKS // 10,
        "CancelledError": TASKS // 10,
        "clean": TASKS - TASKS // 5,
    }
    assert protoguard.findings() == []


def test_memory_is_flat_over_many_uses(async_maker, run) -> None:
    """100,000 uses in strict mode leave no state behind (all of it is held weakly)."""
    protoguard.configure(mode="strict")

    @protoguard.provider
    @contextlib.asynccontextmanager
    async def get_db():
        async with async_maker() as session:
            yield session

    @protoguard.provider
    async def get_gen():
        async with async_maker() as session:
            yield session

    async def uses(n: int) -> None:
        for _ in range(n // 2):
            async with get_db() as session:
                session.info  # noqa: B018 - a use of the watched session
            async for session in get_gen():
                session.info  # noqa: B018

    async def main() -> tuple[int, int]:
        await uses(10_000)  # warm up caches, interned strings, free lists
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            await uses(100_000)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        return before, after

    before, after = run(main())
    # Flat: what remains after 100,000 uses is independent of their number (a leak of
    # even 8 bytes per use would be 800 kB).
    assert after - before < 64 * 1024, (before, after)
    assert protoguard.findings() == []
