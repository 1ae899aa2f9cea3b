"""A first end-to-end check: a guarded provider over a real AsyncSession."""

from __future__ import annotations

import contextlib

import pytest

import protoguard

from .conftest import COUNT


def test_guarded_asynccontextmanager_runs_a_query(run, async_maker) -> None:
    """`async with` on a guarded @asynccontextmanager gives the real session."""

    @protoguard.provider
    @contextlib.asynccontextmanager
    async def get_db():
        async with async_maker() as session:
            yield session

    async def main() -> int:
        async with get_db() as session:
            return (await session.execute(COUNT)).scalar_one()

    assert run(main()) == 2


def test_async_for_on_asynccontextmanager_is_pg101(run, async_maker) -> None:
    """`async for` over a guarded @asynccontextmanager raises PG101 at the user's line."""

    @protoguard.provider
    @contextlib.asynccontextmanager
    async def get_db():
        async with async_maker() as session:
            yield session

    async def main() -> None:
        async for session in get_db():
            await session.execute(COUNT)

    with pytest.raises(protoguard.ProtocolError) as info:
        run(main())
    assert info.value.code == "PG101"
    assert info.value.fix == "async with get_db() as session:"
