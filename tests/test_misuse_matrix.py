"""The misuse matrix: every provider kind x every protocol, on real SQLAlchemy sessions.

Each provider is built in the ``providers`` fixture over the real ``async_maker`` /
``sync_maker``, and the line protoguard reports as its definition (the first decorator
line, as ``co_firstlineno`` and ``inspect.getsourcelines`` have it; for a session maker,
the line that guards it) carries a ``# def: <kind id>`` marker. Each protocol is one
small driver function below, whose using line carries a ``# <- misuse: <name>`` marker:
a wrong cell expects the error's call site on that line and the fix to be that very
line rewritten; a correct cell runs the same driver, a real ``SELECT count(*)``, and
checks the provider's cleanup. Every call passes a secret-looking value, which no
message may contain.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import gc
import linecache
import subprocess
import sys
import textwrap
import types
import warnings
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Optional

import pytest

import protoguard
from protoguard import ProtocolAttributeError, ProtocolError

from .conftest import COUNT, line_of

SECRET = "hunter2-secret"
DOCS = "https://protoguard.readthedocs.io/en/latest/errors/"
MISUSE = "# <- misuse: "
DEF = "# def: "

# --- the drivers: one per protocol, each the way a user writes it ---------------------


async def use_async_with(get_db: Any) -> int:
    async with get_db(info={"password": SECRET}) as db_session:  # <- misuse: async-with
        count = (await db_session.execute(COUNT)).scalar_one()
    return count


async def use_async_for(get_db: Any) -> int:
    counts = []
    async for db_session in get_db(info={"password": SECRET}):  # <- misuse: async-for
        counts.append((await db_session.execute(COUNT)).scalar_one())
    (count,) = counts
    return count


def use_with(get_db: Any) -> int:
    with get_db(info={"password": SECRET}) as db_session:  # <- misuse: with
        count = db_session.execute(COUNT).scalar_one()
    return count


def use_for(get_db: Any) -> int:
    counts = []
    for db_session in get_db(info={"password": SECRET}):  # <- misuse: for
        counts.append(db_session.execute(COUNT).scalar_one())
    (count,) = counts
    return count


async def use_await(get_db: Any) -> int:
    db_session = await get_db(info={"password": SECRET})  # <- misuse: await
    count = (await db_session.execute(COUNT)).scalar_one()
    await db_session.close()
    return count


async def use_as_session_async(get_db: Any) -> int:
    db_session = get_db(info={"password": SECRET})
    result = await db_session.execute(COUNT)  # <- misuse: attribute-async
    count = result.scalar_one()
    await db_session.close()
    return count


def use_as_session_sync(get_db: Any) -> int:
    db_session = get_db(info={"password": SECRET})
    count = db_session.execute(COUNT).scalar_one()  # <- misuse: attribute-sync
    db_session.close()
    return count


async def reenter_async(get_db: Any) -> int:
    cm = get_db(info={"password": SECRET})
    async with cm as db_session:
        count = (await db_session.execute(COUNT)).scalar_one()
    async with cm as db_session:  # <- misuse: reenter-async
        count = (await db_session.execute(COUNT)).scalar_one()
    return count


def reenter_sync(get_db: Any) -> int:
    cm = get_db(info={"password": SECRET})
    with cm as db_session:
        count = db_session.execute(COUNT).scalar_one()
    with cm as db_session:  # <- misuse: reenter-sync
        count = db_session.execute(COUNT).scalar_one()
    return count


@dataclass(frozen=True)
class Driver:
    func: Callable[[Any], Any]
    marker: str
    is_async: bool


ASYNC_DRIVERS = {
    "async with": Driver(use_async_with, "async-with", True),
    "async for": Driver(use_async_for, "async-for", True),
    "with": Driver(use_with, "with", False),
    "for": Driver(use_for, "for", False),
    "await": Driver(use_await, "await", True),
    "attribute": Driver(use_as_session_async, "attribute-async", True),
    "re-enter": Driver(reenter_async, "reenter-async", True),
}
# A sync provider's session is used without await, and re-entered with `with`.
SYNC_DRIVERS = {
    **ASYNC_DRIVERS,
    "attribute": Driver(use_as_session_sync, "attribute-sync", False),
    "re-enter": Driver(reenter_sync, "reenter-sync", False),
}

# --- what each family of providers is, speaks, and gets told --------------------------

# The provider expression as every driver writes it; a fix keeps it exactly.
EXPR = 'get_db(info={"password": SECRET})'
AS_ASYNC_CM = f"async with {EXPR} as db_session:"
AS_CM = f"with {EXPR} as db_session:"
AS_ASYNC_GEN = f"async for db_session in {EXPR}:"
AS_GEN = f"for db_session in {EXPR}:"
AS_COROUTINE = f"db_session = await {EXPR}"


@dataclass(frozen=True)
class Family:
    kind: str  # protoguard's name for it (ProviderInfo.kind)
    is_async: bool
    definition: str  # what the definition line calls it
    supported: tuple[str, ...]
    correct: tuple[str, ...]
    wrong: dict[str, tuple[str, str]]  # protocol -> (code, fix)
    # Protocols that are neither: the object really speaks them (a Session is iterable
    # over its objects and can be entered again), so protoguard must stay out of the way.
    not_applicable: tuple[str, ...] = ()


FAMILIES = {
    "acm": Family(
        kind="async context manager",
        is_async=True,
        definition="an @asynccontextmanager function",
        supported=("async with",),
        correct=("async with",),
        wrong={
            "async for": ("PG101", AS_ASYNC_CM),
            "with": ("PG105", AS_ASYNC_CM),
            "for": ("PG105", AS_ASYNC_CM),
            "await": ("PG104", AS_ASYNC_CM),
            "attribute": ("PG103", AS_ASYNC_CM),
            "re-enter": ("PG107", AS_ASYNC_CM),
        },
    ),
    "cm": Family(
        kind="context manager",
        is_async=False,
        definition="a @contextmanager function",
        supported=("with",),
        correct=("with",),
        wrong={
            "async with": ("PG105", AS_CM),
            "async for": ("PG105", AS_CM),
            "for": ("PG101", AS_CM),
            "await": ("PG104", AS_CM),
            "attribute": ("PG103", AS_CM),
            "re-enter": ("PG107", AS_CM),
        },
    ),
    "agen": Family(
        kind="async generator",
        is_async=True,
        definition="an async generator function",
        supported=("async for", "Depends"),
        correct=("async for",),
        wrong={
            "async with": ("PG102", AS_ASYNC_GEN),
            "with": ("PG105", AS_ASYNC_GEN),
            "for": ("PG105", AS_ASYNC_GEN),
            "await": ("PG104", AS_ASYNC_GEN),
            "attribute": ("PG103", AS_ASYNC_GEN),
        },
        # Never entered at all, so never entered twice.
        not_applicable=("re-enter",),
    ),
    "gen": Family(
        kind="generator",
        is_async=False,
        definition="a generator function",
        supported=("for", "Depends"),
        correct=("for",),
        wrong={
            "with": ("PG102", AS_GEN),
            "async with": ("PG105", AS_GEN),
            "async for": ("PG105", AS_GEN),
            "await": ("PG104", AS_GEN),
            "attribute": ("PG103", AS_GEN),
        },
        # Never entered at all, so never entered twice.
        not_applicable=("re-enter",),
    ),
    "coroutine": Family(
        kind="coroutine function",
        is_async=True,
        definition="a coroutine function",
        supported=("await",),
        correct=("await",),
        wrong={
            # A block or a loop stays a block: the session the coroutine returns is
            # entered, so it is closed at the block's end.
            "async with": ("PG106", f"async with await {EXPR} as db_session:"),
            "async for": ("PG106", f"async with await {EXPR} as db_session:"),
            "with": ("PG105", f"async with await {EXPR} as db_session:"),
            "for": ("PG105", f"async with await {EXPR} as db_session:"),
            # The session's attribute: the coroutine awaited and its session entered
            # (as for a block), so the session is closed, not left open.
            "attribute": ("PG103", f"async with await {EXPR} as db_session:"),
        },
        # Never entered at all, so never entered twice.
        not_applicable=("re-enter",),
    ),
    "async_sessionmaker": Family(
        kind="async_sessionmaker",
        is_async=True,
        definition="an async_sessionmaker",
        supported=("async with", "call"),
        correct=("async with", "attribute"),
        wrong={
            "async for": ("PG101", AS_ASYNC_CM),
            "with": ("PG105", AS_ASYNC_CM),
            "await": ("PG104", AS_ASYNC_CM),
        },
        not_applicable=("for", "re-enter"),
    ),
    "sessionmaker": Family(
        kind="sessionmaker",
        is_async=False,
        definition="a sessionmaker",
        supported=("with", "call"),
        correct=("with", "attribute"),
        wrong={
            "async with": ("PG105", AS_CM),
            "async for": ("PG105", AS_CM),
            "await": ("PG104", AS_CM),
        },
        not_applicable=("for", "re-enter"),
    ),
    # A plain function returning a Session hands out exactly what a sessionmaker does,
    # so it speaks the same two protocols: `with` and the session used directly.
    "function": Family(
        kind="function",
        is_async=False,
        definition="a function",
        supported=("with", "call"),
        correct=("with", "attribute"),
        wrong={
            "async with": ("PG105", AS_CM),
            "async for": ("PG105", AS_CM),
            "await": ("PG104", AS_CM),
        },
        not_applicable=("for", "re-enter"),
    ),
}

ALL_PROTOCOLS = ("async with", "async for", "with", "for", "await", "attribute", "re-enter")

# Kind id -> (family, the provider's qualified name). Every kind id has a `# def:` line
# in the providers fixture, and the fixture's log gets the kind id when it cleans up.
LOCALS = "providers.<locals>."
KINDS: dict[str, tuple[str, str]] = {
    "acm": ("acm", LOCALS + "get_acm"),
    "cm": ("cm", LOCALS + "get_cm"),
    "agen": ("agen", LOCALS + "get_agen"),
    "gen": ("gen", LOCALS + "get_gen"),
    "coroutine": ("coroutine", LOCALS + "make_session"),
    "function": ("function", LOCALS + "make_sync_session"),
    "async_sessionmaker": ("async_sessionmaker", "AsyncSessionLocal"),
    "sessionmaker": ("sessionmaker", "SessionLocal"),
    "acm-method": ("acm", LOCALS + "Repo.acm_method"),
    "acm-bound": ("acm", LOCALS + "Repo.raw_acm"),
    "acm-classmethod": ("acm", LOCALS + "Repo.acm_classmethod"),
    "acm-staticmethod": ("acm", LOCALS + "Repo.acm_staticmethod"),
    "acm-partial": ("acm", LOCALS + "raw_acm"),
    "agen-method": ("agen", LOCALS + "Repo.agen_method"),
    "agen-bound": ("agen", LOCALS + "Repo.raw_agen"),
    "agen-classmethod": ("agen", LOCALS + "Repo.agen_classmethod"),
    "agen-staticmethod": ("agen", LOCALS + "Repo.agen_staticmethod"),
    "agen-partial": ("agen", LOCALS + "raw_agen"),
}
# Kinds whose own code runs a cleanup (after the yield) that the log records.
CLEANS_UP = {kind for kind, (family, _) in KINDS.items() if family in ("acm", "cm", "agen", "gen")}


def _family(kind: str) -> Family:
    return FAMILIES[KINDS[kind][0]]


def _driver(kind: str, protocol: str) -> Driver:
    return (ASYNC_DRIVERS if _family(kind).is_async else SYNC_DRIVERS)[protocol]


def _source_line(lineno: int) -> str:
    with open(__file__, encoding="utf-8") as source:
        return source.read().splitlines()[lineno - 1].strip()


def _short(name: str) -> str:
    return name.rpartition("<locals>.")[2]


WRONG = [
    pytest.param(kind, protocol, code, fix, id=f"{kind}-{protocol.replace(' ', '_')}")
    for kind, (family, _) in KINDS.items()
    for protocol, (code, fix) in FAMILIES[family].wrong.items()
]
CORRECT = [
    pytest.param(kind, protocol, id=f"{kind}-{protocol.replace(' ', '_')}")
    for kind, (family, _) in KINDS.items()
    for protocol in FAMILIES[family].correct
]

# --- the providers ---------------------------------------------------------------------


@dataclass
class Providers:
    by_kind: dict[str, Any]
    log: list[str]
    engines: tuple[Any, Any]

    def connections_out(self) -> int:
        total = 0
        for engine in self.engines:
            try:
                total += engine.pool.checkedout()
            except RuntimeError:
                # Python 3.9: an async pool that was never used has no queue yet, and
                # cannot make one outside an event loop. Never used: nothing out.
                continue
        return total


@pytest.fixture
def providers(async_maker, sync_maker) -> Iterator[Providers]:
    """One guarded provider of every kind, over the real makers; each logs its cleanup."""
    log: list[str] = []

    @protoguard.provider  # def: acm
    @asynccontextmanager
    async def get_acm(info: dict[str, str]):
        async with async_maker(info=info) as session:
            try:
                yield session
            finally:
                log.append("acm")

    @protoguard.provider  # def: cm
    @contextmanager
    def get_cm(info: dict[str, str]):
        with sync_maker(info=info) as session:
            try:
                yield session
            finally:
                log.append("cm")

    @protoguard.provider  # def: agen
    async def get_agen(info: dict[str, str]):
        async with async_maker(info=info) as session:
            try:
                yield session
            finally:
                log.append("agen")

    @protoguard.provider  # def: gen
    def get_gen(info: dict[str, str]):
        with sync_maker(info=info) as session:
            try:
                yield session
            finally:
                log.append("gen")

    @protoguard.provider  # def: coroutine
    async def make_session(info: dict[str, str]):
        return async_maker(info=info)

    @protoguard.provider  # def: function
    def make_sync_session(info: dict[str, str]):
        return sync_maker(info=info)

    AsyncSessionLocal = protoguard.provider(async_maker)  # def: async_sessionmaker
    SessionLocal = protoguard.provider(sync_maker)  # def: sessionmaker

    @asynccontextmanager  # def: acm-partial
    async def raw_acm(tag: str, info: dict[str, str]):
        async with async_maker(info=info) as session:
            try:
                yield session
            finally:
                log.append(tag)

    async def raw_agen(tag: str, info: dict[str, str]):  # def: agen-partial
        async with async_maker(info=info) as session:
            try:
                yield session
            finally:
                log.append(tag)

    class Repo:
        @protoguard.provider  # def: acm-method
        @asynccontextmanager
        async def acm_method(self, info: dict[str, str]):
            async with async_maker(info=info) as session:
                try:
                    yield session
                finally:
                    log.append("acm-method")

        @asynccontextmanager  # def: acm-bound
        async def raw_acm(self, info: dict[str, str]):
            async with async_maker(info=info) as session:
                try:
                    yield session
                finally:
                    log.append("acm-bound")

        @protoguard.provider  # def: acm-classmethod
        @classmethod
        @asynccontextmanager
        async def acm_classmethod(cls, info: dict[str, str]):
            async with async_maker(info=info) as session:
                try:
                    yield session
                finally:
                    log.append("acm-classmethod")

        @protoguard.provider  # def: acm-staticmethod
        @staticmethod
        @asynccontextmanager
        async def acm_staticmethod(info: dict[str, str]):
            async with async_maker(info=info) as session:
                try:
                    yield session
                finally:
                    log.append("acm-staticmethod")

        @protoguard.provider  # def: agen-method
        async def agen_method(self, info: dict[str, str]):
            async with async_maker(info=info) as session:
                try:
                    yield session
                finally:
                    log.append("agen-method")

        async def raw_agen(self, info: dict[str, str]):  # def: agen-bound
            async with async_maker(info=info) as session:
                try:
                    yield session
                finally:
                    log.append("agen-bound")

        @protoguard.provider  # def: agen-classmethod
        @classmethod
        async def agen_classmethod(cls, info: dict[str, str]):
            async with async_maker(info=info) as session:
                try:
                    yield session
                finally:
                    log.append("agen-classmethod")

        @protoguard.provider  # def: agen-staticmethod
        @staticmethod
        async def agen_staticmethod(info: dict[str, str]):
            async with async_maker(info=info) as session:
                try:
                    yield session
                finally:
                    log.append("agen-staticmethod")

    repo = Repo()
    yield Providers(
        by_kind={
            "acm": get_acm,
            "cm": get_cm,
            "agen": get_agen,
            "gen": get_gen,
            "coroutine": make_session,
            "function": make_sync_session,
            "async_sessionmaker": AsyncSessionLocal,
            "sessionmaker": SessionLocal,
            "acm-method": repo.acm_method,
            "acm-bound": protoguard.provider(repo.raw_acm),
            "acm-classmethod": Repo.acm_classmethod,
            "acm-staticmethod": Repo.acm_staticmethod,
            "acm-partial": protoguard.provider(functools.partial(raw_acm, "acm-partial")),
            "agen-method": repo.agen_method,
            "agen-bound": protoguard.provider(repo.raw_agen),
            "agen-classmethod": Repo.agen_classmethod,
            "agen-staticmethod": Repo.agen_staticmethod,
            "agen-partial": protoguard.provider(functools.partial(raw_agen, "agen-partial")),
        },
        log=log,
        engines=(async_maker.kw["bind"], sync_maker.kw["bind"]),
    )
    # Whatever a test left for the garbage collector (a never-awaited coroutine, say)
    # is reported at this test's teardown, not in some later test.
    gc.collect()


def _use(run: Any, providers: Providers, kind: str, protocol: str) -> Any:
    return _use_with(run, _driver(kind, protocol), providers.by_kind[kind])


def _use_with(run: Any, driver: Driver, provider: Any) -> Any:
    if driver.is_async:
        return run(driver.func(provider))
    return driver.func(provider)


def _misuse(run: Any, providers: Providers, kind: str, protocol: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        _use(run, providers, kind, protocol)
    _close_unawaited(info.value)
    return info.value


def _plain_error(run: Any, providers: Providers, kind: str, protocol: str) -> BaseException:
    """What the same use of the provider raises without protoguard."""
    if kind.endswith("-partial"):
        # A guarded partial's __wrapped__ is the generator's partial, which FastAPI's
        # Depends() drives (see _decorator), not the user's partial of the decorated one.
        pytest.skip("the unguarded partial is not at hand")
    driver = _driver(kind, protocol)
    unguarded = providers.by_kind[kind].__wrapped__
    made: list[Any] = []

    def provider(*args: Any, **kwargs: Any) -> Any:
        made.append(unguarded(*args, **kwargs))
        return made[-1]

    try:
        with pytest.raises(Exception) as info:  # noqa: PT011 (any: the test compares types)
            _use_with(run, driver, provider)
    finally:
        for result in made:  # a coroutine the misuse never awaited
            if isinstance(result, types.CoroutineType):
                result.close()
    return info.value


def _close_unawaited(error: ProtocolError) -> None:
    """After PG103 on a coroutine (`make_session().execute`) the coroutine is still the
    user's: protoguard does not close it, because hasattr() takes the same path and the
    caller may still await it. `.obj` is that coroutine; a program that gives up on it
    closes it, as these tests do (or Python warns that it was never awaited)."""
    obj = getattr(error, "obj", None)
    if isinstance(obj, types.CoroutineType):
        obj.close()


# --- the matrix ------------------------------------------------------------------------


def test_matrix_is_complete() -> None:
    """Every family sorts every protocol into exactly one of correct, wrong, not applicable."""
    assert {family.kind for family in FAMILIES.values()} == set(protoguard.KINDS)
    for name, family in FAMILIES.items():
        cells = [*family.correct, *family.wrong, *family.not_applicable]
        assert sorted(cells) == sorted(ALL_PROTOCOLS), name


class TestCorrectProtocol:
    """Each kind used with its own protocol: a real query, and the provider cleaned up."""

    @pytest.mark.parametrize(("kind", "protocol"), CORRECT)
    def test_query_and_cleanup(self, run, providers, kind: str, protocol: str) -> None:
        """The query sees both rows, the provider's cleanup ran, the connection is back."""
        assert _use(run, providers, kind, protocol) == 2
        assert providers.log == ([kind] if kind in CLEANS_UP else [])
        assert providers.connections_out() == 0

    @pytest.mark.parametrize("kind", ["acm", "cm", "acm-method", "acm-partial"])
    def test_reentry_after_a_fresh_call(self, run, providers, kind: str) -> None:
        """Calling the provider again (the PG107 fix) gives a context manager that works."""
        provider = providers.by_kind[kind]

        async def twice() -> None:
            for _ in range(2):
                async with provider(info={"password": SECRET}) as db_session:
                    assert (await db_session.execute(COUNT)).scalar_one() == 2

        if _family(kind).is_async:
            run(twice())
        else:
            for _ in range(2):
                with provider(info={"password": SECRET}) as db_session:
                    assert db_session.execute(COUNT).scalar_one() == 2
        assert providers.log == [kind, kind]


