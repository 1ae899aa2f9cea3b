"""What a provider is: classify callables, and which protocol each kind speaks.

Nothing here imports wrapt or an optional dependency: SQLAlchemy's session makers are
recognised only if SQLAlchemy has already been imported by the user's program.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any, Optional

from .exceptions import Code, Kind

# Provider kinds. Strings, not an enum: they appear in messages and in ProviderInfo. Their
# type, Kind, is defined in exceptions, beside ProviderInfo (that module imports none of
# protoguard's).
ASYNC_CM: Kind = "async context manager"
SYNC_CM: Kind = "context manager"
ASYNC_GEN: Kind = "async generator"
SYNC_GEN: Kind = "generator"
COROUTINE: Kind = "coroutine function"
ASYNC_SESSIONMAKER: Kind = "async_sessionmaker"
SESSIONMAKER: Kind = "sessionmaker"
FUNCTION: Kind = "function"

KINDS: tuple[Kind, ...] = (
    ASYNC_CM,
    SYNC_CM,
    ASYNC_GEN,
    SYNC_GEN,
    COROUTINE,
    ASYNC_SESSIONMAKER,
    SESSIONMAKER,
    FUNCTION,
)

# Protocols, spelled as the user writes them.
ASYNC_WITH = "async with"
ASYNC_FOR = "async for"
WITH = "with"
FOR = "for"
AWAIT = "await"
ATTRIBUTE = "attribute"  # the result used as the session itself
REENTER = "re-enter"  # a one-shot context manager entered again
CALL = "call"  # a plain call whose result is the session

#: The protocols each kind speaks, the first being the one a fix suggests.
SUPPORTED: dict[str, tuple[str, ...]] = {
    ASYNC_CM: (ASYNC_WITH,),
    SYNC_CM: (WITH,),
    ASYNC_GEN: (ASYNC_FOR, "Depends"),
    SYNC_GEN: (FOR, "Depends"),
    COROUTINE: (AWAIT,),
    ASYNC_SESSIONMAKER: (ASYNC_WITH, CALL),
    SESSIONMAKER: (WITH, CALL),
}

#: The public attributes of SQLAlchemy's Session and AsyncSession (and of sessions in
#: general) that raise PG103 when taken on a provider's result instead of the session.
SESSION_ATTRIBUTES = frozenset(
    {
        "add", "add_all", "autoflush", "begin", "begin_nested", "bind", "bulk_insert_mappings",
        "bulk_save_objects", "bulk_update_mappings", "commit", "connection", "delete",
        "deleted", "dirty", "execute", "expire", "expire_all", "expunge", "expunge_all",
        "flush", "get", "get_bind", "get_nested_transaction", "get_one", "get_transaction",
        "identity_map", "in_nested_transaction", "in_transaction", "info", "invalidate",
        "is_active", "is_modified", "merge", "new", "no_autoflush", "query", "refresh",
        "reset", "rollback", "run_sync", "scalar", "scalars", "stream", "stream_scalars",
        "sync_session",
    }
)  # fmt: skip

_ASYNC_KINDS = frozenset({ASYNC_CM, ASYNC_GEN, COROUTINE, ASYNC_SESSIONMAKER})
_CM_KINDS = frozenset({ASYNC_CM, SYNC_CM, ASYNC_SESSIONMAKER, SESSIONMAKER})
_GEN_KINDS = frozenset({ASYNC_GEN, SYNC_GEN})
_SYNC_PROTOCOLS = frozenset({WITH, FOR})


def is_async(kind: Kind) -> bool:
    """Whether a provider of this kind must be used with an ``async`` protocol."""
    return kind in _ASYNC_KINDS


def misuse_code(kind: Kind, used: str) -> Code:
    """The PG1xx code for using a provider of ``kind`` with protocol ``used``."""
    if used == REENTER:
        return "PG107"
    if used == ATTRIBUTE:
        return "PG103"
    if used == AWAIT:
        return "PG104"
    if kind == COROUTINE:
        # async with / async for on a coroutine is a forgotten await; a sync protocol
        # on it is the async/sync confusion.
        return "PG105" if used in _SYNC_PROTOCOLS else "PG106"
    if is_async(kind) == (used in _SYNC_PROTOCOLS):
        return "PG105"
    if kind in _CM_KINDS:
        return "PG101"  # iterated, but it is a context manager
    return "PG102"  # entered, but it is a generator


# --- classification --------------------------------------------------------------------


async def _agen() -> AsyncIterator[None]:  # pragma: no cover - never run: its helper's code is read
    yield


def _gen() -> Iterator[None]:  # pragma: no cover - never run: its helper's code is read
    yield


# Every function that @asynccontextmanager / @contextmanager returns shares one code
# object (contextlib's inner ``helper``); comparing code objects recognises them even
# though functools.wraps copied the user's name onto them.
_ACM_HELPER_CODE = contextlib.asynccontextmanager(_agen).__code__
_CM_HELPER_CODE = contextlib.contextmanager(_gen).__code__


def _sessionmaker_kind(obj: object) -> Optional[Kind]:
    """ASYNC_SESSIONMAKER / SESSIONMAKER if obj is one; never imports SQLAlchemy."""
    asyncio_ext = sys.modules.get("sqlalchemy.ext.asyncio")
    if asyncio_ext is not None and isinstance(obj, asyncio_ext.async_sessionmaker):
        return ASYNC_SESSIONMAKER
    orm = sys.modules.get("sqlalchemy.orm")
    if orm is not None and isinstance(obj, orm.sessionmaker):
        return SESSIONMAKER
    return None


def is_session_registry(obj: object) -> bool:
    """Whether ``obj`` is SQLAlchemy's ``scoped_session``/``async_scoped_session``: a
    callable registry of sessions, not a session, which a provider may hand out."""
    orm = sys.modules.get("sqlalchemy.orm")
    if orm is not None and isinstance(obj, orm.scoped_session):
        return True
    asyncio_ext = sys.modules.get("sqlalchemy.ext.asyncio")
    return asyncio_ext is not None and isinstance(obj, asyncio_ext.async_scoped_session)


def _innermost(func: Any) -> Any:
    """Strip bound methods and partials, which do not change a function's kind."""
    while True:
        if isinstance(func, functools.partial):
            func = func.func
        elif isinstance(func, types.MethodType):
            func = func.__func__
        else:
            return func


