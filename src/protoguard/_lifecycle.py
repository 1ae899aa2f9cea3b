"""Strict mode: lifecycle and isolation checks (PG201-PG206).

Strict mode uses subclasses of the mode-``on`` result classes. They do what those do,
and also record where a provider was called and iterated, watch the session the
provider hands out, and report through ``_findings.report``:

* PG201 an async generator provider left early, so its cleanup did not run;
* PG202 one session used by two tasks at once;
* PG203 a session used after its provider's scope exited;
* PG204 a provider called and its result never entered or iterated;
* PG205 a provider that yields zero times, more than once, or the wrong type;
* PG206 a session opened in one task and used from another.

All state is per object and held weakly where it points at tasks or other objects
(the task that opened a session is held only while that task runs the provider's
block), so nothing here keeps a session, a task or a generator alive.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dis
import functools
import inspect
import linecache
import operator
import sys
import types
import typing
import warnings
import weakref
from collections.abc import Iterator
from contextvars import ContextVar
from types import FrameType
from typing import Any, NoReturn, Optional, Union

from . import _findings
from . import _kinds as k
from . import sqlalchemy as sqlalchemy_events
from ._findings import report
from ._messages import (
    _INTERNAL_MODULES,
    DOCS_URL,
    async_def_note,
    defined_with_parameters,
    definition_line,
    enter_once,
    enter_once_note,
    fix_line,
    in_depends,
    needs_async_def,
    open_where_used,
    plain_def_of,
    right_use,
    short_name,
    user_frame,
)
from ._proxies import (
    _FAST_GETATTRIBUTE,
    AsyncGeneratorProxy,
    CoroutineProxy,
    GeneratorProxy,
    GuardedAsyncContextManager,
    GuardedContextManager,
    SessionProxy,
    _BaseProxy,
    _wrapped_repr,
)
from .exceptions import (
    CallSite,
    Code,
    ProtocolError,
    ProtocolWarning,
    ProviderInfo,
    ProviderRuntimeError,
)

# --- small helpers -----------------------------------------------------------------------


# A place in the user's code, as strict mode records it on a correct path: the frame's
# code object and the offset of its current instruction, read in two attribute loads.
# Its line number is worked out only when a finding is reported (``resolve``); reading
# ``frame.f_lineno`` would decode the code's line table on every provider call.
Site = Union[CallSite, "tuple[types.CodeType, int]"]


def _site(frame: Optional[FrameType]) -> Optional[Site]:
    if frame is None:
        return None
    return (frame.f_code, frame.f_lasti)


_getframe = sys._getframe
# contextlib's context managers call the generator function here.
_CONTEXTLIB_INIT = contextlib._GeneratorContextManagerBase.__init__.__code__
# A strict-mode state object without its class's (absent) __init__: C only.
_new_state = object.__new__


def caller_site() -> Optional[Site]:
    """Where the user called protoguard's caller (skipping protoguard's and contextlib's
    frames); strict mode calls this on a correct path, so it is user_frame() and
    _site() written out: one call, no stack walk beyond them."""
    frame: Optional[FrameType] = _getframe(2)
    while frame is not None and frame.f_globals.get("__name__") in _INTERNAL_MODULES:
        frame = frame.f_back
    if frame is None:
        return None
    return (frame.f_code, frame.f_lasti)


def resolve(site: Optional[Site]) -> Optional[CallSite]:
    """The file and line of a recorded site (what ``frame.f_lineno`` said there)."""
    if site is None or isinstance(site, CallSite):
        return site
    code, offset = site
    return CallSite(code.co_filename, line_at(code, offset))


def line_at(code: types.CodeType, offset: int) -> int:
    """The line of the instruction at byte ``offset`` of ``code``, as the interpreter
    computes ``f_lineno`` for a frame stopped there."""
    if hasattr(code, "co_lines"):  # Python 3.10+
        for start, end, line in code.co_lines():
            if start <= offset < end:
                return code.co_firstlineno if line is None else line
        return code.co_firstlineno
    line = code.co_firstlineno  # pragma: no cover - Python 3.9 (its tests run in nox)
    for start, start_line in dis.findlinestarts(code):  # pragma: no cover
        if start > offset:
            break
        line = start_line
    return line  # pragma: no cover


# The running task, in C calls only: asyncio.current_task() is Python-level before 3.12
# (and raises without a running loop). Before 3.12 asyncio keeps the current task of
# each loop in _current_tasks, which its C tasks update; from 3.12 on current_task()
# itself is C (and from 3.14 that dictionary is no longer kept).
_get_running_loop = asyncio._get_running_loop
_task_of: Any = asyncio.current_task
if sys.version_info < (3, 12):  # pragma: no cover - version-dependent
    _task_of = getattr(asyncio.tasks, "_current_tasks", {}).get


def _current_task() -> Optional[asyncio.Task[Any]]:
    loop = _get_running_loop()
    return None if loop is None else _task_of(loop)


def _task_name(task: Optional[asyncio.Task[Any]]) -> str:
    return "no task" if task is None else f"task {task.get_name()!r}"


def _line(site: Optional[CallSite]) -> str:
    return "" if site is None else linecache.getline(site.filename, site.lineno).strip()


_WHAT = {
    "PG201": "an async generator provider was left before it finished",
    "PG202": "one session used by two tasks at once",
    "PG203": "a session used after its provider's scope exited",
    "PG204": "a provider was called and its result never used",
    "PG205": "a provider broke its own protocol",
    "PG206": "a session used from a task other than the one that opened it",
}


def finding(
    code: Code,
    info: ProviderInfo,
    where: Optional[Site],
    detail: str,
    fix: str,
    *,
    error_class: type = ProtocolError,
    note: str = "",
) -> ProtocolError:
    """Build the ProtocolError for a strict-mode finding (PG2xx)."""
    site = resolve(where)
    name = short_name(info)
    parts = [f"[{code}] {_WHAT[code]}: {name}()"]
    if site is not None:
        parts.append(f"  at {site}")
        source = _line(site)
        if source:
            parts.append(f"      {source}")
    parts.append(f"  {definition_line(info)}")
    parts.append(f"  {detail}")
    parts.append(fix_line(fix, note))  # the note is said, not part of .fix
    parts.append(f"  docs: {DOCS_URL}#{code.lower()}")
    error: ProtocolError = error_class(
        "\n".join(parts),
        code=code,
        provider=info,
        used=code,
        supported=k.SUPPORTED.get(info.kind, ()),
        call_site=site,
        fix=fix,
    )
    return error


# --- PG205: what a provider yields ---------------------------------------------------------


def declared_type(obj: Any, yields: Optional[type]) -> Optional[type]:
    """The session type a provider declares: ``yields=``, else its return annotation."""
    if yields is not None:
        return yields
    func = k._innermost(obj)
    func = inspect.unwrap(func) if inspect.isfunction(func) else func
    try:
        hint = typing.get_type_hints(func).get("return")
    except Exception:  # annotations that do not resolve at run time: no check
        return None
    if hint is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is not None and args:
        name = getattr(origin, "__name__", "")
        if name in {
            "AsyncIterator",
            "AsyncGenerator",
            "AsyncIterable",
            "Iterator",
            "Generator",
            "Iterable",
            "AbstractAsyncContextManager",
            "AbstractContextManager",
            "AsyncContextManager",
            "ContextManager",
        }:
            hint = args[0]
    if not isinstance(hint, type) or hint is object or hint is typing.Any:
        return None  # (typing.Any is a class from Python 3.11 on)
    return hint


def yield_site(gen: Any) -> Optional[Site]:
    """Where a suspended (async) generator is: the line of the ``yield`` it paused at."""
    frame = getattr(gen, "ag_frame", None) or getattr(gen, "gi_frame", None)
    return _site(frame)


def check_type(info: ProviderInfo, expected: Optional[type], value: Any, gen: Any) -> None:
    """PG205 if the provider handed out something that is not ``expected``; ``gen`` is
    the (async) generator that yielded it, whose ``yield`` is the place to report."""
    try:
        if expected is None or isinstance(value, expected):
            return
    except TypeError:  # a class that refuses isinstance(): nothing to check
        return
    report(
        finding(
            "PG205",
            info,
            (gen is not None and yield_site(gen)) or _site_of_definition(info),
            f"It declares that it yields {expected.__qualname__} but handed out "
            f"{k.describe(value)}.",
            f"hand out an instance of {expected.__qualname__} (or correct the annotation "
            f"or yields=)",
            error_class=ProviderRuntimeError,
        ),
        can_raise=True,
    )


def broke_protocol(info: ProviderInfo, where: Optional[Site], twice: bool) -> ProtocolError:
    """PG205 for a provider that yielded twice (``twice``) or never."""
    if twice:
        return finding(
            "PG205",
            info,
            where or _site_of_definition(info),
            "It yielded a second time; a provider must yield exactly once.",
            "remove the second 'yield' (loop over sessions outside the provider)",
            error_class=ProviderRuntimeError,
        )
    return finding(
        "PG205",
        info,
        where,
        "It finished without yielding a session.",
        "make every path of the provider reach its 'yield'",
        error_class=ProviderRuntimeError,
    )


def report_broken(error: ProtocolError, original: BaseException) -> NoReturn:
    """Count and act on a PG205; then, if the action let it pass, raise what Python
    would have raised (contextlib's RuntimeError): there is no session to go on with."""
    try:
        report(error, can_raise=True)
    except ProtocolError as raised:
        raise raised from original
    raise original


def _site_of_definition(info: ProviderInfo) -> Optional[CallSite]:
    if info.filename is None or info.lineno is None:
        return None
    return CallSite(info.filename, info.lineno)


# --- the watched session -----------------------------------------------------------------


# The sessions whose scope the current context is inside. A task copies its creator's
# context, so tasks started inside a provider's block (asyncio.gather in an endpoint)
# are inside the scope too; another request's task is not. That is PG206's test.
#
# A block's exit leaves its entry here, closed (``open`` False): a closed session's
# use is PG203 whatever this says, so the entry no longer matters. It goes when the
# next block opens in the same context, or with the context itself (for a request's
# task, when the request ends). That saves a context-variable write (and its Token) on
# every block's exit, and blocks may end in any order (FastAPI ends a function-scoped
# dependency before a request-scoped one opened earlier).
_scopes: ContextVar[tuple[Any, ...]] = ContextVar("protoguard_scopes", default=())


def _opened(state: SessionState) -> tuple[Any, ...]:
    """The scopes with ``state`` opened, the closed ones left out."""
    scopes = _scopes.get()
    if not scopes or (len(scopes) == 1 and not scopes[0].open):
        # The usual cases, without building a filter: the first block in a task (a
        # request's), or the next one in a task that opens one at a time (a websocket
        # handler's, a worker's).
        return (state,)
    return (*filter(_is_open, scopes), state)


_is_open = operator.attrgetter("open")  # filter(_is_open, scopes): no Python frame


class SessionState:
    """What strict mode knows about one session a provider handed out.

    A plain object with class defaults, made without ``__init__`` by :func:`watch`
    (``_new_state``): handing out a session runs no Python-level constructor.
    """

    info: ProviderInfo
    opened_at: Optional[Site] = None
    # Where findings say the block was opened, if not opened_at: the line of the user's
    # that opened a guarded provider handing out a guarded maker's session (see watch).
    shown_at: Optional[Site] = None
    # The state of the guarded provider that handed this session out, when it is a
    # guarded maker's (see watch): for what PG203's fix says of the provider's block.
    handed_by: Optional[SessionState] = None
    # The task that made the context manager (or the maker's session) whose block this
    # is, if not the one that entered it: see _carried_by_a_generator. Dropped with owner.
    made_in: Optional[asyncio.Task[Any]] = None
    open = True
    depth = 0  # calls on the session in progress (PG202; the SQLAlchemy listener)
    busy: Optional[asyncio.Task[Any]] = None  # the task inside a call (PG202)
    waiters: Optional[list[asyncio.Future[None]]] = None  # for busy to end
    # The task that opened it: held only while the scope is open (exit_scope drops
    # it), when that task is running the block anyway, so it keeps nothing alive.
    owner: Optional[asyncio.Task[Any]] = None
    # Whether the session's own 'with' block ends its scope: a coroutine provider's
    # session, which has no other. A context manager's or generator's session belongs
    # to the provider's block, which a `with session:` inside it (closing the session
    # for a helper's unit of work, as SQLAlchemy allows) does not end.
    own_block = False

    def enter_scope(self) -> None:
        """The provider's block begins here, in the current task and context."""
        loop = _get_running_loop()
        task = None if loop is None else _task_of(loop)
        if task is not None:
            self.owner = task
            _scopes.set(_opened(self))

    def provider_frame(self) -> Optional[FrameType]:
        """The frame of the provider's own code, if it has one (see _Driven's)."""
        return None

    def exit_scope(self) -> None:
        """The provider's block has ended: later uses are PG203."""
        self.open = False
        self.owner = self.made_in = None
        busy = self.busy  # set only while a task is inside a call (see _async_call)
        if busy is not None and busy is not _current_task():
            report_call_in_flight(self, busy)
        # Its entry in _scopes stays, closed (see _scopes).


def _carried_by_a_generator(
    state: SessionState, owner: asyncio.Task[Any], task: asyncio.Task[Any]
) -> bool:
    """Whether the session's block, still open, has outlived the task that opened it
    because a suspended async generator holds it: one that opened the block and yields
    the session (a pytest-asyncio fixture: before pytest-asyncio 0.25 on Python 3.11+,
    and 1.1 on 3.9/3.10, the fixture's setup, its test and its teardown each run in a
    task of their own, with no context in common), or the generator provider itself
    when its first step ran in a task of its own (``asyncio.gather(gen.__anext__(),
    ...)``, ``wait_for`` before 3.12). The block then goes where the generator's steps
    go, and a use from another task is no escape. A block whose task is still running
    (a request's, a streaming generator's) keeps PG206, and so does a session a
    coroutine made in a task that has ended (nothing holds its block).

    So does a context manager's block (a provider's, a guarded maker's session's) made
    in the task that uses it and entered in another that ended without leaving it: an
    entry by hand in a task of its own (``AsyncExitStack.enter_async_context`` under
    ``asyncio.shield``, or ``wait_for`` before 3.12), for the task that awaited it.
    Another task's use of such a block is still PG206 (a request that stashed a
    session it entered by hand, used by the next request)."""
    if not owner.done():
        return False
    if isinstance(state, GeneratorState) or isinstance(state.handed_by, GeneratorState):
        return True  # the provider's own generator, suspended at its 'yield'
    site = state.opened_at
    if site is not None and site[0].co_flags & _CO_ASYNC_GENERATOR:  # type: ignore[union-attr]
        return True  # opened in an async generator, suspended with the block open
    return state.made_in is task  # a context manager's block (see above)


def _opened_by_depends(site: Optional[CallSite]) -> bool:
    return site is not None and in_depends(site.filename)


def _opener(state: SessionState) -> str:
    """Where the session's block was opened, as a finding says it: ``at`` its line, or
    ``by FastAPI's Depends(get_db)`` when that line is FastAPI's own, which would tell
    the reader nothing."""
    site = resolve(state.shown_at or state.opened_at)
    if site is None:
        return "at an unknown place"
    if _opened_by_depends(site):
        return f"by FastAPI's Depends({short_name(state.info)})"
    return f"at {site}"


def _after_scope_fix(state: SessionState, site: Optional[Site], name: str) -> str:
    """PG203's fix for a use of the session after its block: for a block Depends()
    opened (a generator provider's or a context-manager provider's), how long FastAPI
    keeps it, and the provider entered where the late work runs."""
    # The provider's generator Depends() drove: this state's, or that of the provider
    # that handed out this guarded maker's session.
    driven = state if isinstance(state, _Driven) else state.handed_by
    if not (
        (isinstance(driven, _Driven) or state.info.kind in _DEPENDS_BLOCKS)
        and _opened_by_depends(resolve(state.shown_at or state.opened_at))
    ):
        block = _BLOCK_OF.get(state.info.kind, "'with' or 'async with' block")
        return f"use the session only inside the {block} that gave it"
    gen = driven.__wrapped__ if isinstance(driven, _Driven) else None
    code = getattr(gen, "ag_code", None) or getattr(gen, "gi_code", None)
    if code is None or "." in short_name(state.info):
        # A context manager's block, or a method's generator's, whose code counts its
        # self or cls (the source says whether it is a staticmethod).
        takes_arguments = defined_with_parameters(state.info)
    else:
        takes_arguments = bool(
            code.co_argcount
            or code.co_kwonlyargcount
            or code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)
        )
    info = state.info
    if info.kind == k.FUNCTION and code is not None:
        # A plain wrapper of a generator function: entered as the generator it returns.
        async_gen = code.co_flags & inspect.CO_ASYNC_GENERATOR
        info = info._replace(kind=k.ASYNC_GEN if async_gen else k.SYNC_GEN)
    provider = short_name(info)
    return (
        f"use the session only while FastAPI keeps {provider}'s block open (until the "
        f"endpoint returns, or until the response has been sent, depending on "
        f"Depends(scope=...) and the FastAPI version); for work that runs later (a "
        f"streaming response's body, a background task), open a session where it runs: "
        f"{open_where_used(info, takes_arguments, resolve(site), name)}"
    )


