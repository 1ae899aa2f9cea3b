"""``@provider``: decide a provider's kind once, and pick the guarded form for it."""

from __future__ import annotations

import copy
import functools
import inspect
import linecache
import operator
import re
import sys
import types
from typing import Any, Callable, NoReturn, Optional, TypeVar, Union, overload

import wrapt

from . import _config, _lifecycle
from . import _kinds as k
from ._config import Mode
from ._messages import rewritten, short_name, user_frame
from ._proxies import (
    _FAST_GETATTRIBUTE,
    AsyncGeneratorProxy,
    GeneratorProxy,
    SessionProxy,
    _wrapped_repr,
    specialise,
)
from .exceptions import Kind, ProviderInfo

F = TypeVar("F", bound=Callable[..., Any])
D = TypeVar("D", bound=Union[classmethod, staticmethod])  # type: ignore[type-arg]

_ACCEPTED = (
    "an @asynccontextmanager or @contextmanager function, an async or sync generator "
    "function, a coroutine function, a plain function returning a session, an "
    "async_sessionmaker or sessionmaker, or a method, classmethod, staticmethod or "
    "functools.partial of one of these"
)

# Tells @provider(...) (options, returns a decorator) from @provider(None) (an error).
_NOTHING: Any = object()

# The attribute that marks a plain function returned by @provider, and the code of
# those functions (see _guarded_info).
_MARK = "__protoguard_provider__"
_GUARDED_CODE: set[types.CodeType] = set()

_getframe = sys._getframe
_CONTEXTLIB_INIT = _lifecycle._CONTEXTLIB_INIT
# What a plain function may return that contextlib drives as a generator.
_GENERATORS = (types.GeneratorType, types.AsyncGeneratorType)


def _a_session(value: object) -> bool:
    """What strict mode would watch (see _lifecycle.watch): a session, or so it seems."""
    return callable(getattr(type(value), "execute", None))


# The code of a guarded function's call through a bound method (see _by_contextlib).
_BOUND_CALLS: set[types.CodeType] = set()


def _by_contextlib(frame: Optional[types.FrameType]) -> bool:
    """Whether ``frame``, a guarded function's caller, is contextlib making its context
    manager around it; for a bound method the call comes through ``wrapper`` first."""
    if frame is not None and frame.f_code in _BOUND_CALLS:
        frame = frame.f_back
    return frame is not None and frame.f_code is _CONTEXTLIB_INIT


_ASSIGNED = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::[^=]*)?=\s*\S")


class GuardedFunction(wrapt.FunctionWrapper):  # type: ignore[type-arg]
    """A guarded generator, async generator or coroutine function.

    A wrapt FunctionWrapper, so ``inspect.isasyncgenfunction``/``isgeneratorfunction``/
    ``iscoroutinefunction``, ``inspect.signature``, method binding and ``isinstance``
    all see the user's function.
    """

    def __init__(self, wrapped: Any, wrapper: Any, info: ProviderInfo) -> None:
        super().__init__(wrapped, wrapper)
        self._self_info = info

    @property
    def __protoguard_provider__(self) -> ProviderInfo:
        info: ProviderInfo = self._self_info
        return info

    # The function's own repr (`<function get_db at 0x...>`), as a guarded
    # context-manager function's is: not wrapt's, which names no function.
    __repr__ = _wrapped_repr

    # A function, copied and pickled as a function is: by reference (pickle finds it
    # under its module and qualified name, this guarded object when it is what the
    # module holds). wrapt's proxies refuse all three.
    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: Any) -> Any:
        return self

    def __reduce_ex__(self, protocol: Any) -> Any:
        qualname: str = self.__qualname__
        return qualname


# What Python raises for `with`/`async with` on an object without the protocol: a
# TypeError from 3.11 on, an AttributeError naming the method before.
_NO_PROTOCOL_ERROR = TypeError if sys.version_info >= (3, 11) else AttributeError