class TestNotApplicable:
    """Protocols a session really speaks stay untouched on session-returning providers."""

    @pytest.mark.parametrize("kind", ["async_sessionmaker", "sessionmaker", "function"])
    def test_iterating_a_session_lists_its_objects(self, run, providers, kind: str) -> None:
        """`for obj in session` is Session's own API (its identity map), not a misuse."""
        session = providers.by_kind[kind](info={"password": SECRET})
        assert list(session) == []
        if _family(kind).is_async:
            run(session.close())
        else:
            session.close()

    def test_async_session_entered_twice(self, run, providers) -> None:
        """An AsyncSession can be entered again after it closed: no PG107 for it."""

        async def twice() -> int:
            session = providers.by_kind["async_sessionmaker"]()
            async with session as db_session:
                await db_session.execute(COUNT)
            async with session as db_session:
                return (await db_session.execute(COUNT)).scalar_one()

        assert run(twice()) == 2
        assert providers.connections_out() == 0

    @pytest.mark.parametrize("kind", ["sessionmaker", "function"])
    def test_session_entered_twice(self, providers, kind: str) -> None:
        """A Session can be entered again after it closed: no PG107 for it."""
        session = providers.by_kind[kind](info={"password": SECRET})
        with session as db_session:
            db_session.execute(COUNT)
        with session as db_session:
            assert db_session.execute(COUNT).scalar_one() == 2
        assert providers.connections_out() == 0