# The providers whose block Depends() opens and closes around the endpoint.
_DEPENDS_BLOCKS = frozenset({k.ASYNC_CM, k.SYNC_CM, k.ASYNC_GEN, k.SYNC_GEN})


# The block a session of each kind of provider belongs to, as PG203's fix names it (a
# plain function's session may be either kind's).
_BLOCK_OF = {
    k.ASYNC_CM: "'async with' block",
    k.ASYNC_GEN: "'async for' loop or 'async with' block",
    k.COROUTINE: "'async with' block",
    k.ASYNC_SESSIONMAKER: "'async with' block",
    k.SYNC_CM: "'with' block",
    k.SYNC_GEN: "'for' loop or 'with' block",
    k.SESSIONMAKER: "'with' block",
}

# Closing a session is the remedy for using it out of scope, never a misuse itself
# (aclose: AsyncSession's name for close that contextlib.aclosing() calls).
_ALWAYS_ALLOWED = frozenset({"close", "aclose"})

# Calls that are no PG203: they read the session's state or detach objects from it without
# touching the database, so they cannot take a connection after the block (`assert not
# session.in_transaction()` in a test). From another request's task they are PG206 still
# (expunge_all() there changes that request's session), and PG202 applies to them.
_HARMLESS_AFTER_THE_BLOCK = frozenset(
    {
        "reset",
        "invalidate",
        "in_transaction",
        "in_nested_transaction",
        "get_transaction",
        "get_nested_transaction",
        "expunge",
        "expunge_all",
        "expire",
        "expire_all",
        "get_bind",
        "is_modified",
    }
)


def _check_use(state: SessionState, name: str, site: Optional[Site]) -> None:
    """PG203 and PG206 at a use of the session (called when either may apply)."""
    if name in _ALWAYS_ALLOWED:
        return
    info = state.info
    if not state.open:
        if name in _HARMLESS_AFTER_THE_BLOCK:
            return
        report(
            finding(
                "PG203",
                info,
                site,
                f"'.{name}' on a session whose provider already closed it (the block "
                f"opened {_opener(state)} has exited); the session quietly checks out a new "
                f"connection outside the provider.",
                _after_scope_fix(state, site, name),
            ),
            can_raise=True,
        )
        return
    if outside_the_block(state):
        _from_another_task(state, f"'.{name}'", site)