def _not_the_provider(protocol: str, dunder: str) -> Any:
    """What `with`/`async with` on a provider itself (its call forgotten) raises: the
    error Python raises for the unguarded object, with the fix. (wrapt's proxies would
    forward the protocol to the wrapped object: an AttributeError on every version.)"""

    def method(self: Any, *args: Any) -> NoReturn:
        __tracebackhide__ = True
        info = self.__protoguard_provider__
        what = (
            f"{type(self.__wrapped__).__name__!r} object does not support the {protocol} "
            f"protocol: {short_name(info)} is the provider, not what it gives; call it: "
            f"{_called(info, self.__wrapped__)}"
        )
        if _NO_PROTOCOL_ERROR is AttributeError:  # pragma: no cover - before 3.11
            raise AttributeError(f"{dunder} ({what})")
        raise TypeError(what)

    return method


def _called(info: ProviderInfo, provider: Any) -> str:
    """The statement that calls ``provider`` and uses what it gives by its protocol,
    with ``(...)`` for arguments only when it needs some."""
    try:
        needs = any(
            p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            for p in inspect.signature(provider).parameters.values()
        )
    except (TypeError, ValueError):  # no signature to read
        needs = True
    call = f"{short_name(info)}({'...' if needs else ''})"
    if info.kind not in k.SUPPORTED:
        return f"session = {call}"  # a plain function
    return rewritten(info.kind, k.CALL, call, None)


def _set_doc(self: Any, value: Any) -> None:
    self.__wrapped__.__doc__ = value


def _del_doc(self: Any) -> None:
    del self.__wrapped__.__doc__


# The wrapped function's docstring, read, written and deleted through (wrapt's own
# lookup of __doc__ does this; the per-provider classes use object.__getattribute__ instead).
# The getter is C (attrgetter): contextlib and functools.wraps read __doc__ each time
# FastAPI wraps a provider for a request, and a Python getter would be a frame each.
_FORWARDED_DOC = property(operator.attrgetter("__wrapped__.__doc__"), _set_doc, _del_doc)


class GuardedSessionMaker(wrapt.CallableObjectProxy):  # type: ignore[type-arg]
    """A guarded ``async_sessionmaker``/``sessionmaker``: every attribute is forwarded,
    and each session it makes is guarded."""

    _self_guards: tuple[Any, Optional[Mode], Optional[type]]  # see _guarded_with
    __repr__ = _wrapped_repr  # the maker's own, as GuardedFunction's

    def __init__(
        self, maker: Any, result_class: type, strict_class: type, mode: Optional[Mode]
    ) -> None:
        super().__init__(maker)
        self._self_result_class = result_class
        self._self_strict_class = strict_class
        self._self_mode: Optional[Mode] = mode

    @property
    def __protoguard_provider__(self) -> ProviderInfo:
        info: ProviderInfo = getattr(self._self_result_class, "_self_provider")  # noqa: B009
        return info

    # Copied as the maker is, and still guarded. Pickled as the maker is, and guarded
    # again when it is loaded (its classes are made per provider, not importable).
    def __copy__(self) -> GuardedSessionMaker:
        return self._pg_like(copy.copy(self.__wrapped__))

    def __deepcopy__(self, memo: Any) -> GuardedSessionMaker:
        return self._pg_like(copy.deepcopy(self.__wrapped__, memo))

    def _pg_like(self, maker: Any) -> GuardedSessionMaker:
        like = type(self)(maker, self._self_result_class, self._self_strict_class, self._self_mode)
        _, mode, yields = self._self_guards
        like._self_guards = (maker, mode, yields)
        return like

    def __reduce_ex__(self, protocol: Any) -> Any:
        info = self.__protoguard_provider__
        expected = getattr(self._self_strict_class, "_self_expected", None)
        return _guard_again, (self.__wrapped__, info.name, self._self_mode, expected)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        session = self.__wrapped__(*args, **kwargs)
        mode = _config.mode_for(self._self_mode)
        if mode == _config.ON or (
            mode == _config.STRICT and _config.settings.sampling and _config.unwatched()
        ):
            return self._self_result_class(session)
        if mode == _config.OFF:
            return session
        return self._self_strict_class(session)

    def begin(self) -> Any:
        """``maker.begin()``: the maker's own block (a transaction begun on entry,
        committed or rolled back at the end, the session closed), around a session of
        this guarded maker's. In strict mode the block hands out the watched session."""
        session = self()
        raw = session.__wrapped__ if isinstance(session, SessionProxy) else session
        make = getattr(type(raw), "_maker_context_manager", None)
        if make is None:  # pragma: no cover - a session class SQLAlchemy's begin() cannot use
            return self.__wrapped__.begin()
        if not isinstance(session, _lifecycle.StrictSessionProxy):
            # Mode "on" or "off": what `async with maker() as session:` gives, the session
            # itself, as the maker's own begin() does.
            return make(raw)
        block = make(session)
        if hasattr(block, "__aenter__"):
            # SQLAlchemy's async block begins the transaction without entering the
            # session (its exit leaves it): the session's scope begins with the block.
            return _lifecycle.BegunSession(session, block)
        return block


