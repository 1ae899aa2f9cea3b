"""``python -m protoguard demo``: each PG1xx misuse against a real SQLite database.

For every misuse it runs the same line twice, once on an unguarded provider and once on
the guarded one, and prints what plain Python says next to what protoguard says.
The providers and the lines below are ordinary user code; that is the point.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, Callable, Optional, TextIO

from .exceptions import ProtocolError

_QUERY = "SELECT count(*) FROM users"


def _require_sqlalchemy() -> Any:
    try:
        import aiosqlite  # noqa: F401
        import sqlalchemy
        from sqlalchemy.ext import asyncio as sa_asyncio
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise SystemExit(
            "protoguard demo needs SQLAlchemy and aiosqlite: "
            "pip install 'protoguard[sqlalchemy]'"
            f" (missing: {exc.name})"
        ) from None
    return sqlalchemy, sa_asyncio


class _Providers:
    """The same four providers, unguarded and guarded, over one database file."""

    def __init__(self, url: str, guard: bool) -> None:
        import protoguard

        sqlalchemy, sa_asyncio = _require_sqlalchemy()
        self.text = sqlalchemy.text
        self.engine = sa_asyncio.create_async_engine(url)
        maker = sa_asyncio.async_sessionmaker(self.engine, expire_on_commit=False)
        wrap: Callable[[Any], Any] = protoguard.provider if guard else (lambda f: f)

        @contextlib.asynccontextmanager
        async def get_request_scoped_db_session() -> AsyncIterator[Any]:
            async with maker() as session:
                yield session

        async def get_db() -> AsyncIterator[Any]:
            async with maker() as session:
                yield session

        async def make_session() -> Any:
            return maker()

        @contextlib.contextmanager
        def sync_session() -> Iterator[Any]:
            yield None

        self.get_request_scoped_db_session = wrap(get_request_scoped_db_session)
        self.get_db = wrap(get_db)
        self.make_session = wrap(make_session)
        self.sync_session = wrap(sync_session)


async def _pg101(p: _Providers) -> None:
    async for db_session in p.get_request_scoped_db_session():
        await db_session.execute(p.text(_QUERY))


async def _pg102(p: _Providers) -> None:
    async with p.get_db() as db:
        await db.execute(p.text(_QUERY))


async def _pg103(p: _Providers) -> None:
    db = p.get_request_scoped_db_session()
    await db.execute(p.text(_QUERY))


async def _pg104(p: _Providers) -> None:
    db = await p.get_request_scoped_db_session()
    await db.execute(p.text(_QUERY))


async def _pg105(p: _Providers) -> None:
    with p.get_request_scoped_db_session() as db:
        await db.execute(p.text(_QUERY))


async def _pg106(p: _Providers) -> None:
    async with p.make_session() as db:
        await db.execute(p.text(_QUERY))


async def _pg107(p: _Providers) -> None:
    cm = p.get_request_scoped_db_session()
    async with cm as db:
        await db.execute(p.text(_QUERY))
    async with cm as db:
        await db.execute(p.text(_QUERY))


async def _correct(p: _Providers) -> int:
    async with p.get_request_scoped_db_session() as db:
        count = (await db.execute(p.text(_QUERY))).scalar_one()
    async for db in p.get_db():
        count += (await db.execute(p.text(_QUERY))).scalar_one()
    db = await p.make_session()
    async with db:
        count += (await db.execute(p.text(_QUERY))).scalar_one()
    return int(count)


CASES: list[tuple[str, str, Callable[[_Providers], Awaitable[None]]]] = [
    ("PG101", "'async for' over an @asynccontextmanager provider", _pg101),
    ("PG102", "'async with' on an async generator provider", _pg102),
    ("PG103", "the provider's result used as the session", _pg103),
    ("PG104", "'await' on a context manager", _pg104),
    ("PG105", "sync 'with' on an async provider", _pg105),
    ("PG106", "'async with' on a coroutine (forgotten await)", _pg106),
    ("PG107", "one context manager entered twice", _pg107),
]


async def _plain_error(case: Callable[[_Providers], Awaitable[None]], p: _Providers) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            await case(p)
        except Exception as exc:  # what plain Python says, whatever it is
            said = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        else:
            said = "(no error at all)"
        gc.collect()
    for warning in caught:
        said += f"\n(and a {warning.category.__name__}: {warning.message})"
    return said


async def _guarded_error(case: Callable[[_Providers], Awaitable[None]], p: _Providers) -> str:
    try:
        await case(p)
    except ProtocolError as exc:
        return f"protoguard.{type(exc).__name__}: {exc}"
    return "(no error: this is a bug in protoguard)"


async def _run(out: TextIO, url: str) -> int:
    plain = _Providers(url, guard=False)
    guarded = _Providers(url, guard=True)
    async with plain.engine.begin() as conn:
        await conn.execute(plain.text("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"))
        await conn.execute(plain.text("INSERT INTO users (name) VALUES ('ada'), ('grace')"))
    failures = 0
    try:
        out.write(
            "protoguard demo: each misuse runs twice against a real SQLite database\n"
            "(SQLAlchemy AsyncSession over aiosqlite), unguarded and then guarded.\n\n"
        )
        for code, title, case in CASES:
            out.write(f"=== {code}: {title}\n")
            out.write("--- plain Python says:\n")
            out.write("    " + (await _plain_error(case, plain)).replace("\n", "\n    ") + "\n")
            out.write("--- with @protoguard.provider:\n")
            message = await _guarded_error(case, guarded)
            failures += code not in message
            out.write("    " + message.replace("\n", "\n    ") + "\n\n")
        count = await _correct(guarded)
        out.write(
            f"=== correct use: 'async with', 'async for' and 'await' on the guarded\n"
            f"    providers ran the query three times and counted {count} rows.\n"
        )
    finally:
        await plain.engine.dispose()
        await guarded.engine.dispose()
    return 1 if failures else 0


def run(out: Optional[TextIO] = None) -> int:
    """Run the tour, writing to ``out`` (stdout by default); 0 if every case behaved."""
    stream = out if out is not None else sys.stdout
    with tempfile.TemporaryDirectory(prefix="protoguard-demo-") as tmp:
        url = "sqlite+aiosqlite:///" + os.path.join(tmp, "demo.db")
        return asyncio.run(_run(stream, url))