def outside_the_block(state: SessionState) -> bool:
    """Whether the current task uses the session of ``state``'s open block from outside
    it: a task other than the one that opened it, not started inside it (PG206)."""
    owner = state.owner
    if owner is None or state in _scopes.get():
        return False
    task = _current_task()
    return not (task is None or task is owner or _carried_by_a_generator(state, owner, task))


def _from_another_task(state: SessionState, what: str, site: Optional[Site]) -> None:
    """PG206 for ``what`` (a call on the session, or on a query of it) outside the block."""
    report(
        finding(
            "PG206",
            state.info,
            site,
            f"{what} from {_task_name(_current_task())}, but the session was opened in "
            f"{_task_name(state.owner)} {_opener(state)} and "
            f"this task was not started inside that block: a session escaping its request can leak "
            f"one user's data into another's.",
            "open a session in the task that uses it (one provider call per task)",
        ),
        can_raise=True,
    )


# The session methods below take the site of their call from the frame that called them
# (the user's line, also when the coroutine runs later in another task, as under
# asyncio.gather): one frame read, no walk up the stack.


def _async_method(state: SessionState, name: str, method: Any) -> Any:
    qualname = getattr(method, "__qualname__", name)

    def call(*args: Any, **kwargs: Any) -> Any:
        coroutine: Any = _async_call(state, name, method, args, kwargs, _site(sys._getframe(1)))
        coroutine.__qualname__ = qualname  # see _watched_method
        return coroutine

    call.__name__ = call.__qualname__ = name
    return call


async def _async_call(
    state: SessionState,
    name: str,
    method: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    site: Optional[Site],
) -> Any:
    """One call of an async session method, checked for PG202/PG203/PG206."""
    loop = _get_running_loop()  # _current_task(), written out: this is every call
    task = None if loop is None else _task_of(loop)
    owner = state.owner
    if not state.open or (owner is not task and owner is not None and state not in _scopes.get()):
        _check_use(state, name, site)
    if task is None:
        state.depth += 1
        try:
            return await method(*args, **kwargs)
        finally:
            state.depth -= 1
    busy = state.busy
    if busy is not None and busy is not task:
        # Another task is inside a call on this session. Wait for it to finish
        # first, so that whatever the action, the two calls do not overlap and the
        # session's own state stays sound; then report.
        try:
            await _wait_idle(state)
        except BaseException:
            # Cancelled while it waited (a timeout around the call): the finding
            # stands, and the cancellation goes on, never replaced by it.
            report(_concurrent_use(state, name, site, task, busy, "cancelled"), can_raise=False)
            raise
        report(_concurrent_use(state, name, site, task, busy, "waited"), can_raise=True)
    if state.depth == 0:
        state.busy = task  # cleared when the call ends, so it never outlives the task
    state.depth += 1
    try:
        return await method(*args, **kwargs)
    finally:
        state.depth -= 1
        if state.depth == 0:
            state.busy = None
            if state.waiters is not None:
                waiters, state.waiters = state.waiters, None
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)


def _concurrent_use(
    state: SessionState,
    name: str,
    site: Optional[Site],
    task: Optional[asyncio.Task[Any]],
    busy: asyncio.Task[Any],
    then: str,
) -> ProtocolError:
    """PG202: ``.name`` called from ``task`` while ``busy`` is inside a call; ``then``:
    what became of the call, "waited" (for the first to finish), "cancelled" (while it
    waited) or "sync" (a sync method, which cannot wait)."""
    if then == "waited":
        what = "protoguard let the first call finish before this one."
    elif then == "cancelled":
        what = "This call was cancelled while protoguard had it wait for that one to finish."
    else:
        what = f"'.{name}' is a sync method, so it cannot wait for that call to finish."
    return finding(
        "PG202",
        state.info,
        site,
        f"'.{name}' from {_task_name(task)} while {_task_name(busy)} was still inside a "
        f"call on the same session; a session is not safe for concurrent use, and "
        f"SQLAlchemy does not always notice. {what}",
        "give each task its own session (one provider call per task), or "
        "await the calls one after the other",
    )


async def _wait_idle(state: SessionState) -> None:
    """Until no other task is inside a call on the session (PG202's serialisation)."""
    while state.busy is not None:
        waiter = asyncio.get_running_loop().create_future()
        if state.waiters is None:
            state.waiters = []
        state.waiters.append(waiter)
        await asyncio.shield(waiter)


def _sync_method(state: SessionState, name: str, method: Any) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        return _sync_call(state, name, method, args, kwargs, _site(sys._getframe(1)))

    call.__name__ = call.__qualname__ = name
    return call


def _sync_call(
    state: SessionState,
    name: str,
    method: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    site: Optional[Site],
) -> Any:
    """One call of a sync session method, checked for PG202/PG203/PG206."""
    owner = state.owner
    if not state.open or (owner is not None and state not in _scopes.get()):
        _check_use(state, name, site)
    busy = state.busy  # another task inside an async call on the session (PG202)
    if busy is not None:
        task = _current_task()
        if busy is not task:
            report(_concurrent_use(state, name, site, task, busy, "sync"), can_raise=True)
    # depth > 0 tells the SQLAlchemy event listener that this use was checked here.
    state.depth += 1
    try:
        return method(*args, **kwargs)
    finally:
        state.depth -= 1


def _watched_method(name: str, is_async: bool, qualname: str) -> Any:
    """A method of a session's watched class: the check and the call, no lookup."""
    call = _async_call if is_async else _sync_call

    def method(self: WatchedSession, *args: Any, **kwargs: Any) -> Any:
        frame = _getframe(1)  # _site(), written out: this is every call
        result: Any = call(
            self._self_state,
            name,
            getattr(self.__wrapped__, name),
            args,
            kwargs,
            (frame.f_code, frame.f_lasti),
        )
        if is_async:
            # Named as the session's own coroutine would be, for what Python says of
            # it: "coroutine 'AsyncSession.execute' was never awaited", its repr.
            result.__qualname__ = qualname
        return result

    method.__name__ = name
    method.__qualname__ = f"WatchedSession.{name}"
    return method


def _watched_query(watched: Any) -> Any:
    """A SQLAlchemy Session's query(), watched, whose Query is marked as the block's (see
    protoguard.sqlalchemy.watch_query): it runs on the session itself, later."""

    def query(self: WatchedSession, *args: Any, **kwargs: Any) -> Any:
        frame = _getframe(1)
        result = _sync_call(
            self._self_state,
            "query",
            self.__wrapped__.query,
            args,
            kwargs,
            (frame.f_code, frame.f_lasti),
        )
        sqlalchemy_events.watch_query(self.__wrapped__, result)
        return result

    query.__name__ = watched.__name__
    query.__qualname__ = watched.__qualname__
    # What inspect.signature() and help() show: the session's own method.
    query.__wrapped__ = watched.__wrapped__  # type: ignore[attr-defined]
    query.__doc__ = watched.__doc__
    return query


# id(session class) -> its WatchedSession subclass. Keyed by id(), with a weak reference
# that drops the entry when the class goes (see _remember): sessionmaker() makes a Session
# subclass of its own, and a service that makes a maker per request must not keep each
# one alive, with its watched class.
_WATCHED_CLASSES: dict[int, type[WatchedSession]] = {}
_CLASS_REFS: dict[int, weakref.ref[type]] = {}


def _remember(cls: type) -> int:
    """The key of ``cls`` in the caches here, which forget it when it is collected."""
    key = id(cls)
    if key not in _CLASS_REFS:
        _CLASS_REFS[key] = weakref.ref(cls, functools.partial(_forget, key))
    return key


def _forget(key: int, _: Any) -> None:
    _CLASS_REFS.pop(key, None)
    _WATCHED_CLASSES.pop(key, None)
    for cached in list(_IS_ASYNC):  # list(): a C copy, safe if another thread adds
        if cached[0] == key:
            _IS_ASYNC.pop(cached, None)


# How a watched class finds the SQLAlchemy Session whose events it listens to.
_NOT_SQLALCHEMY, _SYNC_SESSION, _ASYNC_SESSION = 0, 1, 2


def _watched_class(cls: type) -> type[WatchedSession]:
    """A WatchedSession subclass with a method for each public method of ``cls``, so a
    call like ``session.execute(...)`` is a plain method call rather than a miss in the
    proxy that __getattr__ resolves each time. Other names still go to __getattr__."""
    made = _WATCHED_CLASSES.get(id(cls))
    if made is None:
        methods: dict[str, Any] = {"_pg_sqlalchemy": _sqlalchemy_kind(cls)}
        for name in dir(cls):
            if name.startswith("_") or hasattr(WatchedSession, name):
                continue
            attr = inspect.getattr_static(cls, name, None)
            if isinstance(attr, types.FunctionType):
                method = _watched_method(name, inspect.iscoroutinefunction(attr), attr.__qualname__)
                # What inspect.signature() and help() show: the session's own method.
                method.__wrapped__, method.__doc__ = attr, attr.__doc__
                methods[name] = method
        if methods["_pg_sqlalchemy"] == _SYNC_SESSION and "query" in methods:
            methods["query"] = _watched_query(methods["query"])
        made = type("WatchedSession", (WatchedSession,), methods)
        made.__module__ = WatchedSession.__module__
        made.__qualname__ = WatchedSession.__qualname__
        _WATCHED_CLASSES[_remember(cls)] = made
    return made


# The session classes strict mode failed to watch (each warned about once), by id():
# some cannot be hashed. Each is kept, so that its id() is not reused by another class.
_UNWATCHABLE: dict[int, type] = {}