@pytest.mark.parametrize(("kind", "protocol", "code", "fix"), WRONG)
class TestWrongProtocol:
    """Each kind used with each wrong protocol raises the catalog's ProtocolError."""

    def test_exception_types(self, run, providers, kind, protocol, code, fix) -> None:
        """A ProtocolError and TypeError; PG103 and PG107, for which Python raises an
        AttributeError, are also an AttributeError, with Python's name and object, and so
        is a `with` or `async with` before Python 3.11 (AttributeError: __aenter__)."""
        error = _misuse(run, providers, kind, protocol)
        assert isinstance(error, TypeError)
        with_before_311 = sys.version_info < (3, 11) and protocol in ("with", "async with")
        attribute_error = code in ("PG103", "PG107") or with_before_311
        assert isinstance(error, ProtocolAttributeError) == attribute_error
        assert isinstance(error, AttributeError) == attribute_error
        if with_before_311:
            assert (error.name, error.obj) == (None, None)  # as Python's there
        if code == "PG103":
            assert error.name == "execute"
        if code == "PG107":
            assert error.name == "args"
            assert error.obj is not None
            with pytest.raises(AttributeError, match="'args'"):
                error.obj.args  # noqa: B018 (the object is the context manager entered)

    def test_except_clauses_see_what_python_raises(
        self, run, providers, kind, protocol, code, fix
    ) -> None:
        """The same use of the unguarded provider raises what an `except` clause in the
        user's code was written for: the ProtocolError is one too (before Python 3.11, a
        `with` on what is no context manager raises AttributeError, not TypeError)."""
        error = _misuse(run, providers, kind, protocol)
        plain = _plain_error(run, providers, kind, protocol)
        assert isinstance(error, type(plain)), (type(plain), type(error).__mro__)

    def test_code_used_supported(self, run, providers, kind, protocol, code, fix) -> None:
        """`.code` is the catalog's, `.used` the protocol written, `.supported` the kind's."""
        error = _misuse(run, providers, kind, protocol)
        assert error.code == code
        if protocol == "attribute":
            used = ".execute"
        elif protocol == "re-enter":
            used = "async with" if _family(kind).is_async else "with"
        else:
            used = protocol
        assert error.used == used
        assert error.supported == _family(kind).supported

    def test_provider(self, run, providers, kind, protocol, code, fix) -> None:
        """`.provider` names the provider, its kind, and the line that defines it."""
        error = _misuse(run, providers, kind, protocol)
        assert error.provider == (
            KINDS[kind][1],
            _family(kind).kind,
            __file__,
            line_of(__file__, DEF + kind),
        )

    def test_call_site(self, run, providers, kind, protocol, code, fix) -> None:
        """`.call_site` is this file and the exact line of the misuse."""
        error = _misuse(run, providers, kind, protocol)
        expected = (__file__, line_of(__file__, MISUSE + _driver(kind, protocol).marker))
        assert error.call_site == expected

    def test_fix(self, run, providers, kind, protocol, code, fix) -> None:
        """`.fix` is the user's own line rewritten to the protocol the provider speaks."""
        error = _misuse(run, providers, kind, protocol)
        assert error.fix == fix
        # The fix is valid Python (top-level await allowed: it is one line of a function).
        statement = error.fix + ("\n    pass" if error.fix.endswith(":") else "")
        compile(statement, "fix", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)

    def test_message(self, run, providers, kind, protocol, code, fix) -> None:
        """The message: code and what was done, where, the provider, fix, docs, in order."""
        error = _misuse(run, providers, kind, protocol)
        name = _short(KINDS[kind][1])
        family = _family(kind)
        lineno = line_of(__file__, MISUSE + _driver(kind, protocol).marker)
        lines = str(error).splitlines()
        head = lines[0]
        assert head.startswith(f"[{code}] ")
        # Named as the line calls it (the drivers' parameter), the definition line after.
        assert "get_db()" in head
        what = ".execute" if protocol == "attribute" else error.used
        assert f"'{what}'" in head
        where = "guarded at" if kind.endswith("sessionmaker") else "defined at"
        # The sync drivers are plain defs: an async fix says it needs an async def.
        driver = _driver(kind, protocol)
        needs_async = fix.startswith(("async ", "await ")) or " await " in fix
        if protocol == "attribute":
            # The fix is for the line that made the object, which the note names.
            made = line_of(__file__, MISUSE + driver.marker) - 1
            fix += f"  # replaces line {made}: {linecache.getline(__file__, made).strip()}"
        if needs_async and not driver.is_async:
            fix += f"  # needs an async def; {driver.func.__name__}() is a plain def"
        expected_in_order = [
            f"  at {__file__}:{lineno}",
            f"      {_source_line(lineno)}",
            f"  {name}: {family.definition}, {where} {__file__}:{line_of(__file__, DEF + kind)}",
            f"  fix: {fix}",
            f"  docs: {DOCS}#{code.lower()}",
        ]
        positions = [lines.index(line) if line in lines else -1 for line in expected_in_order]
        assert -1 not in positions, (expected_in_order, lines)
        assert positions == sorted(positions)
        assert lines[-1] == expected_in_order[-1]

    def test_no_argument_values(self, run, providers, kind, protocol, code, fix) -> None:
        """Neither the message nor the repr shows the secret passed to the provider."""
        error = _misuse(run, providers, kind, protocol)
        for text in (str(error), repr(error), error.fix, str(error.provider)):
            assert SECRET not in text
            assert "hunter2" not in text

    def test_leaves_nothing_behind(self, run, providers, kind, protocol, code, fix) -> None:
        """No warning (no never-awaited coroutine) and no connection outlive the error."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                _use(run, providers, kind, protocol)
            except ProtocolError as error:
                _close_unawaited(error)
            else:  # pragma: no cover - the other tests say what went wrong
                pytest.fail("no ProtocolError")
            gc.collect()
        assert [str(w.message) for w in caught] == []
        assert providers.connections_out() == 0
        # The first, correct entry of a re-entered context manager did clean up.
        expected_log: Optional[list[str]] = [kind] if protocol == "re-enter" else []
        assert providers.log == expected_log


class TestFixKeepsTheCallAsWritten:
    """The fix rewrites the user's own call, whatever it names: the provider, a method."""

    def test_catalog_example(self, run, async_maker) -> None:
        """The catalog's own PG101: `async for` over get_db() becomes `async with`."""

        @protoguard.provider
        @asynccontextmanager
        async def get_db():
            async with async_maker() as session:
                yield session

        async def handler() -> None:
            async for db_session in get_db():  # <- misuse: catalog-example
                await db_session.execute(COUNT)

        with pytest.raises(ProtocolError) as info:
            run(handler())
        assert info.value.code == "PG101"
        assert info.value.fix == "async with get_db() as db_session:"
        assert info.value.call_site == (__file__, line_of(__file__, MISUSE + "catalog-example"))

    def test_nested_await(self, run, async_maker) -> None:
        """PG104 inside a larger expression: the fix enters the provider and keeps the
        rest of the user's statement, on the session it gives (one valid line)."""

        @protoguard.provider
        @asynccontextmanager
        async def get_db():
            async with async_maker() as session:
                yield session

        async def handler() -> int:
            return (await (await get_db()).execute(COUNT)).scalar_one()  # <- misuse: nested

        with pytest.raises(ProtocolError) as info:
            run(handler())
        error = info.value
        assert error.code == "PG104"
        assert error.fix == (
            "async with get_db() as session: return (await session.execute(COUNT)).scalar_one()"
        )
        compile(f"async def handler():\n    {error.fix}", "fix", "exec", dont_inherit=True)
        assert error.call_site == (__file__, line_of(__file__, MISUSE + "nested"))

    def test_sync_block_on_a_coroutine_provider(self, async_maker) -> None:
        """`with make_session() as db:` in a plain def: the fix keeps the block (awaits the
        coroutine, enters the session), and the message says it needs an async def."""

        @protoguard.provider
        async def make_session():
            return async_maker()

        def handler() -> None:
            with make_session() as db:  # <- misuse: sync-block
                db.execute(COUNT)  # pragma: no cover

        with pytest.raises(ProtocolError) as info:
            handler()
        error = info.value
        assert error.code == "PG105"
        assert error.fix == "async with await make_session() as db:"
        assert "  fix: async with await make_session() as db:  # needs an async def; " in str(error)
        assert "handler() is a plain def" in str(error)
        assert error.call_site == (__file__, line_of(__file__, MISUSE + "sync-block"))

    def test_call_over_several_lines(self, run, async_maker) -> None:
        """A call a formatter spread over lines: the fix is the whole statement, on one
        line, with the user's arguments and variable (not `get_db(...) as session`)."""

        @protoguard.provider
        async def get_db(read_only: bool = False):
            async with async_maker() as session:
                yield session

        async def handler() -> None:
            async with get_db(  # <- misuse: several-lines
                read_only=True,
            ) as db:
                await db.execute(COUNT)  # pragma: no cover

        with pytest.raises(ProtocolError) as info:
            run(handler())
        error = info.value
        assert error.code == "PG102"
        assert error.fix == "async for db in get_db(read_only=True):"
        first = line_of(__file__, MISUSE + "several-lines")
        assert error.call_site.filename == __file__
        assert first <= error.call_site.lineno <= first + 2

    def test_one_item_of_several(self, run, async_maker) -> None:
        """`async with other() as _, get_db() as db:`: the other item is kept, and the
        provider's loop nested in its block, as the message says."""

        @protoguard.provider
        async def get_db():
            async with async_maker() as session:
                yield session

        @asynccontextmanager
        async def other():
            yield None

        async def handler() -> None:
            async with other() as _, get_db() as db:  # <- misuse: one-of-several
                await db.execute(COUNT)  # pragma: no cover

        with pytest.raises(ProtocolError) as info:
            run(handler())
        fix = "async with other() as _:\n    async for db in get_db():"
        assert (info.value.code, info.value.fix) == ("PG102", fix)
        assert (
            "  fix: async with other() as _:\n"
            "            async for db in get_db():"
            "  # the blocks nest: the body goes under the last one"
        ) in str(info.value)
        assert info.value.call_site == (__file__, line_of(__file__, MISUSE + "one-of-several"))

    def test_method_through_self(self, run, async_maker) -> None:
        """`self.db.session(...)` on an async generator method keeps the whole chain."""

        class Db:
            @protoguard.provider
            async def session(self, password: str):
                async with async_maker() as session:
                    yield session

        class Service:
            def __init__(self) -> None:
                self.db = Db()

            async def count(self, password: str) -> None:
                async with self.db.session(password=password) as s:  # <- misuse: self-chain
                    await s.execute(COUNT)

        with pytest.raises(ProtocolError) as info:
            run(Service().count(SECRET))
        error = info.value
        assert (error.code, error.fix) == (
            "PG102",
            "async for s in self.db.session(password=password):",
        )
        assert error.call_site == (__file__, line_of(__file__, MISUSE + "self-chain"))
        assert SECRET not in str(error)

    def test_attribute_on_classmethod_result(self, run, async_maker) -> None:
        """PG103 rewrites the call the variable came from: `Repo.session(...)`."""

        class Repo:
            @protoguard.provider
            @classmethod
            @asynccontextmanager
            async def session(cls, password: str):
                async with async_maker() as session:
                    yield session

        async def handler(password: str) -> None:
            db = Repo.session(password=password)
            await db.commit()  # <- misuse: classmethod-attribute

        with pytest.raises(ProtocolAttributeError) as info:
            run(handler(SECRET))
        error = info.value
        assert (error.code, error.used) == ("PG103", ".commit")
        assert error.fix == "async with Repo.session(password=password) as db:"
        assert error.call_site == (__file__, line_of(__file__, MISUSE + "classmethod-attribute"))
        assert SECRET not in str(error)
        assert not hasattr(Repo.session(password=SECRET), "execute")

    def test_attribute_on_the_call(self, run, async_maker) -> None:
        """PG103 on the provider call itself (`await get_db().execute(q)`): the fix
        enters the call as written and keeps the line, on the session (as PG104's does
        for `(await get_db()).execute(q)`), not `async with get_db(...) as session:`."""

        @protoguard.provider
        @asynccontextmanager
        async def get_db():
            async with async_maker() as session:
                yield session

        async def handler() -> int:
            result = await get_db().execute(COUNT)  # <- misuse: inline-attribute
            return result.scalar_one()  # pragma: no cover

        with pytest.raises(ProtocolAttributeError) as info:
            run(handler())
        error = info.value
        assert (error.code, error.used) == ("PG103", ".execute")
        assert error.fix == (
            "async with get_db() as session: result = await session.execute(COUNT)"
        )
        assert f"  fix: {error.fix}" in str(error).splitlines()
        compile(f"async def handler():\n    {error.fix}", "fix", "exec", dont_inherit=True)
        assert error.call_site == (__file__, line_of(__file__, MISUSE + "inline-attribute"))

    @pytest.mark.skipif(sys.version_info < (3, 10), reason="the anext() builtin is new in 3.10")
    def test_anext_with_a_default_on_a_context_manager(self, tmp_path) -> None:
        """`await anext(get_db(), None)`: PG101, raised when awaited. (CPython 3.10-3.13
        crash with a segmentation fault when __anext__ raises under anext(obj, default):
        run in a process of its own, so a crash fails this test, not the run.)"""
        script = tmp_path / "anext_default.py"
        script.write_text(
            textwrap.dedent(
                """
                import asyncio, contextlib, protoguard

                @protoguard.provider
                @contextlib.asynccontextmanager
                async def get_db():
                    yield "session"

                async def main():
                    return await anext(get_db(), None)

                try:
                    asyncio.run(main())
                except protoguard.ProtocolError as error:
                    print(error.code, error.call_site.lineno)
                """
            )
        )
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=60
        )
        assert (done.returncode, done.stdout.strip()) == (0, "PG101 10"), done.stderr

    def test_closing_what_a_context_manager_provider_returned(self, run, async_maker) -> None:
        """`db = get_db(); ...; await db.close()`: PG103, as for any session method (a
        context manager has no close), not Python's bare AttributeError naming
        protoguard's class; hasattr() still says False."""

        @protoguard.provider
        @asynccontextmanager
        async def get_db():
            async with async_maker() as session:
                yield session

        async def handler() -> None:
            db = get_db()
            assert not hasattr(db, "close")
            await db.close()

        with pytest.raises(ProtocolAttributeError) as info:
            run(handler())
        assert (info.value.code, info.value.used) == ("PG103", ".close")
        assert info.value.fix == "async with get_db() as db:"

    def test_aclose_on_what_an_async_context_manager_provider_returned(
        self, run, async_maker
    ) -> None:
        """`db = get_db(); ...; await db.aclose()` (AsyncSession's name for close):
        PG103 as for close(), where it closed the provider's generator before it ever
        ran, silently (Python: no attribute 'aclose'). Depends() still closes it after
        entering it (see test_fastapi)."""
        opened = []

        @protoguard.provider
        @asynccontextmanager
        async def get_db():
            opened.append(True)
            async with async_maker() as session:
                yield session

        async def handler() -> None:
            db = get_db()
            await db.aclose()

        with pytest.raises(ProtocolAttributeError) as info:
            run(handler())
        assert (info.value.code, info.value.used) == ("PG103", ".aclose")
        assert info.value.fix == "async with get_db() as db:"
        assert opened == []

    @pytest.mark.parametrize("mode", ["on", "strict"])
    def test_closing_what_a_sync_context_manager_provider_returned(self, sync_maker, mode) -> None:
        """`db = get_sync_db(); db.close()`: PG103 naming `with get_sync_db() as db:`, in
        strict mode too (Python: no attribute 'close'), not the close that Depends()
        calls after entering it."""

        @protoguard.provider(mode=mode)
        @contextmanager
        def get_sync_db():
            with sync_maker() as session:
                yield session

        db = get_sync_db()
        with pytest.raises(ProtocolAttributeError) as info:
            db.close()
        assert (info.value.code, info.value.used) == ("PG103", ".close")
        assert info.value.fix == "with get_sync_db() as db:"
        with db as session:  # still usable as what it is
            assert session.execute(COUNT).scalar_one() == 2
        assert protoguard.findings() == []

    def test_attribute_on_the_call_of_a_coroutine(self, run, async_maker) -> None:
        """The coroutine provider's PG103 on the call (a forgotten await): the fix awaits
        it and enters the session (closed at the block's end, as PG105/PG106 do), then
        the line on the session, with the call's arguments as written."""

        @protoguard.provider
        async def make_session(password: str):
            return async_maker()

        async def handler(password: str) -> int:
            result = await make_session(password=password).execute(COUNT)  # <- misuse: coro-attr
            return result.scalar_one()  # pragma: no cover

        with pytest.raises(ProtocolAttributeError) as info:
            run(handler(SECRET))
        error = info.value
        _close_unawaited(error)
        assert (error.code, error.used) == ("PG103", ".execute")
        assert error.fix == (
            "async with await make_session(password=password) as session: "
            "result = await session.execute(COUNT)"
        )
        compile(f"async def handler():\n    {error.fix}", "fix", "exec", dont_inherit=True)
        assert error.call_site == (__file__, line_of(__file__, MISUSE + "coro-attr"))
        assert SECRET not in str(error)

    def test_attribute_on_the_call_in_a_sync_chain(self, sync_maker) -> None:
        """A sync provider's call in a chain, with arguments: the same rewrite, `with`."""

        @protoguard.provider
        @contextmanager
        def get_db(password: str):
            with sync_maker() as session:
                yield session

        def handler(password: str) -> int:
            return get_db(password=password).execute(COUNT).scalar_one()  # <- misuse: chain

        with pytest.raises(ProtocolAttributeError) as info:
            handler(SECRET)
        error = info.value
        assert (error.code, error.used) == ("PG103", ".execute")
        assert error.fix == (
            "with get_db(password=password) as session: return session.execute(COUNT).scalar_one()"
        )
        compile(f"def handler():\n    {error.fix}", "fix", "exec", dont_inherit=True)
        assert error.call_site == (__file__, line_of(__file__, MISUSE + "chain"))
        assert SECRET not in str(error)

    @pytest.mark.parametrize(
        ("marker", "code"), [("begin-attribute", "PG103"), ("begin-await", "PG104")]
    )
    def test_call_in_a_block_header(self, run, async_maker, marker: str, code: str) -> None:
        """`async with get_db().begin() as tx:` (and with the await): the rest of the line
        is a block's header, which cannot follow the provider's `async with ...:` on one
        line; it goes on the next, one level in (a fix of two lines)."""

        @protoguard.provider
        @asynccontextmanager
        async def get_db():
            async with async_maker() as session:
                yield session

        async def handler() -> None:
            if marker == "begin-attribute":
                async with get_db().begin() as tx:  # <- misuse: begin-attribute
                    await tx.session.execute(COUNT)  # pragma: no cover
            else:
                async with (await get_db()).begin() as tx:  # <- misuse: begin-await
                    await tx.session.execute(COUNT)  # pragma: no cover

        with pytest.raises(ProtocolError) as info:
            run(handler())
        error = info.value
        assert error.code == code
        assert error.fix == (
            "async with get_db() as session:\n    async with session.begin() as tx:"
        )
        compile(
            f"async def handler():\n{textwrap.indent(error.fix, '    ')}\n            pass",
            "fix",
            "exec",
            dont_inherit=True,
        )
        lines = str(error).splitlines()
        start = lines.index("  fix: async with get_db() as session:")
        assert lines[start + 1] == "            async with session.begin() as tx:"
        assert error.call_site == (__file__, line_of(__file__, MISUSE + marker))

    def test_call_handed_to_a_function(self, sync_maker) -> None:
        """`list(get_db())`: list() iterates the context manager. The fix is the provider's
        statement; the rest of the line is about what list() was given, not the session
        (it was `with get_db() as session: sessions = list(session)`)."""

        @protoguard.provider
        @contextmanager
        def get_db():
            with sync_maker() as session:
                yield session

        def handler() -> None:
            sessions = list(get_db())  # <- misuse: handed-to-list
            assert sessions  # pragma: no cover

        with pytest.raises(ProtocolError) as info:
            handler()
        error = info.value
        assert (error.code, error.fix) == ("PG101", "with get_db() as session:")
        assert error.call_site == (__file__, line_of(__file__, MISUSE + "handed-to-list"))

    def test_reentered_partial(self, async_maker) -> None:
        """PG107 on a partial of a @contextmanager rewrites the call that made the object."""

        @contextmanager
        def raw(dsn: str, password: str):
            yield password

        get_db = protoguard.provider(functools.partial(raw, "sqlite://"))

        def use_twice() -> None:
            cm = get_db(password=SECRET)
            with cm:
                pass
            with cm as session:  # <- misuse: partial-reenter
                assert session == SECRET

        with pytest.raises(ProtocolError) as info:
            use_twice()
        error = info.value
        assert (error.code, error.used) == ("PG107", "with")
        assert error.fix == "with get_db(password=SECRET) as session:"
        assert error.call_site == (__file__, line_of(__file__, MISUSE + "partial-reenter"))
        assert SECRET not in str(error)

    def test_reentered_among_other_items(self, async_maker) -> None:
        """PG107 where the context manager entered again is one item of several: the
        fix makes that item anew and keeps the others (it rewrote the provider's other
        item, `async with get_db(...) as first:`, and dropped the rest). Pasted, it runs."""

        @protoguard.provider
        @asynccontextmanager
        async def get_db():
            async with async_maker() as session:
                yield session

        async def use_twice() -> None:
            cm = get_db()
            async with cm as first:
                await first.execute(COUNT)
            async with get_db() as first, cm as again:  # <- misuse: reenter-among-items
                await again.execute(COUNT)  # pragma: no cover

        with pytest.raises(ProtocolError) as info:
            asyncio.run(use_twice())
        error = info.value
        assert (error.code, error.used) == ("PG107", "async with")
        assert error.fix == "async with get_db() as first, get_db() as again:"
        assert error.call_site == (__file__, line_of(__file__, MISUSE + "reenter-among-items"))
        namespace: dict[str, Any] = {"get_db": get_db, "COUNT": COUNT}
        exec(
            f"async def fixed():\n    {error.fix}\n"
            "        return [(await s.execute(COUNT)).scalar_one() for s in (first, again)]\n",
            namespace,
        )
        assert asyncio.run(namespace["fixed"]()) == [2, 2]