for _guarded in (GuardedFunction, GuardedSessionMaker):
    for _name, _protocol in (
        ("__enter__", "context manager"),
        ("__exit__", "context manager"),
        ("__aenter__", "asynchronous context manager"),
        ("__aexit__", "asynchronous context manager"),
    ):
        setattr(_guarded, _name, _not_the_provider(_protocol, _name))


def _guard_again(obj: Any, name: str, mode: Optional[Mode], yields: Optional[type]) -> Any:
    """A guarded session maker, loaded by pickle."""
    return _decorate(obj, name, mode, yields)


# What wrapt binds a FunctionWrapper to (not an ObjectProxy in wrapt 2).
_BOUND_WRAPPERS = (wrapt.ObjectProxy, getattr(wrapt, "BoundFunctionWrapper", wrapt.ObjectProxy))


def _guarded_info(obj: object) -> Optional[ProviderInfo]:
    """The ProviderInfo of an already guarded provider, or None. (Types are tested with
    type(), not isinstance(): a wrapt proxy answers isinstance() as what it wraps.)"""
    if type(obj) is types.MethodType:
        # Bound to an instance or a class (a classmethod is bound so from 3.13 on).
        obj = obj.__func__
    if issubclass(type(obj), (GuardedFunction, GuardedSessionMaker)):
        return obj.__protoguard_provider__  # type: ignore[attr-defined,no-any-return]
    if issubclass(type(obj), _BOUND_WRAPPERS):  # a guarded function bound by wrapt
        parent = getattr(obj, "_self_parent", None)
        return parent.__protoguard_provider__ if isinstance(parent, GuardedFunction) else None
    if type(obj) is not types.FunctionType:
        return None
    marked = obj.__dict__.get(_MARK)
    # The mark, on the function this module made: functools.wraps copies a function's
    # __dict__, and so the mark, onto a wrapper of the user's (an adapter around a
    # guarded provider), which is not guarded and may not even speak the same protocol.
    if isinstance(marked, ProviderInfo) and obj.__code__ in _GUARDED_CODE:
        return marked
    return None


def _guarded_partial(obj: object) -> Optional[ProviderInfo]:
    """The ProviderInfo of the guarded provider a ``functools.partial`` calls, or None."""
    return _guarded_info(obj.func) if isinstance(obj, functools.partial) else None


# What a guard guards and the options it was given: (provider, mode, yields).
_GUARDS = "__protoguard_guards__"


def _guarded_with(obj: Any) -> tuple[Any, Optional[Mode], Optional[type]]:
    """The provider a guarded one guards (bound again, for a bound method), with the
    mode and type it was guarded with. (Not ``__wrapped__``: a guarded partial's is the
    generator function beneath, for FastAPI.)"""
    if type(obj) is types.MethodType:
        original, mode, yields = _guarded_with(obj.__func__)
        return types.MethodType(original, obj.__self__), mode, yields
    if issubclass(type(obj), (GuardedFunction, GuardedSessionMaker)):  # first: in wrapt
        return obj._self_guards  # type: ignore[no-any-return]  # 1, these are ObjectProxies
    if issubclass(type(obj), _BOUND_WRAPPERS):
        # wrapt's bound form of a GuardedFunction: the original, bound the same way.
        _, mode, yields = obj._self_parent._self_guards
        return obj.__wrapped__, mode, yields
    guards: tuple[Any, Optional[Mode], Optional[type]] = obj.__dict__[_GUARDS]
    return guards