def classify(obj: object) -> Optional[Kind]:
    """The provider kind of ``obj``, or ``None`` if it is not a provider.

    Bound methods and ``functools.partial`` objects take the kind of the function (or,
    for a partial, the session maker) they wrap. ``classmethod``/``staticmethod``
    objects are unwrapped by the caller.
    """
    func = _innermost(obj)
    # A partial of a maker (one tenant's sessions) makes sessions as the maker does.
    kind = _sessionmaker_kind(func)
    if kind is not None:
        return kind
    if not isinstance(func, types.FunctionType):
        return None
    code = func.__code__
    if code is _ACM_HELPER_CODE:
        return ASYNC_CM
    if code is _CM_HELPER_CODE:
        return SYNC_CM
    if inspect.isasyncgenfunction(func):
        return ASYNC_GEN
    if inspect.isgeneratorfunction(func):
        return SYNC_GEN
    if inspect.iscoroutinefunction(func):
        return COROUTINE
    return FUNCTION


def definition_site(obj: object) -> tuple[str, Optional[str], Optional[int]]:
    """The qualified name, file and first line of the function behind a provider."""
    func = _innermost(obj)
    name = getattr(func, "__qualname__", None) or type(obj).__name__
    target = inspect.unwrap(func) if isinstance(func, types.FunctionType) else func
    code = getattr(target, "__code__", None)
    if code is None:
        return name, None, None
    return name, code.co_filename, code.co_firstlineno


def object_kind(obj: object) -> Optional[Kind]:
    """The protocol family of an object a plain function returned, for PG1xx codes."""
    tp = type(obj)
    if isinstance(obj, types.CoroutineType):
        return COROUTINE
    if isinstance(obj, types.AsyncGeneratorType):
        return ASYNC_GEN
    if isinstance(obj, types.GeneratorType):
        return SYNC_GEN
    if hasattr(tp, "__aenter__") and hasattr(tp, "__aexit__"):
        return ASYNC_CM
    if hasattr(tp, "__enter__") and hasattr(tp, "__exit__"):
        return SYNC_CM
    return None


def describe(obj: object) -> str:
    """A short, value-free description of ``obj`` for error messages: its type only."""
    if isinstance(obj, type):
        return f"the class {obj.__module__}.{obj.__qualname__}"
    # __class__, not type(): a guarded session reports the session's class, not the
    # proxy's (wrapt forwards __class__).
    tp = obj.__class__
    module = tp.__module__
    qual = tp.__qualname__ if module == "builtins" else f"{module}.{tp.__qualname__}"
    return f"an instance of {qual}"