# --- comprehensions: the provider call as a comprehension's first iterable --------------


async def comp_list(get_db: Any) -> Any:
    sessions = [db async for db in get_db(info={"password": SECRET})]  # <- misuse: comp-list
    return sessions


async def comp_sync_list(get_db: Any) -> Any:
    sessions = [db for db in get_db(info={"password": SECRET})]  # <- misuse: comp-sync-list
    return sessions


async def comp_dict(get_db: Any) -> Any:
    by_id = {id(db): db async for db in get_db(info={"password": SECRET})}  # <- misuse: comp-dict
    return by_id


def comp_set(get_db: Any) -> Any:
    sessions = {db for db in get_db(info={"password": SECRET})}  # <- misuse: comp-set
    return sessions


async def comp_condition(get_db: Any) -> Any:
    return [db async for db in get_db(info={"password": SECRET}) if db]  # <- misuse: comp-condition


async def comp_generator(get_db: Any) -> Any:
    return list(db for db in get_db(info={"password": SECRET}))  # <- misuse: comp-generator


async def comp_per_item(get_db: Any) -> Any:
    return [await get_db(info=info) for info in [{"password": SECRET}]]  # <- misuse: comp-per-item


async def comp_nested(get_db: Any) -> Any:
    # A list comprehension's code ran in a frame of its own before Python 3.12.
    return [db for _ in "x" for db in get_db(info={"password": SECRET})]  # <- misuse: comp-nested