def _info(obj: object, kind: Kind, name: Optional[str]) -> ProviderInfo:
    if kind in (k.ASYNC_SESSIONMAKER, k.SESSIONMAKER):
        # A session maker has no def line: its "definition" is where it was guarded,
        # and its name the one it is assigned to there (``Session = provider(...)``).
        frame = user_frame(1)
        if frame is None:  # pragma: no cover - there is always a caller
            return ProviderInfo(name or kind, kind, None, None)
        filename, lineno = frame.f_code.co_filename, frame.f_lineno
        line = linecache.getline(filename, lineno, frame.f_globals)
        match = _ASSIGNED.match(line)
        assigned = match.group(1) if match else None
        return ProviderInfo(name or assigned or kind, kind, filename, lineno)
    qualname, defined_in, defined_at = k.definition_site(obj)
    return ProviderInfo(name or qualname, kind, defined_in, defined_at)


def _guard_contextmanager(
    func: Any, result_class: type, strict_class: type, mode: Optional[Mode]
) -> Any:
    """The guarded form of an @asynccontextmanager/@contextmanager function."""
    settings = _config.settings
    override_mode = _config.override_mode
    mode_for, unwatched = _config.mode_for, _config.unwatched
    on, off, strict = _config.ON, _config.OFF, _config.STRICT
    inner: Any = getattr(func, "__wrapped__", None)
    plain = type(func).__name__ == "function" and inner is not None
    if mode == off:
        # Off for good (see _guard): contextlib's own objects, and the generator for
        # contextlib's helper when Depends() drives the provider (see below).
        def guarded(*args: Any, **kwds: Any) -> Any:
            if _getframe(1).f_code is _CONTEXTLIB_INIT:
                return inner(*args, **kwds) if plain else func(*args, **kwds).gen
            return func(*args, **kwds)

    elif plain:
        # The common case, a plain decorated function: build contextlib's object
        # ourselves, exactly as contextlib's helper does, but of the guarded class.
        def guarded(*args: Any, **kwds: Any) -> Any:
            # _config.mode_for(mode), inlined: this is the hot path.
            if settings.overridden:
                current = override_mode.get() or mode or settings.mode
            else:
                current = mode or settings.mode
            if current == on or (current == strict and settings.sampling and unwatched()):
                return result_class(inner, args, kwds)
            if current == off:
                if _getframe(1).f_code is _CONTEXTLIB_INIT:
                    # contextlib making its context manager around the provider, which
                    # FastAPI's Depends() found to be a generator function (through
                    # __wrapped__): the generator, as it expects (see _proxies'
                    # GuardedAsyncContextManager.__anext__, mode "on"'s way).
                    return inner(*args, **kwds)
                return func(*args, **kwds)
            return strict_class(inner, args, kwds)

    else:
        # A bound method or partial of one: let it build its object, then adopt it.
        def guarded(*args: Any, **kwds: Any) -> Any:
            cm = func(*args, **kwds)
            current = mode_for(mode)
            if current == on or (current == strict and settings.sampling and unwatched()):
                cm.__class__ = result_class
            elif current != off:
                cm.__class__ = strict_class
                cm._pg_site = _lifecycle.caller_site()
                cm._pg_argument_ids = _lifecycle.argument_ids(cm.args, cm.kwds)
            elif _getframe(1).f_code is _CONTEXTLIB_INIT:
                return cm.gen  # contextlib wants the generator (see above)
            return cm

    _GUARDED_CODE.add(guarded.__code__)  # one per definition above: three in all
    functools.update_wrapper(guarded, func)
    if isinstance(func, functools.partial):
        # What FastAPI's Depends() looks through: the generator function inside
        # @asynccontextmanager, with the partial's arguments, as it finds it through a
        # plain decorated function's __wrapped__ (inspect.unwrap stops at a partial).
        generator = getattr(func.func, "__wrapped__", None)
        if isinstance(func.func, types.MethodType) and generator is not None:
            # A bound method's __wrapped__ is its function's: bind it the same way.
            generator = types.MethodType(generator, func.func.__self__)
        if generator is not None:
            unwrapped = functools.partial(generator, *func.args, **func.keywords)
            guarded.__wrapped__ = unwrapped  # type: ignore[attr-defined]
    if guarded.__name__ == "guarded":
        # A partial has no name of its own to copy: take its function's.
        innermost = k._innermost(func)
        guarded.__name__ = getattr(innermost, "__name__", guarded.__name__)
        guarded.__qualname__ = getattr(innermost, "__qualname__", guarded.__qualname__)
    return guarded


