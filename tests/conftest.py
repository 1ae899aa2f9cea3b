"""Shared fixtures: real databases, never mocks.

Every test that needs a database gets a fresh SQLite file with a ``users`` table holding
two rows, reached through a real SQLAlchemy ``AsyncSession`` over aiosqlite or a real sync
``Session`` over sqlite3.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, Callable, TypeVar

import fastapi
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

import protoguard
from protoguard import _importhook

T = TypeVar("T")

# FastAPI 0.123.5 started to look through __wrapped__ when it decides how to drive a
# dependency; before that, Depends() on a context-manager provider (guarded or not)
# injected what the provider returned. Both are tested: nox runs the suite on 0.123.4 too.
FASTAPI_UNWRAPS = tuple(int(part) for part in fastapi.__version__.split(".")[:3]) >= (0, 123, 5)

SCHEMA = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
ROWS = "INSERT INTO users (name) VALUES ('ada'), ('grace')"
COUNT = text("SELECT count(*) FROM users")


def line_of(path: str, marker: str) -> int:
    """The one line of ``path`` that ends with ``marker``, so no test hard-codes a line."""
    with open(path, encoding="utf-8") as source:
        found = [n for n, line in enumerate(source, 1) if line.rstrip().endswith(marker)]
    assert len(found) == 1, (marker, found)
    return found[0]


def traced(func: Any) -> Any:
    """A transparent wrapper, as tracing and metrics libraries write them."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


@pytest.fixture(autouse=True)
def _default_mode() -> Iterator[None]:
    """Every test starts in mode "on", action "raise", sample rate 1, with no findings,
    and leaves the global settings as it found them."""
    settings = protoguard._config.settings
    saved = (settings.mode, protoguard._findings.table.action, settings.sample_rate)
    protoguard.configure(mode="on", action="raise", sample_rate=1)
    protoguard.clear_findings()
    yield
    settings.mode, protoguard._findings.table.action = saved[:2]
    settings.set_sample_rate(saved[2])
    protoguard.clear_findings()
    # An import hook a test left installed would check every later test's imports.
    leaked = list(_importhook._registry.hooks)
    for hook in leaked:
        hook.uninstall()
    assert leaked == [], f"the test left import hooks installed: {leaked}"


@pytest.fixture
def run() -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine to completion on a fresh event loop (no pytest-asyncio needed)."""
    return asyncio.run


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "test.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text(SCHEMA))
        conn.execute(text(ROWS))
    engine.dispose()
    return path


@pytest.fixture
def async_engine(db_path: Path) -> Iterator[AsyncEngine]:
    """A real async engine over aiosqlite. Disposed in the test's own loop by the test."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{db_path}")
    yield engine
    # Pools hold aiosqlite threads; dispose them on a loop of our own if the test did not.
    asyncio.run(engine.dispose())


@pytest.fixture
def async_maker(async_engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(async_engine, expire_on_commit=False)


@pytest.fixture
def sync_maker(db_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(f"sqlite:///{db_path}")
    yield sessionmaker(engine)
    engine.dispose()