def comp_lambda(get_db: Any) -> Any:
    return (lambda: [db for db in get_db(info={"password": SECRET})])()  # <- misuse: comp-lambda


def comp_plain_def(get_db: Any) -> Any:
    return [db for db in get_db(info={"password": SECRET})]  # <- misuse: comp-plain-def


KEEPS = "  # the lines that use the session go in this block too: it closes the session at its end"
COMPREHENSIONS = [
    # A context manager: entered as the comprehension's variable, with the line on it
    # (over its one item), for a list, dict or set comprehension, async or not; in the
    # block, not after it on its line: the line keeps the session for the lines after
    # it, which go in the block too (on one line, the block would close it at once).
    (comp_list, "acm", "PG101", f"async with {EXPR} as db:\n    sessions = [db]", KEEPS),
    (comp_sync_list, "acm", "PG105", f"async with {EXPR} as db:\n    sessions = [db]", KEEPS),
    (comp_dict, "acm", "PG101", f"async with {EXPR} as db:\n    by_id = {{id(db): db}}", KEEPS),
    (comp_set, "cm", "PG101", f"with {EXPR} as db:\n    sessions = {{db}}", KEEPS),
    (
        comp_list,
        "async_sessionmaker",
        "PG101",
        f"async with {EXPR} as db:\n    sessions = [db]",
        KEEPS,
    ),
    # A coroutine's forgotten await: awaited, and the session it gives entered.
    (
        comp_list,
        "coroutine",
        "PG106",
        f"async with await {EXPR} as db:\n    sessions = [db]",
        KEEPS,
    ),
    # A condition, or a generator expression (it runs later, after any block ended): the
    # provider's statement, bound to the comprehension's variable.
    (comp_condition, "acm", "PG101", f"async with {EXPR} as db:", ""),
    (comp_generator, "acm", "PG105", f"async with {EXPR} as db:", ""),
    # A generator provider: the comprehension itself, with the other 'for'.
    (comp_sync_list, "agen", "PG105", f"sessions = [db async for db in {EXPR}]", ""),
    (comp_list, "gen", "PG105", f"sessions = [db for db in {EXPR}]", ""),
    # In a plain def, the note says what the fix needs.
    (
        comp_plain_def,
        "agen",
        "PG105",
        f"return [db async for db in {EXPR}]",
        "  # needs an async def; comp_plain_def() is a plain def",
    ),
    # Called once per item, with the comprehension's own names: each item's session
    # entered on an exit stack, whose block holds them all (one block around the line
    # would have the comprehension's name unbound, and one session).
    (
        comp_per_item,
        "acm",
        "PG104",
        "async with contextlib.AsyncExitStack() as stack:\n"
        "    return [await stack.enter_async_context(get_db(info=info))"
        ' for info in [{"password": SECRET}]]',
        "  # import contextlib; the lines that use the sessions go in this block too: it"
        " closes them at its end",
    ),
    (comp_nested, "acm", "PG105", f"async with {EXPR} as session:", ""),
    (comp_lambda, "cm", "PG101", f"with {EXPR} as session:", ""),
]