def _cannot_watch(cls: type, exc: Exception, opened_at: Optional[Site]) -> None:
    """An internal failure to watch sessions of ``cls``: one warning, at the line that
    opened the first such session, and the session handed out as it is; never an
    exception, even where warnings are errors."""
    if id(cls) in _UNWATCHABLE:
        return
    _UNWATCHABLE[id(cls)] = cls
    with contextlib.suppress(Exception):
        message = (
            f"protoguard could not watch sessions of class {cls.__qualname__!r} "
            f"({type(exc).__name__}: {exc}); strict mode's checks of their use (PG202, "
            f"PG203, PG206) are off for them, and they are handed out as they are."
        )
        site = resolve(opened_at)
        if site is None:
            warnings.warn(message, ProtocolWarning, stacklevel=3)
        else:
            warnings.warn_explicit(message, ProtocolWarning, site.filename, site.lineno)


def _sqlalchemy_kind(cls: type) -> int:
    # Looked up in sys.modules: an object of a SQLAlchemy class means SQLAlchemy is
    # imported, and protoguard never imports it itself.
    orm = sys.modules.get("sqlalchemy.orm")
    if orm is not None and issubclass(cls, orm.Session):
        return _SYNC_SESSION
    asyncio_ext = sys.modules.get("sqlalchemy.ext.asyncio")
    if asyncio_ext is not None and issubclass(cls, asyncio_ext.AsyncSession):
        return _ASYNC_SESSION
    return _NOT_SQLALCHEMY


def watch(
    value: Any,
    info: ProviderInfo,
    opened_at: Optional[Site],
    state: Optional[SessionState] = None,
    borrowed: bool = False,
) -> Any:
    """The session a provider handed out, watched with ``state`` (a new SessionState
    if None); anything else as it is. ``borrowed``: the provider was handed the session
    (it is one of the call's arguments), so it stays the caller's after the block."""
    cls = type(value)
    try:
        watched = _WATCHED_CLASSES.get(id(cls))
        if watched is None:
            if issubclass(cls, StrictSessionProxy):
                # A guarded maker's session, entered in the provider (``async with
                # SessionLocal() as s: yield s``, both guarded): watched already, its
                # block the maker's, inside the provider's. Its findings name the
                # provider and the line the user wrote that opened it (shown_at), not a
                # line inside the provider. (Not a session the provider was handed: the
                # caller's.)
                adopted = value._self_state
                if not borrowed and adopted.open:
                    adopted.info, adopted.shown_at = info, opened_at
                    adopted.handed_by = state
                return value
            if (
                not callable(getattr(cls, "execute", None))
                or issubclass(cls, WatchedSession)
                or callable(value)
            ):
                # Not a session (a scoped_session registry is callable, and has
                # execute() too), or one that is watched already (another provider's,
                # handed to a helper: it stays its opener's).
                return value
            if id(cls) in _UNWATCHABLE:
                return value
            watched = _watched_class(cls)
    except Exception as exc:  # a class that breaks dir(), hash(), getattr(), ...
        _cannot_watch(cls, exc, opened_at)
        return value
    if state is None:
        state = _new_state(SessionState)
    state.info = info
    state.opened_at = opened_at
    state.open = True  # read on every call: an instance value (see _StrictGenerator)
    state.waiters = None
    # state.enter_scope(), written out: this is every provider use.
    loop = _get_running_loop()
    task = None if loop is None else _task_of(loop)
    if task is not None:
        state.owner = task
        _scopes.set(_opened(state))
    kind = watched._pg_sqlalchemy
    if kind and not borrowed:
        # Not for a session the provider was handed: when its block ends, the session
        # is still the caller's to use. _listen_as(), written out: every provider use.
        target = value if kind == _SYNC_SESSION else value.sync_session
        try:
            current = target.__dict__.get("_protoguard_state")
            if current is None or not current.open:
                target._protoguard_state = state  # sqlalchemy_events.STATE, written out
        except (AttributeError, TypeError):  # pragma: no cover - a Session with __slots__
            pass  # its other checks still hold; only the listener's PG203 cannot see it
        if not sqlalchemy_events._installed:  # installed(), without the call
            sqlalchemy_events.install()
    proxy = watched(value)
    proxy._self_state = state
    return proxy


def _listen_as(session: Any, kind: int, state: SessionState) -> None:
    """Let the SQLAlchemy listener judge ``session``'s new transactions by ``state``: the
    Session whose after_begin it sees carries the state with it. A block nested in
    another block of the same session (a provider that joins its caller's unit of work)
    leaves the outer block's state there while it is open: the outer block is still the
    session's, after the inner one ends."""
    target = session if kind == _SYNC_SESSION else session.sync_session
    try:
        current = target.__dict__.get("_protoguard_state")
        if current is None or not current.open:
            target._protoguard_state = state  # sqlalchemy_events.STATE, written out
    except (AttributeError, TypeError):  # pragma: no cover - a Session with __slots__
        pass  # its other checks still hold; only the listener's PG203 cannot see it
    if not sqlalchemy_events._installed:  # installed(), without the call
        sqlalchemy_events.install()


def _stack(frame: Optional[FrameType]) -> Iterator[tuple[FrameType, bool]]:
    """``frame`` and its callers, each with whether it was reached by leaving a greenlet
    of SQLAlchemy's. An AsyncSession's loads run in such a greenlet, whose stack ends at
    its own start; the walk goes on where the greenlets above it were left."""
    getcurrent = getattr(sys.modules.get("greenlet"), "getcurrent", None)
    current = None if getcurrent is None else getcurrent()
    left_sqlalchemy = False
    for _ in range(100):  # a bound: greenlets nest a few deep, never this many
        while frame is not None:
            yield frame, left_sqlalchemy
            frame = frame.f_back
        if current is None:
            return
        left_sqlalchemy = str(type(current).__module__).startswith("sqlalchemy.")
        current = getattr(current, "parent", None)
        frame = getattr(current, "gr_frame", None)


_LOADING_MODULES = ("sqlalchemy.", "greenlet", "protoguard.", "asyncio.")


def _outside_sqlalchemy(frames: list[tuple[FrameType, bool]]) -> Optional[Site]:
    """The innermost user frame that is neither protoguard's, SQLAlchemy's nor asyncio's.
    Past the start of SQLAlchemy's greenlet it must be a coroutine's, the one that
    awaited SQLAlchemy (``await obj.awaitable_attrs.name``); any other frame there means
    the load was a task of its own (``asyncio.gather(obj.awaitable_attrs.name)``), whose
    awaiting line is on no stack: no place then, rather than the event loop's."""
    for frame, left_sqlalchemy in frames:
        if str(frame.f_globals.get("__name__", "")).startswith(_LOADING_MODULES):
            continue
        if left_sqlalchemy and not frame.f_code.co_flags & _CO_AWAITING:
            return None
        return _site(frame)
    return None


_CO_AWAITING = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


def in_provider_code(state: SessionState) -> bool:
    """Whether the provider's own code after its 'yield' is on this stack (its frame,
    past SQLAlchemy's greenlet for an AsyncSession): see _Driven.provider_frame."""
    own = state.provider_frame()
    return own is not None and any(frame is own for frame, _ in _stack(sys._getframe(1)))


def connection_after_scope(state: SessionState) -> None:
    """SQLAlchemy's after_begin, for a session whose provider's scope has exited, as an
    object it loaded loads an attribute: PG203, unless the provider's own code after
    its 'yield' is loading it (a reload of what its own commit expired)."""
    frames = list(_stack(user_frame(2)))
    own = state.provider_frame()
    if own is not None and any(frame is own for frame, _ in frames):
        return
    report(
        finding(
            "PG203",
            state.info,
            _outside_sqlalchemy(frames),
            f"The session checked out a new connection after its provider's block "
            f"(opened {_opener(state)}) exited: an object it "
            f"loaded was used (a lazy-loaded attribute, say), outside the provider's "
            f"control.",
            "load what you need inside the block (selectinload/joinedload, or read the "
            "attributes there), or expunge the objects before the block ends",
        ),
        can_raise=False,
        when="when the session took a new connection",
    )


def query_used(state: SessionState, name: str, frame: FrameType) -> None:
    """A legacy Query made in the block runs (``frame``: the user's, that called
    ``.name`` on it) before its session is used: from a task outside the block while it
    is open, PG206 there; after the block, PG203 there, unless the provider's own code
    after its 'yield' runs it."""
    what = "iterating a query" if name == "__iter__" else f"'.{name}' on a query"
    if state.open:
        _from_another_task(state, what, _site(frame))
        return
    if in_provider_code(state):
        return
    block = _BLOCK_OF.get(state.info.kind, "'with' or 'async with' block")
    report(
        finding(
            "PG203",
            state.info,
            _site(frame),
            f"{what} made in the block opened {_opener(state)}, which has exited: the "
            f"query runs on the session its provider already closed, which quietly checks "
            f"out a new connection outside the provider.",
            f"run the query inside the {block} that gave its session",
        ),
        can_raise=True,
    )


def _call_of(task: asyncio.Task[Any]) -> tuple[str, Optional[Site]]:
    """The session method ``task`` is inside and where it was called (read off the
    task's stack: only when a finding is made)."""
    awaitable: Any = task.get_coro()
    for _ in range(1000):  # a bound, for an awaitable chain that loops
        if awaitable is None:
            break
        if getattr(awaitable, "cr_code", None) is _async_call.__code__:
            names = awaitable.cr_frame.f_locals
            return names.get("name", "?"), names.get("site")
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "ag_await", None)
    return "?", None


def report_call_in_flight(state: SessionState, task: asyncio.Task[Any]) -> None:
    """PG203 at a block's exit: another task is still inside a call on the session."""
    name, site = _call_of(task)
    report(
        finding(
            "PG203",
            state.info,
            site,
            f"'.{name}' from {_task_name(task)} was still running when the provider's block "
            f"(opened {_opener(state)}) exited in "
            f"{_task_name(_current_task())}: the call goes on using the session outside the "
            f"provider's control, and the provider may close the session under it.",
            "await the tasks that use the session before the block that gave it ends",
        ),
        can_raise=False,
        when="when the provider's block exited",
    )