def _guard_function(
    func: Any, result_class: type, strict_class: type, mode: Optional[Mode], info: Any
) -> Any:
    """The guarded form of a generator, async generator, coroutine or plain function."""
    settings = _config.settings
    override_mode = _config.override_mode
    on, off, unwatched = _config.ON, _config.OFF, _config.unwatched
    # A generator provider called by contextlib making its context manager
    # (asynccontextmanager(p)(...), as FastAPI's Depends() does on every request).
    generator = issubclass(result_class, (AsyncGeneratorProxy, GeneratorProxy))
    plain = info.kind == k.FUNCTION
    driven_class: Any = getattr(strict_class, "_pg_driven", None)
    wrapper_driven: Any = getattr(strict_class, "_pg_wrapper_driven", None)
    getframe, contextlib_init = _getframe, _lifecycle._CONTEXTLIB_INIT
    # A partial's own arguments, which the generator gets too (see arguments below).
    bound: tuple[Any, ...] = ()
    if isinstance(func, functools.partial):
        bound = (*func.args, *func.keywords.values())

    def call(target: Any, /, *args: Any, **kwargs: Any) -> Any:
        result = target(*args, **kwargs)
        # _config.mode_for(mode), inlined: this is the hot path.
        if settings.overridden:
            current = override_mode.get() or mode or settings.mode
        else:
            current = mode or settings.mode
        if settings.sampling and current != on and current != off and unwatched():
            current = on  # strict mode, but this use is not in the sample
        if plain and isinstance(result, _GENERATORS) and _by_contextlib(getframe(1)):
            # A plain wrapper of a generator function (functools.wraps), which FastAPI's
            # Depends() drives as that generator: contextlib gets the generator, in
            # strict mode a plain object that watches the session it yields (see below).
            if current in (on, off):
                return result
            state = made = wrapper_driven[type(result)](result)
        elif current == off or result is None or (plain and k.is_session_registry(result)):
            # None: a plain function's "no session here", which `is None` must see. A
            # scoped_session registry: not a session, and callable (a proxy is not).
            return result
        elif generator and getframe(1).f_code is contextlib_init:
            # contextlib is making its context manager around the generator and drives
            # it by the protocol itself (anext, athrow, aclose): nobody can misuse it,
            # so mode "on" has nothing to guard and hands it over as it is, and strict
            # mode hands over a plain object that watches the session it yields.
            if current == on:
                return result
            state = made = driven_class(result)
        elif current == on or (
            plain and not _a_session(result) and not isinstance(result, SessionProxy)
        ):
            # (Strict mode: what a plain function returns that is no session, a context
            # manager that hands one out (`return Session.begin()`), is as in mode "on":
            # the watching proxy is a session's, whose block hands out the proxy itself.
            # A guarded maker's session is a session too, though its proxy's class has no
            # `execute` of its own: it is watched.)
            return result_class(result)
        else:
            made = strict_class(result)
            if not generator:
                return made
            state = made._self_state
        if args or kwargs or bound:
            # What it may hand out as it is: a session it was given (see _handed_in).
            # Only sessions are kept, and only until the generator is done.
            given = tuple(filter(_a_session, (*bound, *args, *kwargs.values())))
            if given:
                state.arguments = given
        return made

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return call(wrapped, *args, **kwargs)  # a call through a bound method

    _BOUND_CALLS.add(wrapper.__code__)  # one code for every provider's

    # A call on the function itself runs ``call`` directly: a static partial gets no
    # ``self`` (one Python frame per call, where wrapt's own __call__ would look for
    # __self__ on a plain function, raising and discarding an AttributeError each time,
    # and then call the wrapper). staticmethod, because from Python 3.14 on a bare
    # partial binds like a method (3.13 warns).
    #
    # Attributes are looked up as on the proxies in _proxies (object.__getattribute__,
    # see _FAST_GETATTRIBUTE there): FastAPI copies __name__, __doc__, __dict__, ... off
    # a dependency with functools.wraps on every request. wrapt's __init__ put the
    # function's __module__ in the instance, where that lookup finds it; __doc__ is read
    # from the function each time, as wrapt does, so a later assignment is seen.
    guarded_class = type(
        GuardedFunction.__name__,
        (GuardedFunction,),
        {
            "__call__": staticmethod(functools.partial(call, func)),
            "__module__": GuardedFunction.__module__,
            "__getattribute__": _FAST_GETATTRIBUTE,
            "__doc__": _FORWARDED_DOC,
        },
    )
    return guarded_class(func, wrapper, info)


