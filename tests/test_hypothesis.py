"""Random sequences of protocol operations: guarded and unguarded providers agree.

Hypothesis draws a sequence of operations (``async with``, ``async for``, ``with``,
``for``, ``await``, ``.execute`` on the result, re-entering one result, and the kind's
correct protocol), each with a body (read, insert, insert and commit, or raise). The
sequence runs against a provider of one kind, unguarded and then guarded, each on a
fresh SQLite database reached through real SQLAlchemy sessions. The outcomes must be
identical (values, exception types and messages, the rows left in the table), except
where the use is a wrong protocol: there the unguarded provider fails with
Python's TypeError/AttributeError/RuntimeError and the guarded one must raise
``protoguard.ProtocolError`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import types
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

import protoguard

from .conftest import COUNT, ROWS, SCHEMA

INSERT = text("INSERT INTO users (name) VALUES ('eve')")

ASYNC_WITH, ASYNC_FOR, WITH, FOR, AWAIT = "async with", "async for", "with", "for", "await"
ATTRIBUTE, REENTER, CORRECT = "attribute", "re-enter", "correct"
OPERATIONS = (ASYNC_WITH, ASYNC_FOR, WITH, FOR, AWAIT, ATTRIBUTE, REENTER, CORRECT)
BODIES = ("read", "insert", "commit", "raise")

# What Python itself raises for a wrong protocol (3.9/3.10 say AttributeError for a
# missing __aenter__/__enter__, later versions TypeError; 3.9's contextlib says
# RuntimeError for a second entry).
PYTHON_PROTOCOL_ERRORS = (TypeError, AttributeError, RuntimeError)


# --- providers, one per kind, over the makers of one run --------------------------------


def build(kind: str, amaker: Any, smaker: Any) -> Callable[[], Any]:
    """The unguarded provider of ``kind``, handing out sessions of these makers."""
    if kind == "asynccontextmanager":

        @contextlib.asynccontextmanager
        async def acm() -> Any:
            async with amaker() as session:
                yield session

        return acm
    if kind == "contextmanager":

        @contextlib.contextmanager
        def cm() -> Any:
            with smaker() as session:
                yield session

        return cm
    if kind == "async generator":

        async def agen() -> Any:
            async with amaker() as session:
                yield session

        return agen
    if kind == "generator":

        def gen() -> Any:
            with smaker() as session:
                yield session

        return gen
    if kind == "coroutine":

        async def coro() -> Any:
            return amaker()

        return coro
    if kind == "plain function":

        def plain() -> Any:
            return smaker()

        return plain
    if kind == "async_sessionmaker":
        return amaker  # type: ignore[no-any-return]
    assert kind == "sessionmaker"
    return smaker  # type: ignore[no-any-return]


#: Per kind: its correct protocol, and every protocol that is not a misuse of it. A
#: session supports what its class supports: AsyncSession and Session can be iterated
#: (over the objects they hold), so `for` over a session is not a wrong protocol.
PROTOCOLS: dict[str, tuple[str, frozenset[str]]] = {
    "asynccontextmanager": (ASYNC_WITH, frozenset({ASYNC_WITH})),
    "contextmanager": (WITH, frozenset({WITH})),
    "async generator": (ASYNC_FOR, frozenset({ASYNC_FOR, REENTER})),
    "generator": (FOR, frozenset({FOR, REENTER})),
    "coroutine": (AWAIT, frozenset({AWAIT, REENTER})),
    "plain function": (WITH, frozenset({WITH, FOR, ATTRIBUTE, REENTER})),
    "async_sessionmaker": (ASYNC_WITH, frozenset({ASYNC_WITH, FOR, ATTRIBUTE, REENTER})),
    "sessionmaker": (WITH, frozenset({WITH, FOR, ATTRIBUTE, REENTER})),
}
KINDS = tuple(PROTOCOLS)


def is_misuse(kind: str, operation: str) -> bool:
    """Whether ``operation`` is a wrong protocol for a provider of ``kind``.

    Re-entering one result with the correct protocol is a misuse (PG107) only for the
    one-shot context managers; awaiting a coroutine twice is Python's own RuntimeError.
    """
    allowed = PROTOCOLS[kind][1]
    return operation != CORRECT and operation not in allowed


# --- playing a sequence --------------------------------------------------------------


async def execute(session: Any, statement: Any) -> Any:
    result = session.execute(statement)
    if isinstance(session, AsyncSession):
        result = await result
    return result


async def run_body(session: Any, body: str) -> Any:
    """What the user's code does with the session: the row count it sees, or a raise."""
    if body != "read":
        await execute(session, INSERT)
    if body == "commit":
        done = session.commit()
        if isinstance(session, AsyncSession):
            await done
    count = (await execute(session, COUNT)).scalar_one()
    if body == "raise":
        raise ValueError(f"body raised with {count} rows")
    return count