def close_scope(session: Any) -> None:
    """The provider's scope for ``session`` has exited: later uses are PG203."""
    if isinstance(session, WatchedSession):
        session._self_state.exit_scope()


# What a session's method is, taken from the session: a bound method (Python's or C's),
# or the partial that a functools.partialmethod gives.
_BOUND_METHODS = (types.MethodType, types.BuiltinMethodType, functools.partial)

# (id(session type), method name) -> whether the method is a coroutine function (an
# entry goes with its type: see _remember).
_IS_ASYNC: dict[tuple[int, str], bool] = {}


class WatchedSession(_BaseProxy):  # type: ignore[misc]
    """A session in strict mode: each method call is checked for PG202/PG203/PG206.

    Made by :func:`watch`, which sets ``_self_state`` (no Python-level ``__init__``).
    """

    _self_state: SessionState
    _pg_sqlalchemy = _NOT_SQLALCHEMY
    __getattribute__ = _FAST_GETATTRIBUTE  # as SessionProxy's (see _proxies)

    def __getattr__(self, name: str) -> Any:
        wrapped = self.__wrapped__
        value = getattr(wrapped, name)
        # Methods only: a callable attribute that is not one is handed out as it is
        # (Session.no_autoflush is a context manager, callable as a decorator).
        if name.startswith("_") or not isinstance(value, _BOUND_METHODS):
            return value
        key = (id(type(wrapped)), name)
        is_async = _IS_ASYNC.get(key)
        if is_async is None:
            _remember(type(wrapped))
            is_async = _IS_ASYNC[key] = inspect.iscoroutinefunction(value)
        if is_async:
            return _async_method(self._self_state, name, value)
        return _sync_method(self._self_state, name, value)

    # `async with session:` on a watched AsyncSession keeps handing out the watched one.
    async def __aenter__(self) -> Any:
        await type(self.__wrapped__).__aenter__(self.__wrapped__)
        self._pg_reenter()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await type(self.__wrapped__).__aexit__(self.__wrapped__, *exc_info)
        finally:
            self._pg_leave()

    def __enter__(self) -> Any:
        type(self.__wrapped__).__enter__(self.__wrapped__)
        self._pg_reenter()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return type(self.__wrapped__).__exit__(self.__wrapped__, *exc_info)
        finally:
            self._pg_leave()

    def _pg_leave(self) -> None:
        state = self._self_state
        if state.own_block:
            state.exit_scope()

    def _pg_reenter(self) -> None:
        """A coroutine provider's session entered again after its block ended (as
        SQLAlchemy allows): a new scope, in the task and context entering it."""
        old = self._self_state
        if old.own_block and not old.open:
            self._self_state = state = _new_state(SessionState)
            state.info, state.opened_at, state.own_block = old.info, caller_site(), True
            state.enter_scope()
            if self._pg_sqlalchemy:
                _listen_as(self.__wrapped__, self._pg_sqlalchemy, state)

    def __iter__(self) -> Any:
        return iter(self.__wrapped__)

    __repr__ = _wrapped_repr

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(f"cannot pickle a watched {type(self.__wrapped__).__name__}")


# --- PG204: called and never used --------------------------------------------------------


def _never_used(info: ProviderInfo, where: Optional[Site], what: str) -> None:
    site = resolve(where)
    fix = right_use(info, site)
    note = ""
    if site is not None and needs_async_def(fix):  # (the parse only where it may matter)
        # What ran the call (a lambda is a plain function, whatever def it is in), as
        # run time and `check` say for PG1xx.
        code = None if where is None or isinstance(where, CallSite) else where[0]
        plain_def = plain_def_of(code, site.filename, site.lineno, short_name(info))
        note = async_def_note(fix, plain_def)
    report(
        finding(
            "PG204",
            info,
            site,
            f"The {what} it returned here was garbage-collected without being "
            f"{'awaited' if info.kind == k.COROUTINE else 'entered or iterated'}; "
            f"whatever it was meant to do did not happen.",
            fix,
            note=note,
        ),
        can_raise=False,
    )


# --- strict context managers ---------------------------------------------------------------


def argument_ids(args: tuple[Any, ...], kwds: dict[str, Any]) -> Optional[tuple[int, ...]]:
    """The id() of each argument of a provider call (None without arguments): enough to
    tell, at entry, that the provider hands out a session it was given."""
    if not (args or kwds):
        return None
    return (*map(id, args), *map(id, kwds.values()))


class _StrictCM:
    """Strict-mode state shared by both context-manager classes (a mixin)."""

    _self_provider: ProviderInfo
    _pg_expected: Optional[type] = None
    _pg_site: Optional[Site] = None
    _pg_session: Any = None
    _pg_made_in: Optional[asyncio.Task[Any]] = None
    # id() of each argument of the call (alive while the block is entered: the
    # generator's frame holds them), or None for a call without arguments.
    _pg_argument_ids: Optional[tuple[int, ...]] = None

    def _pg_after_enter(self, value: Any) -> Any:
        gen = self.gen  # type: ignore[attr-defined]
        check_type(self._self_provider, self._pg_expected, value, gen)
        # A transaction helper (`with transaction(session) as s:`) hands out the session
        # it was given. (Identities, not the arguments: contextlib let go of those.)
        ids = self._pg_argument_ids
        borrowed = ids is not None and id(value) in ids
        session = watch(value, self._self_provider, self._pg_site, borrowed=borrowed)
        # Only a session this block watched is its own to close: one handed in watched
        # already (the caller's, given to a transaction helper) stays its opener's.
        self._pg_session = None if session is value else session
        adopted = (  # a guarded maker's session the provider entered (see watch)
            session is value
            and not borrowed
            and isinstance(value, StrictSessionProxy)
            and value._self_state.info is self._self_provider
        )
        if self._pg_session is not None or adopted:
            session._self_state.made_in = self._pg_made_in  # see _carried_by_a_generator
        self._pg_made_in = None
        return session

    def _pg_enter_error(self, exc: RuntimeError) -> NoReturn:
        if str(exc) == "generator didn't yield":
            report_broken(broke_protocol(self._self_provider, self._pg_site, twice=False), exc)
        raise exc

    def _pg_decorate(self, func: Any) -> Any:
        """``__call__``: used as a decorator (contextlib's ContextDecorator), each call of
        the decorated function enters a fresh copy of it, and this one is never entered
        itself (no PG204)."""
        self._pg_decorator = True
        return super().__call__(func)  # type: ignore[misc]

    def __del__(self) -> None:
        attrs = self.__dict__
        if "func" in attrs and not (attrs.get("_self_pg_reported") or attrs.get("_pg_decorator")):
            _never_used(self._self_provider, self._pg_site, "context manager")


class StrictAsyncContextManager(_StrictCM, GuardedAsyncContextManager):
    """An ``@asynccontextmanager`` result in strict mode."""

    if hasattr(contextlib, "AsyncContextDecorator"):  # Python 3.10+: a decorator too
        __call__ = _StrictCM._pg_decorate

    def __init__(self, func: Any, args: Any, kwds: Any) -> None:
        super().__init__(func, args, kwds)
        self._pg_site = caller_site()
        self._pg_argument_ids = argument_ids(args, kwds)
        self._pg_made_in = _current_task()  # the task whose context manager it is

    async def __aenter__(self) -> Any:
        try:
            value = await GuardedAsyncContextManager.__aenter__(self)
        except RuntimeError as exc:
            self._pg_enter_error(exc)
        return self._pg_after_enter(value)

    async def __aexit__(self, typ: Any, value: Any, tb: Any) -> Any:
        try:
            if typ is None:
                # contextlib's normal exit, but with the second yield's line in hand
                # before the generator is closed (contextlib closes it first on 3.10+).
                try:
                    await self.gen.__anext__()
                except StopAsyncIteration:
                    return False
                where = yield_site(self.gen)
                try:
                    report_broken(
                        broke_protocol(self._self_provider, where, twice=True),
                        RuntimeError("generator didn't stop"),
                    )
                finally:
                    await self.gen.aclose()
            return await GuardedAsyncContextManager.__aexit__(self, typ, value, tb)
        finally:
            close_scope(self._pg_session)


class StrictContextManager(_StrictCM, GuardedContextManager):
    """A ``@contextmanager`` result in strict mode."""

    __call__ = _StrictCM._pg_decorate

    def __init__(self, func: Any, args: Any, kwds: Any) -> None:
        super().__init__(func, args, kwds)
        self._pg_site = caller_site()
        self._pg_argument_ids = argument_ids(args, kwds)

    def __enter__(self) -> Any:
        try:
            value = GuardedContextManager.__enter__(self)
        except RuntimeError as exc:
            self._pg_enter_error(exc)
        return self._pg_after_enter(value)

    def __exit__(self, typ: Any, value: Any, tb: Any) -> Any:
        try:
            if typ is None:  # as in StrictAsyncContextManager.__aexit__
                try:
                    next(self.gen)
                except StopIteration:
                    return False
                where = yield_site(self.gen)
                try:
                    report_broken(
                        broke_protocol(self._self_provider, where, twice=True),
                        RuntimeError("generator didn't stop"),
                    )
                finally:
                    self.gen.close()
            return GuardedContextManager.__exit__(self, typ, value, tb)
        finally:
            close_scope(self._pg_session)


# --- strict generators -------------------------------------------------------------------