@pytest.fixture
def named_get_db(async_maker, sync_maker) -> dict[str, Any]:
    """A provider of each kind, each named get_db: the name the drivers call it by,
    which is the call a fix looks for on the line."""

    @protoguard.provider
    @asynccontextmanager
    async def get_db(info: dict[str, str]):
        async with async_maker(info=info) as session:
            yield session

    acm = get_db

    @protoguard.provider
    @contextmanager
    def get_db(info: dict[str, str]):
        with sync_maker(info=info) as session:
            yield session

    cm = get_db

    @protoguard.provider
    async def get_db(info: dict[str, str]):
        async with async_maker(info=info) as session:
            yield session

    agen = get_db

    @protoguard.provider
    def get_db(info: dict[str, str]):
        with sync_maker(info=info) as session:
            yield session

    gen = get_db

    @protoguard.provider
    async def get_db(info: dict[str, str]):
        return async_maker(info=info)

    coroutine = get_db
    get_db = protoguard.provider(async_maker)
    return {
        "acm": acm,
        "cm": cm,
        "agen": agen,
        "gen": gen,
        "coroutine": coroutine,
        "async_sessionmaker": get_db,
    }


def _call(run: Any, driver: Callable[[Any], Any], provider: Any) -> Any:
    """The driver with the provider, run to its end if it is a coroutine function."""
    result = driver(provider)
    return run(result) if isinstance(result, types.CoroutineType) else result