def _decorate(obj: Any, name: Optional[str], mode: Optional[Mode], yields: Optional[type]) -> Any:
    if isinstance(obj, (classmethod, staticmethod)):
        return type(obj)(_decorate(obj.__func__, name, mode, yields))
    guarded_as = _guarded_info(obj)
    if guarded_as is not None:
        if mode is None and yields is None and (name is None or name == guarded_as.name):
            return obj  # already guarded, nothing new asked: decorating twice is harmless
        # Options for a provider guarded already (a library's, given its own mode here):
        # the provider beneath, guarded again with them, and with the first guard's
        # name, mode and type where they give none.
        original, first_mode, first_yields = _guarded_with(obj)
        return _guard(
            original,
            name or guarded_as.name,
            mode if mode is not None else first_mode,
            yields if yields is not None else first_yields,
        )
    beneath = _guarded_partial(obj)
    if beneath is not None:
        # A partial of a guarded provider (one tenant's sessions from a library's): the
        # partial of the provider beneath, guarded as above. Taken as it is, a guarded
        # @asynccontextmanager function being a plain function, it would be a plain
        # function returning a session, and strict mode would watch the context manager
        # that it returns as the session.
        original, first_mode, first_yields = _guarded_with(obj.func)
        return _guard(
            functools.partial(original, *obj.args, **obj.keywords),
            name or beneath.name,
            mode if mode is not None else first_mode,
            yields if yields is not None else first_yields,
        )
    kind = k.classify(obj)
    if kind is None:
        raise TypeError(
            f"protoguard.provider() cannot guard {k.describe(obj)}: it is not a session "
            f"provider. It accepts {_ACCEPTED}.{_not_a_provider_hint(obj)}"
        )
    info = _info(obj, kind, name)
    result_class = specialise(info)
    strict_class = _lifecycle.strict_class(result_class, _lifecycle.declared_type(obj, yields))
    guarded: Any
    if kind in (k.ASYNC_CM, k.SYNC_CM):
        guarded = _guard_contextmanager(obj, result_class, strict_class, mode)
        setattr(guarded, _MARK, info)
        guarded.__dict__[_GUARDS] = (obj, mode, yields)
        return guarded
    if kind in (k.ASYNC_SESSIONMAKER, k.SESSIONMAKER):
        guarded = GuardedSessionMaker(obj, result_class, strict_class, mode)
    else:
        guarded = _guard_function(obj, result_class, strict_class, mode, info)
    guarded._self_guards = (obj, mode, yields)
    return guarded


def _guard(obj: Any, name: Optional[str], mode: Optional[Mode], yields: Optional[type]) -> Any:
    """provider(obj, ...), its options checked."""
    # The provider's own mode, else the global one: not an override() block's, which is
    # for the code running inside it, and would otherwise leave a provider imported there
    # unguarded for good (see docs/modes.md, "off").
    if (
        (mode or _config.settings.mode) == _config.OFF
        and _guarded_info(obj) is None
        and _guarded_partial(obj) is None
    ):
        # (mode="off" on a guarded one, or a partial of one: see _decorate.)
        if not _guarded_when_off(obj):
            return obj
        # A context-manager provider decorated in mode off keeps a guard that is off for
        # good, as an unguarded provider would be (no configure() or override() turns it
        # on): it is there for Depends() only.
        mode = _config.OFF
    return _decorate(obj, name, mode, yields)