class GeneratorState(SessionState):
    """Strict-mode state of one generator provider's result.

    A plain object with class defaults, made without ``__init__`` (``_new_state``):
    a provider call sets one attribute and runs no Python-level constructor. It is
    kept apart from the wrapt proxy because attribute access on a proxy costs several
    times what it costs on a plain object. An async generator yields one session, and
    this is also that session's SessionState (one object per provider use); a
    generator's sessions each get their own (``scope``).
    """

    called_at: Optional[Site] = None
    iterated_at: Optional[Site] = None
    started = False
    yielded = False
    done = False
    reported = False  # PG201 or PG205 said it, once
    scope: Optional[SessionState] = None  # a generator's latest session's, while open
    # The arguments the provider was called with, while it may hand one out (see
    # _handed_in); None if none.
    arguments: Optional[tuple[Any, ...]] = None
    # The task whose end is PG201's deadline, and the callback it would run.
    task: Optional[weakref.ref[asyncio.Task[Any]]] = None
    on_task_end: Any = None
    # The generator, once its scope ends before its code after 'yield' runs (a loop
    # left early, whose generator protoguard closes): see provider_frame.
    gen_ref: Optional[weakref.ref[Any]] = None

    def provider_frame(self) -> Optional[FrameType]:
        """The generator's frame while its code after 'yield' runs after its scope ended
        (see _Driven.provider_frame): its loads then are its own, not a use."""
        gen = self.gen_ref() if self.gen_ref is not None else None
        frame: Optional[FrameType] = getattr(gen, "ag_frame", None) or getattr(
            gen, "gi_frame", None
        )
        return frame

    def watch_task(self, task: asyncio.Task[Any], callback: Any) -> None:
        self.task, self.on_task_end = weakref.ref(task), callback
        task.add_done_callback(callback)

    def finish(self) -> None:
        self.done = True
        self.arguments = None
        self.exit_scope()  # an async generator's session (a no-op if it handed out none)
        scope = self.scope
        if scope is not None:
            self.scope = None
            scope.exit_scope()
        # A long-lived task (a websocket handler) iterates many generators: take our
        # callback off it again, or the task's callback list grows with every loop.
        if self.task is not None:
            task = self.task()
            if task is not None:
                task.remove_done_callback(self.on_task_end)
            self.task = self.on_task_end = None


class _StrictGenerator:
    """What the strict generator proxies share (a mixin)."""

    _self_provider: ProviderInfo
    _self_expected: Optional[type] = None
    _self_state: GeneratorState

    def __init__(self, wrapped: Any) -> None:
        self.__wrapped__ = wrapped  # _ResultProxy.__init__, written out
        self._self_state = state = _new_state(GeneratorState)
        # Read on every step: as instance values they are read faster than class
        # defaults (Python specialises the instance attribute loads).
        state.yielded = False
        state.iterated_at = None
        # caller_site(), written out: this is every provider call. Frame 1 is always
        # protoguard's own call of the provider (_decorator), so the walk starts above it.
        caller = _getframe(2)
        frame: Optional[FrameType] = caller
        if caller.f_code is _CONTEXTLIB_INIT:
            # @asynccontextmanager's helper made the context manager that calls the
            # provider (FastAPI's Depends does): its caller is two frames up, and
            # going there directly skips making a frame object for the helper.
            try:
                frame = _getframe(4)
            except ValueError:  # pragma: no cover - the helper called from C
                frame = None
        while frame is not None and frame.f_globals.get("__name__") in _INTERNAL_MODULES:
            frame = frame.f_back
        if frame is not None:
            state.called_at = (frame.f_code, frame.f_lasti)

    def _pg_handed_out(self, state: GeneratorState, value: Any) -> Any:
        """A generator's yielded value, checked (PG205: declared type) and watched."""
        state.yielded = True
        gen = self.__wrapped__
        if self._self_expected is not None:
            check_type(self._self_provider, self._self_expected, value, gen)
        if state.scope is not None:  # the previous session's (PG205's "twice" is
            state.scope.exit_scope()  # checked for async generators only)
        borrowed = state.arguments is not None and _handed_in(state, value)
        session = watch(
            value, self._self_provider, state.iterated_at or state.called_at, borrowed=borrowed
        )
        # (A session handed in watched already stays its opener's: see _pg_after_enter.)
        state.scope = None if session is value else session._self_state
        return session

    def _pg_left_early(self) -> ProtocolError:
        info = self._self_provider
        site = resolve(self._self_state.iterated_at)
        fix = enter_once(info, site)
        return finding(
            "PG201",
            info,
            self._self_state.iterated_at,
            "The loop was left (return/break/exception) before the generator finished, "
            "so the provider's code after 'yield' (commit, close, returning the connection "
            "to the pool) did not run when it should have; protoguard has scheduled the "
            "generator's close on the event loop. Enter the provider once, as it is, as "
            "Depends() does (its cleanup then runs however the block is left), or let the "
            "loop run to its end.",
            fix,
            note=enter_once_note(info, site, fix),
        )


def _handed_in(state: GeneratorState, value: Any) -> bool:
    """Whether ``value``, handed out, is one of the arguments the provider was called
    with (``state.arguments``, set by the guarded provider's call): a transaction helper
    given the caller's session (``for tx in transaction(session):``, ``Depends()`` on a
    dependency that takes the session), which stays the caller's after the helper's
    block (see ``watch``'s ``borrowed``). What a parameter holds at the 'yield' would
    not do: one may be rebound to the provider's own session (``session = session or
    Session()``)."""
    arguments = state.arguments
    return arguments is not None and any(argument is value for argument in arguments)


def _close_later(gen: Any, in_a_callback: bool = False) -> None:
    """Close an abandoned async generator on the running loop, if there is one.

    The close task's first step comes one loop iteration after the callbacks of a task
    that is ending, as with asyncio's own finaliser: when that task is asyncio.run()'s
    own (the run is ending), the close is then cancelled before it starts, with the
    loop's other tasks, and the cancellation reaches the generator at its 'yield', so
    its cleanup runs whole while asyncio.run() waits for the cancelled tasks. A close
    that started sooner would be cancelled inside the provider's cleanup, its
    connection left checked out. So: a task at once from a task's done callback
    (``in_a_callback``), and from anywhere else (a finaliser, run inside the task's
    last step) a callback that makes the task."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop here: asyncio's own async-generator finaliser will close it
    if in_a_callback:
        _start_closing(loop, gen)
    else:
        loop.call_soon(_start_closing, loop, gen)


def _start_closing(loop: asyncio.AbstractEventLoop, gen: Any) -> None:
    task = loop.create_task(gen.aclose())
    _closing.add(task)  # the loop keeps only a weak reference to its tasks
    task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[Any]] = set()


def _left(state: GeneratorState, gen: Any) -> None:
    """A loop over the generator was left early: a use of its session from here on is
    PG203, while its own code after 'yield', which protoguard runs as it closes it, is
    the provider's (provider_frame)."""
    state.gen_ref = weakref.ref(gen)
    state.finish()


def _task_ended(proxy_ref: weakref.ref[Any], task: Any) -> None:
    proxy = proxy_ref()
    if proxy is None:
        return
    state: GeneratorState = proxy._self_state
    if state.done or state.reported:
        return
    state.reported = True
    # First: the connection goes back whatever the report does.
    _close_later(proxy.__wrapped__, in_a_callback=True)
    _left(state, proxy.__wrapped__)
    report(proxy._pg_left_early(), can_raise=False, when="when the task that began the loop ended")


class StrictAsyncGeneratorProxy(_StrictGenerator, AsyncGeneratorProxy):
    """An async generator provider's result in strict mode."""

    def __aiter__(self) -> Any:
        state = self._self_state
        state.iterated_at = site = caller_site()
        state.started = True
        # (caller_site() gives a (code, offset) pair, never a CallSite.)
        if state.task is None and (
            site is None or not site[0].co_flags & _CO_ASYNC_GENERATOR  # type: ignore[union-attr]
        ):
            # Not for a loop in an async generator (a pytest-asyncio fixture, a stream):
            # its steps may run in other tasks than the one that began the loop, which
            # then ends with the loop only suspended, not left. Collection still tells.
            task = _current_task()
            if task is not None:
                state.watch_task(task, functools.partial(_task_ended, weakref.ref(self)))
        return self

    def __anext__(self) -> Any:
        state = self._self_state
        if state.yielded and state.iterated_at is None and _CONTEXTLIB_CLOSES:
            # anext() after the session was handed out, outside an `async for`: contextlib
            # (Depends(), @asynccontextmanager) leaving the block. The block is over, so
            # the scope ends here, before the provider's code after 'yield' runs (which
            # uses the session itself, not the watched one), and the generator's own
            # awaitable goes back as it is: contextlib's StopAsyncIteration passes no
            # frame of protoguard's. A second 'yield' (PG205) is found when contextlib
            # closes the generator that did not stop (see _yielded_again).
            state.done = True  # state.finish(), less the task callback: there is none
            state.exit_scope()
            state.gen_ref = weakref.ref(self.__wrapped__)  # its cleanup's loads are its own
            return self.__wrapped__.__anext__()
        return _strict_anext(self, state)

    def asend(self, sent: Any) -> Any:
        """A step that sends ``sent`` in: ``asend(None)`` is ``anext()`` (as some drivers
        step a generator); another value is checked as that step would be (the session
        handed out watched, the scope ended when the provider finishes or is left, PG205),
        and is what the provider's 'yield' evaluates to."""
        if sent is None:
            return self.__anext__()
        state = self._self_state
        if state.yielded and state.iterated_at is None and _CONTEXTLIB_CLOSES:
            # The session was handed out, and this step, by hand, leaves the block (see
            # __anext__).
            state.done = True
            state.exit_scope()
            state.gen_ref = weakref.ref(self.__wrapped__)
            return self.__wrapped__.asend(sent)
        return _strict_anext(self, state, sent)

    async def athrow(self, *args: Any) -> Any:
        try:
            return await self.__wrapped__.athrow(*args)
        except BaseException:
            self._self_state.finish()
            raise

    def aclose(self) -> Any:
        return _aclose(self._self_state, self.__wrapped__, self._self_provider)

    def __del__(self) -> None:
        state = self._self_state
        if state.done and state.yielded:
            # It handed out its session and is over (contextlib's exit, the usual case,
            # so tested first): nothing below can apply. (A second 'yield' after
            # contextlib's exit is found when contextlib closes the generator; one
            # driven by hand with anext() and dropped unclosed is not looked at again.)
            return
        if self._self_pg_reported:
            return  # a PG1xx misuse was already raised for it
        if not state.started:
            if not state.done:  # (closed before it started: not forgotten, closed)
                _never_used(self._self_provider, state.called_at, "async generator")
        elif not (state.done or state.reported or state.iterated_at is None):
            state.reported = True
            _close_later(self.__wrapped__)  # first, as in _task_ended
            _left(state, self.__wrapped__)
            report(self._pg_left_early(), can_raise=False)