@pytest.mark.parametrize(
    ("driver", "kind", "code", "fix", "note"),
    [pytest.param(*case, id=f"{case[0].__name__}-{case[1]}") for case in COMPREHENSIONS],
)
def test_comprehension_fix(run, named_get_db, driver, kind, code, fix, note) -> None:
    """A provider call a comprehension iterates: a fix that works, not the comprehension
    iterating the session (`async with get_db() as session: sessions = [db async for db in
    session]`), valid Python, at the comprehension's line, without the argument values."""
    with pytest.raises(ProtocolError) as info:
        _call(run, driver, named_get_db[kind])
    error = info.value
    assert (error.code, error.fix) == (code, fix)
    assert f"  fix: {fix}{note}".replace("\n", "\n        ") in str(error)
    marker = MISUSE + driver.__name__.replace("_", "-")
    assert error.call_site == (__file__, line_of(__file__, marker))
    body = fix + ("\n    pass" if fix.endswith(":") else "")
    compile(f"async def f():\n{textwrap.indent(body, '    ')}", "fix", "exec", dont_inherit=True)
    assert SECRET not in str(error)


# What asyncio does with an awaitable that is not a coroutine: await it in a task of its own.
IN_A_TASK = {
    "ensure_future": lambda aw: asyncio.ensure_future(aw),
    "gather": lambda aw: asyncio.gather(aw),
    "shield": lambda aw: asyncio.shield(aw),
}
if sys.version_info < (3, 12):  # 3.12 and later await it in wait_for's own coroutine
    IN_A_TASK["wait_for"] = lambda aw: asyncio.wait_for(aw, 1)