def _not_a_provider_hint(obj: Any) -> str:
    """What to guard instead of ``obj``, for the three near misses: the object a
    provider returns, a session-maker class, an instance whose class's ``__call__`` is a
    provider (a FastAPI class dependency). Never fails: an empty string otherwise."""
    try:
        if isinstance(obj, type):
            for kind in (k.ASYNC_SESSIONMAKER, k.SESSIONMAKER):
                module = sys.modules.get(
                    "sqlalchemy.ext.asyncio" if kind == k.ASYNC_SESSIONMAKER else "sqlalchemy.orm"
                )
                if module is not None and issubclass(obj, getattr(module, kind)):
                    return (
                        f" That is the class; guard the maker made from it: "
                        f"protoguard.provider({obj.__name__}(engine))."
                    )
            return ""
        if k.object_kind(obj) is not None:
            return " To guard the object a provider returns, decorate the provider itself."
        call = inspect.getattr_static(type(obj), "__call__", None)
        if _guarded_info(call) is not None:
            return (
                " Its class's __call__ is guarded already, so every instance is: use the "
                "instance as it is."
            )
        if isinstance(call, types.FunctionType) and k.classify(call) is not None:
            return (
                f" Its class's __call__ is a provider: decorate that method with "
                f"@protoguard.provider, in the body of class {type(obj).__qualname__}, and "
                f"every instance is guarded."
            )
    except Exception:  # an object that breaks issubclass() or getattr_static()
        pass
    return ""


def _guarded_when_off(obj: Any) -> bool:
    """Whether ``obj`` keeps its guard in mode off: an @asynccontextmanager or
    @contextmanager function does. FastAPI's Depends() (0.123.5 on) drives one only
    guarded (it takes it for the generator beneath, and calls contextlib's helper on
    the guard, which then hands over the generator): returned unchanged, the provider
    would fail every request the day protoguard is switched off. The guard then costs
    one call, and hands out contextlib's own objects."""
    if isinstance(obj, (classmethod, staticmethod)):
        obj = obj.__func__
    try:
        return k.classify(obj) in (k.ASYNC_CM, k.SYNC_CM)
    except Exception:  # an object classify() cannot look at: not a provider
        return False


@overload
def provider(func: F, /) -> F: ...  # type: ignore[overload-overlap]
@overload
def provider(func: D, /) -> D: ...
@overload
def provider(
    *, name: Optional[str] = None, mode: Optional[Mode] = None, yields: Optional[type] = None
) -> Callable[[F], F]: ...


def provider(
    func: Any = _NOTHING,
    /,
    *,
    name: Optional[str] = None,
    mode: Optional[Mode] = None,
    yields: Optional[type] = None,
) -> Any:
    """Guard a session provider: every wrong protocol becomes a ProtocolError at the use.

    Use it bare (``@provider``) or with options (``@provider(name="db", mode="strict")``),
    above ``@asynccontextmanager``/``@contextmanager`` or on a (async) generator or
    coroutine function; or call it on an ``async_sessionmaker``. The provider keeps its
    kind, name, docstring, signature and ``__wrapped__``.

    ``mode`` is ``"off"``, ``"on"`` or ``"strict"``; without it the global mode applies
    (``PROTOGUARD_MODE``, ``configure()``). If that mode is ``"off"`` at decoration the
    provider is returned unchanged and costs nothing (an ``override()`` block around the
    decoration does not count: it is for the code running inside it), except an
    ``@asynccontextmanager``/``@contextmanager`` function: it keeps a guard that checks
    nothing, so that FastAPI's ``Depends()`` still drives it. That guard costs one call,
    hands out contextlib's own objects, and stays off: neither ``configure()`` nor
    ``override()`` turns it on.

    ``yields`` is the type of session the provider hands out; strict mode reports PG205
    when it hands out something else. Without it the return annotation is used
    (``AsyncIterator[AsyncSession]``, ``-> AsyncSession``), if it resolves at run time.
    """
    if mode is not None:
        mode = _config.check_mode(mode, "protoguard.provider(mode=...)")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"protoguard.provider(name=...) takes a str, not {k.describe(name)}")
    if name is not None and not name.strip():
        # Not the qualified name in its place: messages would name what the user did not.
        raise TypeError(
            "protoguard.provider(name=...) takes a str that is not blank: the name messages "
            "use for the provider (leave name= out for its qualified name)."
        )
    if yields is not None and not isinstance(yields, type):
        raise TypeError(f"protoguard.provider(yields=...) takes a class, not {k.describe(yields)}")

    def decorate(obj: Any) -> Any:
        return _guard(obj, name, mode, yields)

    if func is _NOTHING:
        return decorate
    return decorate(func)