async def _aclose(state: GeneratorState, gen: Any, info: ProviderInfo) -> None:
    """Close an async generator provider's generator (PG205 if it yielded again)."""
    twice = _yielded_again(state, gen, info)
    try:
        await gen.aclose()
    finally:
        state.finish()
        if twice:
            # contextlib (3.11+) closes a generator that did not stop; Python's error
            # ("generator didn't stop") becomes this one's __context__, and so does an
            # error of the provider's cleanup.
            report(twice, can_raise=True)


_CO_ASYNC_GENERATOR = inspect.CO_ASYNC_GENERATOR

# From 3.11 on contextlib closes an async generator that did not stop at its exit, so
# strict mode can find a second 'yield' there instead of in a wrapper around the step.
_CONTEXTLIB_CLOSES = sys.version_info >= (3, 11)


async def _strict_anext(
    proxy: StrictAsyncGeneratorProxy, state: GeneratorState, sent: Any = None
) -> Any:
    """A step of an async generator provider in strict mode (``asend(sent)`` if ``sent``
    is not None): the first hands out the session (checked and watched); in an `async
    for`, a second is PG205 or the end."""
    state.started = True
    gen = proxy.__wrapped__
    try:
        value = await (gen.__anext__() if sent is None else gen.asend(sent))
    except StopAsyncIteration as stop:
        state.finish()
        if not state.yielded:
            _never_yielded(proxy, state, stop)
        raise
    except BaseException:  # it is over either way
        state.finish()
        raise
    if state.yielded:
        if state.iterated_at is not None and _findings.table.action != _findings.RAISE:
            # An `async for` loop, and the action lets it pass: the loop goes on as it
            # would without protoguard, with what the second 'yield' handed out (not
            # watched: the finding said what is wrong).
            state.reported = True
            where = yield_site(gen)
            report(broke_protocol(proxy._self_provider, where, twice=True), can_raise=True)
            return value
        state.finish()
        await _aclose_yielded_twice(state, gen, proxy._self_provider)
        raise RuntimeError("generator didn't stop")
    # What _pg_handed_out does, with this state as the session's (see GeneratorState).
    state.yielded = True
    expected = proxy._self_expected
    if expected is not None:
        try:
            check_type(proxy._self_provider, expected, value, gen)
        except ProtocolError:
            state.reported = True  # PG205 said it all; no PG201 for the same generator
            _close_later(gen)
            raise
    borrowed = state.arguments is not None and _handed_in(state, value)
    return watch(value, proxy._self_provider, state.iterated_at or state.called_at, state, borrowed)


def _never_yielded(proxy: Any, state: GeneratorState, stop: BaseException) -> None:
    """PG205 for a generator provider that finished without yielding (its first step
    stopped); if the action lets it pass, ``stop`` goes on: the loop ends, or contextlib
    raises its own "generator didn't yield"."""
    state.reported = True
    info = proxy._self_provider
    # In a loop, the loop's line; under contextlib (Depends()), the provider itself,
    # which is what needs the fix (where contextlib was called is not the user's).
    where = state.iterated_at or _site_of_definition(info)
    report_broken(broke_protocol(info, where, twice=False), stop)


def _yielded_again(state: GeneratorState, gen: Any, info: ProviderInfo) -> Optional[ProtocolError]:
    """PG205, if an async generator that contextlib left (``done`` already, see
    ``__anext__``) yielded a second time instead of finishing: it is then suspended
    at that 'yield'."""
    if (
        not state.done
        or state.reported
        or gen.ag_frame is None
        or gen.ag_running
        or gen.ag_await is not None  # suspended in an await of its cleanup, not a yield
    ):
        return None
    state.reported = True
    return broke_protocol(info, yield_site(gen), twice=True)


# --- generators driven by contextlib ------------------------------------------------------


class _Driven(GeneratorState):
    """A generator provider's generator as contextlib drives it, in strict mode.

    ``asynccontextmanager(provider)(...)`` (what FastAPI's ``Depends()`` does on every
    request) and ``contextmanager(provider)(...)`` make the generator inside contextlib,
    which keeps it to itself and drives it by the protocol: one step to enter the block,
    one step or a throw to leave it, a close if it did not stop. Nobody can misuse it or
    leave it early, so this is not a transparent proxy like StrictAsyncGeneratorProxy
    but a plain object with the methods contextlib calls and no finaliser: it is also
    the state of the session it hands out (``watch``), one object per provider use.

    PG202, PG203, PG205 and PG206 hold as for the proxy; PG201 and PG204 cannot happen
    to a generator contextlib drives (a context manager made and never entered is
    contextlib's object, not the provider's result, and is not reported).
    """

    _self_provider: ProviderInfo  # class attributes, set per provider by strict_class()
    _self_expected: Optional[type] = None
    __wrapped__: Any  # the generator

    def __init__(self, gen: Any) -> None:
        self.__wrapped__ = gen
        # Read on every step: as instance values they are read faster than class
        # defaults (see _StrictGenerator.__init__).
        self.yielded = False
        self.iterated_at = None
        # Frames: 0 this, 1 the guarded provider's call, 2 contextlib's __init__, 3 its
        # helper (contextlib's decorator), 4 whoever made the context manager.
        frame: Optional[FrameType]
        try:
            frame = _getframe(4)
        except ValueError:  # pragma: no cover - the helper called from C
            frame = None
        while frame is not None and frame.f_globals.get("__name__") in _INTERNAL_MODULES:
            frame = frame.f_back
        if frame is not None:
            self.called_at = (frame.f_code, frame.f_lasti)

    def provider_frame(self) -> Optional[FrameType]:
        """The generator's frame (None once it finished). On a stack it is the code
        after 'yield' running (the scope ended as contextlib left the block), where the
        provider may load what its own commit expired: that load is the provider's,
        not a use of what it handed out. Suspended, it is on no stack."""
        gen = self.__wrapped__
        frame: Optional[FrameType] = getattr(gen, "ag_frame", None) or getattr(
            gen, "gi_frame", None
        )
        return frame

    def _leaving(self) -> Any:
        """contextlib is leaving the block: the session's scope ends here, before the
        provider's code after 'yield' runs (which uses the session itself, not the
        watched one). Returns the generator."""
        self.done = True  # finish(), less the task callback and scope: there are none
        self.arguments = None
        self.exit_scope()
        return self.__wrapped__


class DrivenAsyncGenerator(_Driven):
    """An async generator provider's generator under ``asynccontextmanager``."""

    def __anext__(self) -> Any:
        if self.yielded and _CONTEXTLIB_CLOSES:
            # contextlib's exit. Its own awaitable goes back as it is, so contextlib's
            # StopAsyncIteration passes no frame of protoguard's; a second 'yield'
            # (PG205) is found when contextlib closes the generator (aclose).
            return self._leaving().__anext__()
        return _strict_anext(self, self)  # type: ignore[arg-type]

    def athrow(self, *args: Any) -> Any:
        gen = self._leaving()
        if _CONTEXTLIB_CLOSES:
            # A 'yield' after the error is found when contextlib closes it (aclose).
            return gen.athrow(*args)
        return _athrow_checked(self, gen, args)  # pragma: no cover - Python 3.9 and 3.10

    def aclose(self) -> Any:
        return _aclose(self, self.__wrapped__, self._self_provider)

    def __next__(self) -> Any:
        """``contextmanager()`` around an async generator provider: Python's own error
        for the generator, which names it, not this object."""
        return next(self.__wrapped__)


# What asynccontextmanager() does to its generator's first step (anext() from 3.10 on).
_first_step: Any = getattr(builtins, "anext", operator.methodcaller("__anext__"))


async def _athrow_checked(
    state: _Driven, gen: Any, args: tuple[Any, ...]
) -> Any:  # pragma: no cover - Python 3.9 and 3.10, where contextlib does not close it
    """contextlib throwing the block's error into an async generator provider: if the
    provider yields again instead of finishing, PG205 (see _aclose_yielded_twice)."""
    value = await gen.athrow(*args)  # its error or StopAsyncIteration: the usual ends
    await _aclose_yielded_twice(state, gen, state._self_provider)
    return value


async def _aclose_yielded_twice(state: GeneratorState, gen: Any, info: ProviderInfo) -> None:
    """PG205 for a generator provider suspended at a second 'yield': closed here, in this
    task, so its cleanup runs, then reported; if the action lets it pass, what contextlib
    or the loop says next goes on ("generator didn't stop", or the cleanup's own error)."""
    where = yield_site(gen)
    state.reported = True
    try:
        await gen.aclose()
    finally:
        report(broke_protocol(info, where, twice=True), can_raise=True)


def _close_yielded_twice(state: _Driven, gen: Any) -> None:
    """_aclose_yielded_twice, for a sync generator under ``contextmanager``."""
    where = yield_site(gen)
    state.reported = True
    try:
        gen.close()
    finally:
        report(broke_protocol(state._self_provider, where, twice=True), can_raise=True)