class TestAwaitedByAsyncio:
    """asyncio awaiting a provider's result for the user: asyncio's line is never named."""

    @pytest.fixture
    def get_db(self, async_maker):
        @protoguard.provider
        @asynccontextmanager
        async def get_db():
            async with async_maker() as session:
                yield session

        return get_db

    @pytest.mark.parametrize("helper", IN_A_TASK.values(), ids=IN_A_TASK.keys())
    def test_in_a_task_of_its_own(self, run, get_db, helper) -> None:
        """The task awaits it from the event loop, with no line of the user's on the
        stack (and `asyncio.run(...)`'s, above the loop, did not do it): no place, no
        line of asyncio's, a message that says what happened, and the provider's own
        statement as the fix, to go in a coroutine."""

        async def handler() -> None:
            await helper(get_db())

        with pytest.raises(ProtocolError) as info:
            run(handler())
        error = info.value
        assert (error.code, error.call_site) == ("PG104", None)
        assert error.fix == "async with get_db(...) as session:"
        lines = str(error).splitlines()
        assert lines[:2] == [
            "[PG104] 'await' on get_db(), which is an async context manager",
            "  awaited by asyncio in a task of its own, as asyncio.ensure_future(), gather(), "
            "shield() and wait_for() make for an awaitable that is not a coroutine: the line "
            "to change is the one that passed get_db() to asyncio",
        ]
        assert lines[2].startswith("  get_db: an @asynccontextmanager function, defined at ")
        assert lines[-2] == (
            "  fix: async with get_db(...) as session:  # in an async def, whose call you "
            "pass to asyncio"
        )
        assert "  at " not in str(error)
        assert "tasks.py" not in str(error)

    @pytest.mark.parametrize(
        "timeout",
        [
            None,
            pytest.param(
                1,
                marks=pytest.mark.skipif(
                    sys.version_info < (3, 12), reason="a task of its own before 3.12"
                ),
            ),
        ],
    )
    def test_awaited_from_the_users_line(self, run, get_db, timeout) -> None:
        """`await asyncio.wait_for(get_db(), None)` awaits in wait_for's coroutine, which
        the user's line awaits: asyncio's frame is skipped and that line is named. The
        fix is the provider's statement: the rest of the line hands the call to asyncio,
        it is not about the session."""

        async def handler() -> None:
            await asyncio.wait_for(get_db(), timeout)  # <- misuse: wait-for

        with pytest.raises(ProtocolError) as info:
            run(handler())
        error = info.value
        lineno = line_of(__file__, MISUSE + "wait-for")
        assert (error.code, error.call_site) == ("PG104", (__file__, lineno))
        assert error.fix == "async with get_db() as session:"
        assert f"  at {__file__}:{lineno}" in str(error).splitlines()
        assert "  fix: async with get_db() as session:" in str(error).splitlines()
