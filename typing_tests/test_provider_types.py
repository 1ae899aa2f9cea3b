"""Checked by type checkers (``nox -s typing``: mypy --strict and pyright), never run.

``@provider`` must leave every provider's type exactly as it was. Each case below
spells the type once, as an alias, and asserts it of the unguarded provider *and* of
the guarded one: ``assert_type`` checks identity, so both being that alias proves the
guarded type is the unguarded one. The aliases spell a function's type as
``Callable[[...], R]``, which is that function's exact type only when its parameters
are positional-only; that is why the providers here take them so (``/``). Keyword
parameters are checked by calls instead, including one that must be rejected.

The ``# type: ignore[code]`` lines are the negative checks: mypy --strict warns about an
ignore that is not needed, and so does pyright with ``pyrightconfig.json`` here
(``reportUnnecessaryTypeIgnoreComment``), so each one proves that the line is an error
for both.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Coroutine, Generator, Iterator
from contextlib import (
    _AsyncGeneratorContextManager,
    _GeneratorContextManager,
    asynccontextmanager,
    contextmanager,
)
from typing import Any, Callable, Literal, Optional, cast

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker
from typing_extensions import assert_type

import protoguard
import protoguard.fastapi
from protoguard import (
    CallSite,
    Finding,
    ImportHook,
    ProtocolAttributeError,
    ProtocolError,
    ProviderInfo,
)

engine = create_async_engine("sqlite+aiosqlite://")
maker = async_sessionmaker(engine)

# What an @asynccontextmanager / @contextmanager function returns, as mypy infers it.
ACM = _AsyncGeneratorContextManager[AsyncSession, None]
CM = _GeneratorContextManager[Session, None, None]


# --- @asynccontextmanager --------------------------------------------------------------


@asynccontextmanager
async def acm_unguarded(dsn: str, /) -> AsyncGenerator[AsyncSession, None]:
    async with maker() as session:
        yield session


@protoguard.provider
@asynccontextmanager
async def acm_decorated(dsn: str, /) -> AsyncGenerator[AsyncSession, None]:
    async with maker() as session:
        yield session


AcmProvider = Callable[[str], ACM]
acm_called = protoguard.provider(acm_unguarded)
assert_type(acm_unguarded, AcmProvider)
assert_type(acm_called, AcmProvider)
assert_type(acm_decorated, AcmProvider)
assert_type(acm_decorated("x"), ACM)


async def acm_uses() -> None:
    async with acm_decorated("x") as session:
        assert_type(session, AsyncSession)
    # The static type keeps the kind, so the checker flags PG101 and PG103 itself.
    async for _ in acm_decorated("x"):  # type: ignore[attr-defined]
        pass
    acm_decorated("x").execute  # type: ignore[attr-defined]  # noqa: B018


# The signature is kept, keyword parameters and defaults included.
@protoguard.provider
@asynccontextmanager
async def acm_keywords(dsn: str, *, echo: bool = False) -> AsyncGenerator[AsyncSession, None]:
    async with maker() as session:
        yield session


assert_type(acm_keywords("x", echo=True), ACM)
assert_type(acm_keywords(dsn="x"), ACM)
acm_keywords(1)  # type: ignore[arg-type]  # dsn is a str
acm_keywords("x", echo="yes")  # type: ignore[arg-type]  # echo is a bool
acm_keywords("x", verbose=True)  # type: ignore[call-arg]  # no such parameter


# --- with options: @provider(name=..., mode=..., yields=...) ---------------------------


@asynccontextmanager
async def options_unguarded(dsn: str, /) -> AsyncGenerator[AsyncSession, None]:
    async with maker() as session:
        yield session


@protoguard.provider(name="db", mode="strict", yields=AsyncSession)
@asynccontextmanager
async def options_decorated(dsn: str, /) -> AsyncGenerator[AsyncSession, None]:
    async with maker() as session:
        yield session


@protoguard.provider(mode="off")
@asynccontextmanager
async def options_off(dsn: str, /) -> AsyncGenerator[AsyncSession, None]:
    async with maker() as session:
        yield session


assert_type(options_unguarded, AcmProvider)
assert_type(options_decorated, AcmProvider)
assert_type(options_off, AcmProvider)
assert_type(protoguard.provider(name="db")(options_unguarded), AcmProvider)
protoguard.provider(name=1)  # type: ignore[call-overload]  # name is a str


# --- async generator function ----------------------------------------------------------


async def agen_unguarded(user_id: int, /) -> AsyncIterator[AsyncSession]:
    async with maker() as session:
        yield session


@protoguard.provider
async def agen_decorated(user_id: int, /) -> AsyncIterator[AsyncSession]:
    async with maker() as session:
        yield session


@protoguard.provider(name="db", mode="strict", yields=AsyncSession)
async def agen_options(user_id: int, /) -> AsyncIterator[AsyncSession]:
    async with maker() as session:
        yield session


AgenProvider = Callable[[int], AsyncIterator[AsyncSession]]
assert_type(agen_unguarded, AgenProvider)
assert_type(agen_decorated, AgenProvider)
assert_type(agen_options, AgenProvider)
assert_type(protoguard.provider(agen_unguarded), AgenProvider)


async def agen_uses() -> None:
    async for session in agen_decorated(1):
        assert_type(session, AsyncSession)
    async with agen_decorated(1):  # type: ignore[attr-defined]  # PG102
        pass


# --- coroutine function ----------------------------------------------------------------
# mypy types an ``async def`` function's result as Coroutine[...] and pyright as
# types.CoroutineType[...], so this case asserts the awaited value, and that the result
# is a Coroutine, rather than spell the function's type.


async def coroutine_unguarded(user_id: int, /) -> AsyncSession:
    return maker()


@protoguard.provider
async def coroutine_decorated(user_id: int, /) -> AsyncSession:
    return maker()


coroutine_called = protoguard.provider(coroutine_unguarded)


async def coroutine_uses() -> None:
    assert_type(await coroutine_unguarded(1), AsyncSession)
    assert_type(await coroutine_decorated(1), AsyncSession)
    assert_type(await coroutine_called(1), AsyncSession)
    result: Coroutine[Any, Any, AsyncSession] = coroutine_decorated(1)
    awaitable: Callable[[int], Awaitable[AsyncSession]] = coroutine_decorated
    del result, awaitable
    async with coroutine_decorated(1):  # type: ignore[attr-defined]  # PG106
        pass
    await coroutine_decorated("1")  # type: ignore[arg-type]  # user_id is an int


# --- @contextmanager and generator function --------------------------------------------


@contextmanager
def cm_unguarded(dsn: str, /) -> Generator[Session, None, None]:
    with Session() as session:
        yield session


@protoguard.provider
@contextmanager
def cm_decorated(dsn: str, /) -> Generator[Session, None, None]:
    with Session() as session:
        yield session


CmProvider = Callable[[str], CM]
assert_type(cm_unguarded, CmProvider)
assert_type(cm_decorated, CmProvider)
assert_type(protoguard.provider(cm_unguarded), CmProvider)


def generator_unguarded(dsn: str, /) -> Iterator[Session]:
    with Session() as session:
        yield session


@protoguard.provider
def generator_decorated(dsn: str, /) -> Iterator[Session]:
    with Session() as session:
        yield session


GeneratorProvider = Callable[[str], Iterator[Session]]
assert_type(generator_unguarded, GeneratorProvider)
assert_type(generator_decorated, GeneratorProvider)
assert_type(protoguard.provider(generator_unguarded), GeneratorProvider)


def sync_uses() -> None:
    with cm_decorated("x") as session:
        assert_type(session, Session)
    for each in generator_decorated("x"):
        assert_type(each, Session)
    with generator_decorated("x"):  # type: ignore[attr-defined]  # PG105-like: not a cm
        pass


# --- plain function returning a session ------------------------------------------------


def plain_unguarded(dsn: str, /) -> Session:
    return Session()


@protoguard.provider
def plain_decorated(dsn: str, /) -> Session:
    return Session()


PlainProvider = Callable[[str], Session]
assert_type(plain_unguarded, PlainProvider)
assert_type(plain_decorated, PlainProvider)
assert_type(protoguard.provider(plain_unguarded), PlainProvider)


# --- session makers --------------------------------------------------------------------

guarded_maker = protoguard.provider(maker)
assert_type(maker, async_sessionmaker[AsyncSession])
assert_type(guarded_maker, async_sessionmaker[AsyncSession])
assert_type(guarded_maker(), AsyncSession)

sync_maker = sessionmaker()
guarded_sync_maker = protoguard.provider(sync_maker)
assert_type(sync_maker, sessionmaker[Session])
assert_type(guarded_sync_maker, sessionmaker[Session])
assert_type(guarded_sync_maker(), Session)


async def maker_uses() -> None:
    async with guarded_maker() as session:
        assert_type(session, AsyncSession)
    with guarded_sync_maker() as sync_session:
        assert_type(sync_session, Session)


# --- functools.partial -----------------------------------------------------------------

partial_acm = protoguard.provider(functools.partial(acm_unguarded, "sqlite://"))
assert_type(partial_acm, "functools.partial[ACM]")
assert_type(partial_acm(), ACM)


# --- methods ---------------------------------------------------------------------------


class Repository:
    @protoguard.provider
    @asynccontextmanager
    async def session(self, dsn: str, /) -> AsyncGenerator[AsyncSession, None]:
        async with maker() as session:
            yield session

    @protoguard.provider
    @classmethod
    @asynccontextmanager
    async def for_class(cls, dsn: str, /) -> AsyncGenerator[AsyncSession, None]:
        async with maker() as session:
            yield session

    @protoguard.provider(name="repo", mode="on")
    @staticmethod
    @asynccontextmanager
    async def static(dsn: str, /) -> AsyncGenerator[AsyncSession, None]:
        async with maker() as session:
            yield session

    @protoguard.provider
    @staticmethod
    async def static_generator(dsn: str, /) -> AsyncIterator[AsyncSession]:
        async with maker() as session:
            yield session


assert_type(Repository().session, AcmProvider)
assert_type(Repository.session, Callable[[Repository, str], ACM])
assert_type(Repository.for_class, AcmProvider)
assert_type(Repository().for_class, AcmProvider)
assert_type(Repository.static, AcmProvider)
assert_type(Repository.static_generator, Callable[[str], AsyncIterator[AsyncSession]])
Repository.for_class(1)  # type: ignore[arg-type]  # dsn is a str

# --- not a provider --------------------------------------------------------------------

protoguard.provider(42)  # type: ignore[call-overload]


# --- what the errors carry -------------------------------------------------------------


def errors(error: ProtocolError, attribute_error: ProtocolAttributeError) -> None:
    assert_type(error.code, protoguard.Code)
    assert_type(error.provider, ProviderInfo)
    assert_type(error.provider.name, str)
    assert_type(error.provider.kind, protoguard.Kind)
    assert_type(error.provider.filename, Optional[str])
    assert_type(error.provider.lineno, Optional[int])
    assert_type(error.provider.location, str)
    assert_type(error.used, str)
    assert_type(error.supported, "tuple[str, ...]")
    assert_type(error.call_site, Optional[CallSite])
    assert_type(error.fix, str)
    if error.call_site is not None:
        assert_type(error.call_site.filename, str)
        assert_type(error.call_site.lineno, int)
    assert_type(attribute_error.code, protoguard.Code)
    error.code = 101  # type: ignore[assignment]  # a Code, a str
    error.code = "PG999"  # type: ignore[assignment]  # no such code
    # The codes and kinds are Literal types, so a misspelt one in a comparison is an error
    # to the checker (mypy --strict's strict equality, pyright strict's unnecessary
    # comparison), not a test that silently never matches.
    matched = error.code == "PG101" and error.provider.kind == "async context manager"
    matched = error.code == "PG1O1"  # type: ignore[comparison-overlap]  # a letter O
    matched = error.provider.kind == "async contextmanager"  # type: ignore[comparison-overlap]
    del matched
    code: str = error.code  # still a str to code that wants one
    del code
    as_type_error: TypeError = error
    as_attribute_error: AttributeError = attribute_error
    del as_type_error, as_attribute_error


def findings(finding: Finding, hook: ImportHook) -> None:
    assert_type(finding.code, protoguard.Code)
    assert_type(finding.count, int)
    assert_type(finding.call_site, Optional[CallSite])
    assert_type(protoguard.findings(), "list[Finding]")
    for found in hook.findings:  # the import-time guard's
        assert_type(found.code, protoguard.Code)
        assert_type(found.provider.kind, protoguard.Kind)


def kinds() -> None:
    assert_type(protoguard.KINDS, "tuple[protoguard.Kind, ...]")


def fastapi_check(app: FastAPI) -> None:
    for problem in protoguard.fastapi.check_app(app):
        assert_type(problem.code, protoguard.Code)
        assert_type(problem.provider.kind, protoguard.Kind)


# --- modes and actions -----------------------------------------------------------------
# Typed as Literal aliases, protoguard.Mode and protoguard.Action, so a misspelt value is
# an error to the checker as it is at run time.


def modes() -> None:
    protoguard.configure(mode="on", action="log")
    protoguard.configure(mode="strict", sample_rate=0.1)
    protoguard.configure(mode="off", action="warn")
    protoguard.configure(action="raise")
    protoguard.configure(sample_rate=1)
    protoguard.configure(sample_rate="0.1")  # type: ignore[arg-type]
    with protoguard.override(mode="off"):
        assert_type(protoguard.current_mode(), protoguard.Mode)
    assert_type(protoguard.current_action(), protoguard.Action)
    assert_type(protoguard.current_sample_rate(), float)
    assert_type(protoguard.MODES, "tuple[protoguard.Mode, ...]")
    assert_type(protoguard.ACTIONS, "tuple[protoguard.Action, ...]")


def misspelt_modes() -> None:
    protoguard.configure(mode="strcit")  # type: ignore[arg-type]
    protoguard.configure(mode="STRICT")  # type: ignore[arg-type]  # lower case, as documented
    protoguard.configure(action="rasie")  # type: ignore[arg-type]
    protoguard.configure(mode="raise")  # type: ignore[arg-type]  # an action, not a mode
    protoguard.configure(action="strict")  # type: ignore[arg-type]  # a mode, not an action
    with protoguard.override(mode="loud"):  # type: ignore[arg-type]
        pass
    protoguard.provider(mode="strcit")  # type: ignore[call-overload]
    protoguard.install_import_hook("myapp", mode="strcit")  # type: ignore[arg-type]
    protoguard.guard_this_package(mode="strcit")  # type: ignore[arg-type]


def modes_held_in_variables(raw: str, hook: ImportHook) -> None:
    mode: protoguard.Mode = "strict"
    action: protoguard.Action = "log"
    protoguard.configure(mode=mode, action=action)
    with protoguard.override(mode=protoguard.current_mode()):
        pass
    assert_type(hook.current_mode(), protoguard.Mode)
    assert_type(hook.mode, Optional[protoguard.Mode])
    # A str read from a configuration file or the environment is not a Mode to the checker:
    protoguard.configure(mode=raw)  # type: ignore[arg-type]
    protoguard.configure(action=raw)  # type: ignore[arg-type]
    # cast() it (protoguard still checks the value at run time)...
    protoguard.configure(mode=cast(protoguard.Mode, raw))
    protoguard.configure(action=cast(protoguard.Action, raw))
    # ... or test it against MODES / ACTIONS, which narrows it.
    if raw in protoguard.MODES:
        assert_type(raw, Literal["off", "on", "strict"])
        protoguard.configure(mode=raw)
    if raw in protoguard.ACTIONS:
        protoguard.configure(action=raw)