async def use(obj: Any, protocol: str, body: str, opened: list[Any]) -> Any:
    """Use a provider's result with one protocol, as the user's code would."""
    if protocol == ASYNC_WITH:
        async with obj as session:
            return await run_body(session, body)
    if protocol == WITH:
        with obj as session:
            return await run_body(session, body)
    if protocol == ASYNC_FOR:
        return [await run_body(session, body) async for session in obj]
    if protocol == FOR:
        return [await run_body(session, body) for session in obj]
    if protocol == AWAIT:
        session = await obj
        opened.append(session)
        return await run_body(session, body)
    assert protocol == ATTRIBUTE
    return await run_body(obj, body)


async def dispose(obj: Any) -> None:
    """Close what a use left open (a session, a suspended or never-run generator)."""
    if isinstance(obj, types.CoroutineType):
        obj.close()
    elif isinstance(obj, types.AsyncGeneratorType):
        await obj.aclose()
    elif isinstance(obj, types.GeneratorType):
        obj.close()
    elif isinstance(obj, AsyncSession):
        await obj.close()
    elif isinstance(obj, Session):
        obj.close()


async def attempt(provider: Callable[[], Any], kind: str, operation: str, body: str) -> Any:
    """One operation on a fresh result of the provider: ("ok", value) or ("error", exc)."""
    correct = PROTOCOLS[kind][0]
    opened: list[Any] = []
    try:
        obj = provider()
        opened.append(obj)
        if operation == REENTER:
            # The body applies to the second use: the first one must get that far.
            first = await use(obj, correct, "read", opened)
            return ("ok", (first, await use(obj, correct, body, opened)))
        protocol = correct if operation == CORRECT else operation
        return ("ok", await use(obj, protocol, body, opened))
    except Exception as exc:
        return ("error", exc)
    finally:
        for thing in reversed(opened):
            await dispose(thing)


_databases = itertools.count()


async def play(
    kind: str, operations: list[tuple[str, str]], guarded: bool, directory: Path
) -> list[Any]:
    """Run the sequence on a fresh database; the outcomes, then the rows left."""
    path = directory / f"run{next(_databases)}.db"
    sync_engine = create_engine(f"sqlite:///{path}")
    with sync_engine.begin() as conn:
        conn.execute(text(SCHEMA))
        conn.execute(text(ROWS))
    async_engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    try:
        amaker = async_sessionmaker(async_engine, expire_on_commit=False)
        provider = build(kind, amaker, sessionmaker(sync_engine))
        if guarded:
            provider = protoguard.provider(provider)
        outcomes = [await attempt(provider, kind, op, body) for op, body in operations]
        async with amaker() as session:
            outcomes.append(("rows", (await session.execute(COUNT)).scalar_one()))
        return outcomes
    finally:
        await async_engine.dispose()
        sync_engine.dispose()


def comparable(result: Any) -> Any:
    """An outcome with its exception replaced by type name and message."""
    status, value = result
    if status == "error":
        return (status, type(value).__name__, str(value))
    return result


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for the module's databases (module scope: Hypothesis reruns tests)."""
    return tmp_path_factory.mktemp("hypothesis")


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=50, deadline=None)
@given(
    operations=st.lists(
        st.tuples(st.sampled_from(OPERATIONS), st.sampled_from(BODIES)),
        min_size=1,
        max_size=6,
    )
)
def test_guarded_matches_unguarded(
    kind: str, operations: list[tuple[str, str]], directory: Path
) -> None:
    """Every operation has the unguarded outcome, or a ProtocolError for a wrong protocol."""
    plain = asyncio.run(play(kind, operations, False, directory))
    guarded = asyncio.run(play(kind, operations, True, directory))
    for (operation, body), unguarded_result, guarded_result in zip(operations, plain, guarded):
        step = f"{operation!r} with body {body!r} on a {kind} provider"
        if is_misuse(kind, operation):
            status, error = unguarded_result
            assert status == "error", f"{step}: unguarded did not fail ({error!r})"
            assert isinstance(error, PYTHON_PROTOCOL_ERRORS), f"{step}: unguarded {error!r}"
            assert not isinstance(error, protoguard.ProtocolError), step
            status, error = guarded_result
            assert status == "error", f"{step}: guarded did not fail ({error!r})"
            assert isinstance(error, protoguard.ProtocolError), f"{step}: guarded {error!r}"
        else:
            assert comparable(guarded_result) == comparable(unguarded_result), step
    assert guarded[-1] == plain[-1], "rows left in the table"