class DrivenGenerator(_Driven):
    """A generator provider's generator under ``contextmanager``."""

    def __next__(self) -> Any:
        if self.yielded:  # contextlib's exit
            gen = self._leaving()
            value = next(gen)  # StopIteration: the usual end
            _close_yielded_twice(self, gen)
            return value
        self.started = True
        gen = self.__wrapped__
        try:
            value = next(gen)
        except StopIteration as stop:
            self.finish()
            _never_yielded(self, self, stop)
            raise
        except BaseException:
            self.finish()
            raise
        self.yielded = True
        info = self._self_provider
        if self._self_expected is not None:
            check_type(info, self._self_expected, value, gen)
        borrowed = self.arguments is not None and _handed_in(self, value)
        return watch(value, info, self.called_at, self, borrowed)

    def throw(self, *args: Any) -> Any:
        gen = self._leaving()
        value = gen.throw(*args)  # its error or StopIteration: the usual ends
        _close_yielded_twice(self, gen)
        return value

    def __anext__(self) -> Any:
        """``asynccontextmanager()`` around a generator provider: Python's own error for
        the generator, which names it, not this object."""
        return _first_step(self.__wrapped__)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self.finish()


class StrictGeneratorProxy(_StrictGenerator, GeneratorProxy):
    """A generator provider's result in strict mode."""

    def __iter__(self) -> Any:
        state = self._self_state
        state.iterated_at = caller_site()
        state.started = True
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, sent: Any) -> Any:
        """A step (``next()``, or ``send()`` as some drivers step a generator)."""
        state = self._self_state
        state.started = True
        try:
            value = self.__wrapped__.send(sent)
        except StopIteration as stop:
            state.finish()
            if not state.yielded:
                _never_yielded(self, state, stop)
            raise
        except BaseException:
            state.finish()
            raise
        return self._pg_handed_out(state, value)

    def throw(self, *args: Any) -> Any:
        try:
            return self.__wrapped__.throw(*args)
        except BaseException:
            self._self_state.finish()
            raise

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_state.finish()

    def __del__(self) -> None:
        state = self._self_state
        # (Closed before it started, it was not forgotten: closing was the choice made.)
        if not (state.started or state.done or self._self_pg_reported):
            _never_used(self._self_provider, state.called_at, "generator")
        elif not state.done:
            # A loop left early (`for db in get_db(): return db`): Python would close
            # the generator as it goes; closed here, its cleanup runs inside the scope,
            # and then the session it handed out is past its block: a later use is PG203.
            try:
                self.__wrapped__.close()
            finally:
                state.finish()


def _references(obj: Any) -> int:
    """``sys.getrefcount(obj)`` as this frame sees it."""
    return sys.getrefcount(obj)


class _Holder:
    __slots__ = ("held",)
    held: object


def _references_when_held_once() -> int:
    """What ``_references(local)`` reads in a frame with the object in a local variable
    and held by one attribute besides: what the finaliser of a dropped coroutine's proxy
    reads. Measured, since the count differs between Python versions."""
    holder = _Holder()
    holder.held = object()
    held = holder.held
    return _references(held)


# More than this in StrictCoroutineProxy.__del__: the coroutine is held elsewhere too.
_HELD_ONCE = _references_when_held_once()


class StrictCoroutineProxy(CoroutineProxy):
    """A coroutine provider's result in strict mode: the session it returns is watched."""

    _self_expected: Optional[type] = None

    def __init__(self, wrapped: Any) -> None:
        super().__init__(wrapped)
        self._self_site = caller_site()

    def __await__(self) -> Any:
        value = yield from self.__wrapped__.__await__()
        return self._pg_returned(value)

    def _pg_returned(self, value: Any, in_a_task: bool = False) -> Any:
        check_type(self._self_provider, self._self_expected, value, None)
        session = watch(value, self._self_provider, self._self_site)
        if session is not value:
            session._self_state.own_block = True  # see SessionState.own_block
        if in_a_task and session is not value:
            # Made in a task of its own for whoever awaits that task: no task owns it,
            # so no PG206; PG202 and PG203 still hold.
            session._self_state.owner = None
        return session

    # A task (asyncio.create_task, gather, ensure_future) drives the coroutine with
    # send() and throw() instead of awaiting it: the session it returns is watched there
    # too. (What Python does with a coroutine otherwise: its StopIteration's value.)
    def send(self, value: Any) -> Any:
        try:
            return self.__wrapped__.send(value)
        except StopIteration as stop:
            raise StopIteration(self._pg_returned(stop.value, in_a_task=True)) from None

    def throw(self, *args: Any) -> Any:
        try:
            return self.__wrapped__.throw(*args)
        except StopIteration as stop:
            raise StopIteration(self._pg_returned(stop.value, in_a_task=True)) from None

    def __del__(self) -> None:
        if self._self_pg_reported:
            return  # a PG1xx misuse was already raised for it
        coroutine = self.__wrapped__
        if not inspect.iscoroutine(coroutine):
            return
        if inspect.getcoroutinestate(coroutine) != inspect.CORO_CREATED:
            return  # awaited, directly or by a task (or closed)
        if _references(coroutine) > _HELD_ONCE:
            # The proxy goes but the coroutine lives on (``make_session().send`` takes
            # the coroutine's own method): not dropped, or not yet; if it is never
            # awaited, Python's own warning still says so.
            return
        # Closed here, so Python's own "coroutine ... was never awaited" does not repeat it.
        coroutine.close()
        _never_used(self._self_provider, self._self_site, "coroutine")


class StrictSessionProxy(SessionProxy):
    """A session from a guarded session maker (or plain function) in strict mode."""

    def __init__(self, wrapped: Any) -> None:
        super().__init__(wrapped)
        self._pg_new_state()

    def _pg_new_state(self) -> SessionState:
        """A new state for the session, opened where the user's code is now (and in
        this task: see _carried_by_a_generator)."""
        self._self_state = state = _new_state(SessionState)
        state.info = self._self_provider
        state.opened_at = caller_site()
        state.made_in = _current_task()
        return state

    __getattr__ = WatchedSession.__getattr__

    async def __aenter__(self) -> Any:
        await SessionProxy.__aenter__(self)
        self._pg_scope().enter_scope()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await SessionProxy.__aexit__(self, *exc_info)
        finally:
            self._self_state.exit_scope()

    def __enter__(self) -> Any:
        SessionProxy.__enter__(self)
        self._pg_scope().enter_scope()
        return self

    def _pg_scope(self) -> SessionState:
        """The state of the block being entered: the session's own, or a new one when
        the session is entered again after a block of its own had ended (a worker that
        keeps its session and enters it per job, as SQLAlchemy allows). The ended
        block's state stays closed where it is recorded: code started inside that block
        is not inside this one."""
        state = self._self_state
        return state if state.open else self._pg_new_state()

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return SessionProxy.__exit__(self, *exc_info)
        finally:
            self._self_state.exit_scope()


class BegunSession:
    """``async with maker.begin() as session:`` for a guarded maker in strict mode:
    SQLAlchemy's block, with the session's scope (PG203, PG206) begun once its
    transaction is (SQLAlchemy's exit leaves the session, which ends the scope)."""

    __slots__ = ("_block", "_session")

    def __init__(self, session: StrictSessionProxy, block: Any) -> None:
        self._session = session
        self._block = block

    async def __aenter__(self) -> Any:
        session = await self._block.__aenter__()
        self._session._pg_scope().enter_scope()
        return session

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self._block.__aexit__(*exc_info)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # ours, before __init__ set them (copy.copy makes one so)
            raise AttributeError(name)
        return getattr(self._block, name)  # SQLAlchemy's: async_session, trans


STRICT_BASE: dict[type, type] = {
    GuardedAsyncContextManager: StrictAsyncContextManager,
    GuardedContextManager: StrictContextManager,
    AsyncGeneratorProxy: StrictAsyncGeneratorProxy,
    GeneratorProxy: StrictGeneratorProxy,
    CoroutineProxy: StrictCoroutineProxy,
    SessionProxy: StrictSessionProxy,
}


def strict_class(result_class: type, expected: Optional[type]) -> type:
    """The strict-mode twin of a provider's (specialised) result class."""
    strict_base = STRICT_BASE[result_class.__mro__[1]]
    attrs: dict[str, Any] = {
        "_self_provider": result_class._self_provider,  # type: ignore[attr-defined]
        "__module__": strict_base.__module__,
    }
    if expected is not None:
        attrs["_pg_expected" if issubclass(strict_base, _StrictCM) else "_self_expected"] = expected
    # contextlib's docstring for a context manager, None for a generator or coroutine:
    # what mode "on" shows (see specialise).
    attrs["__doc__"] = result_class.__doc__
    driven = DRIVEN_BASE.get(strict_base)
    if driven is not None:
        # The same provider's generator when contextlib drives it (see _Driven).
        attrs["_pg_driven"] = _driven_class(driven, attrs["_self_provider"], expected)
    elif strict_base is StrictSessionProxy and attrs["_self_provider"].kind == k.FUNCTION:
        # A plain function that is a wrapper of a generator function (functools.wraps),
        # which FastAPI's Depends() drives as the generator beneath: contextlib gets the
        # generator the wrapper returns, watched as a generator provider's would be.
        attrs["_pg_wrapper_driven"] = {
            types.AsyncGeneratorType: _driven_class(
                DrivenAsyncGenerator, attrs["_self_provider"], expected
            ),
            types.GeneratorType: _driven_class(DrivenGenerator, attrs["_self_provider"], expected),
        }
    return type(strict_base)(strict_base.__name__, (strict_base,), attrs)


def _driven_class(driven: type[_Driven], info: ProviderInfo, expected: Optional[type]) -> type:
    """``driven``, specialised to one provider (see _Driven)."""
    return type(
        driven.__name__,
        (driven,),
        {"_self_provider": info, "_self_expected": expected, "__module__": driven.__module__},
    )


DRIVEN_BASE: dict[type, type[_Driven]] = {
    StrictAsyncGeneratorProxy: DrivenAsyncGenerator,
    StrictGeneratorProxy: DrivenGenerator,
}
