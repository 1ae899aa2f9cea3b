"""What a guarded provider returns: one class per provider kind.

Every protocol dunder is defined on the class itself, because Python looks special
methods up on the type. A dunder either does exactly what the real object does or
raises the misuse; nothing here formats text (that is ``_messages``).

The classes are specialised per provider at decoration time (``specialise``), so the
provider's ProviderInfo is a class attribute and a call costs no attribute store.

* ``@asynccontextmanager`` / ``@contextmanager`` results are instances of subclasses of
  contextlib's own classes: as fast as unguarded, and ``isinstance`` against
  contextlib's classes and the context-manager ABCs is unchanged.
* Generators, coroutines and sessions cannot be subclassed, so they are wrapped in
  ``wrapt`` proxies, which forward every attribute and ``isinstance`` to the real object.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, ClassVar, NoReturn

import wrapt

from . import _kinds as k
from ._messages import misuse
from .exceptions import ProviderInfo

_BaseProxy: Any = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)

# Attribute lookup on the proxies below: ``object.__getattribute__`` in the class.
#
# A Python subclass of wrapt's C proxy does not get wrapt's C lookup directly: the C
# class defines ``__getattr__``, so Python gives every subclass its generic
# "__getattribute__, then __getattr__" hook, which calls wrapt's ``__getattribute__``
# through a method wrapper made and parsed on every read (about three times a plain
# read). wrapt's lookup is the generic one plus two extras: a miss goes to the wrapped
# object (``__getattr__``, which the hook still calls), and ``__module__``/``__doc__``
# are read from the wrapped object. Naming ``object.__getattribute__`` lets Python take
# its fast path and keeps the first; the second is handled where it matters (see
# ``specialise`` and ``_ResultProxy.__init__``).
_FAST_GETATTRIBUTE = object.__getattribute__


# wrapt calls a proxy's ``__wrapped_setattr_fixups__`` with no arguments after
# ``__wrapped__`` is set; without one it looks the name up on the wrapped object and
# discards the AttributeError (a generator has no such attribute). There is nothing to
# fix up here, and ``tuple`` is a C callable that takes no arguments and returns at
# once: cheaper than a Python function, which would cost a frame on every provider call.
_nothing_to_fix: Any = tuple


def _misuse(result: Any, used: str, **details: Any) -> Any:
    """The ProtocolError for misusing ``result``, which is marked as reported.

    The mark (``_self_pg_reported``, a name wrapt keeps on the proxy) stops strict mode
    from reporting the same object again as never used (PG204) when it is collected.
    """
    result._self_pg_reported = True
    return misuse(result._self_provider, used, **details)


async def _raise_when_awaited(error: BaseException) -> NoReturn:
    __tracebackhide__ = True
    raise error


def _not_a_session(name: str) -> property:
    """A property that raises PG103 for a session attribute taken on a provider's result.

    Properties for a fixed list of names, not ``__getattr__``: a class with
    ``__getattr__`` pays for it on every attribute lookup, contextlib's own included.
    """

    def get(self: Any) -> NoReturn:
        __tracebackhide__ = True
        obj = getattr(self, "__wrapped__", self)
        raise _misuse(self, k.ATTRIBUTE, attr=name, obj=obj)

    return property(get, doc=f"Not a session: ``.{name}`` raises PG103.")


# A session's close() and aclose(), PG103 on a context manager that does not speak them
# (each speaks its generator's close or aclose to FastAPI once entered, below). Not in
# SESSION_ATTRIBUTES: a generator or a coroutine has its own close or aclose.
_CLOSE_METHODS = frozenset({"close", "aclose"})


def _with_session_attributes(cls: type) -> type:
    """Add a PG103 property for every session attribute the class does not define."""
    for name in k.SESSION_ATTRIBUTES | _CLOSE_METHODS:
        if not any(name in vars(base) for base in cls.__mro__):
            setattr(cls, name, _not_a_session(name))
    return cls


_getframe = sys._getframe


@_with_session_attributes
class GuardedAsyncContextManager(contextlib._AsyncGeneratorContextManager):  # type: ignore[type-arg]
    """An ``@asynccontextmanager`` result that names every protocol but ``async with``."""

    _self_provider: ClassVar[ProviderInfo]

    # contextlib's own __aenter__, plus PG107. contextlib deletes func/args/kwds on
    # entry; a second entry finds them gone, which costs the first entry nothing
    # (calling contextlib's method from a wrapper instead would add a frame per use).
    async def __aenter__(self) -> Any:
        try:
            del self.args, self.kwds, self.func
        except AttributeError:
            __tracebackhide__ = True
            raise _misuse(self, k.REENTER, obj=self) from None
        try:
            return await self.gen.__anext__()
        except StopAsyncIteration:
            raise RuntimeError("generator didn't yield") from None

    def __aiter__(self) -> NoReturn:
        __tracebackhide__ = True
        raise _misuse(self, k.ASYNC_FOR)

    def __await__(self) -> NoReturn:
        __tracebackhide__ = True
        raise _misuse(self, k.AWAIT)

    def __enter__(self) -> NoReturn:
        __tracebackhide__ = True
        raise _misuse(self, k.WITH)

    # None keeps isinstance(cm, AbstractContextManager) False while `with` still finds
    # __enter__ (and so our error) instead of failing on a missing __exit__.
    __exit__ = None

    def __iter__(self) -> NoReturn:
        __tracebackhide__ = True
        raise _misuse(self, k.FOR)

    # FastAPI's Depends() (0.123.5 and later) looks through __wrapped__, finds the async
    # generator inside @asynccontextmanager, and then drives what the provider returns
    # as if it were that generator: anext() to enter, anext()/athrow()/aclose() to
    # leave. Speaking that much of the generator protocol makes Depends(provider) give
    # the endpoint the session, with the provider's cleanup. `async for` still fails:
    # __aiter__ is the misuse, __anext__ is only what Depends() calls.
    def __anext__(self) -> Any:
        if "func" in self.__dict__:  # not entered yet
            if _getframe(1).f_code not in _ENTERING:
                # anext() by hand (`await anext(get_db())`), not contextlib entering:
                # async iteration, which a context manager does not speak. Raised when
                # awaited, not here: CPython 3.10-3.13 crash (a segmentation fault) when
                # __anext__ raises under anext(obj, default).
                return _raise_when_awaited(_misuse(self, k.ASYNC_FOR))
            return self.__aenter__()
        return self._pg_leave(None, None, None)

    def athrow(self, typ: Any, value: Any = None, tb: Any = None) -> Any:
        if value is None:  # athrow(exc), the only form from Python 3.12 on
            value = typ if isinstance(typ, BaseException) else typ()
            typ = type(value)
        return self._pg_leave(typ, value, tb if tb is not None else value.__traceback__)

    def aclose(self) -> Any:
        if "func" in self.__dict__:
            # Not entered: someone taking the context manager for the session
            # (AsyncSession.aclose()), not contextlib closing the generator it drives,
            # which it does only after entering it (see GuardedContextManager.close).
            __tracebackhide__ = True
            raise _misuse(self, k.ATTRIBUTE, attr="aclose", obj=self)
        return self.gen.aclose()

    async def _pg_leave(self, typ: Any, value: Any, tb: Any) -> NoReturn:
        # As a generator would: StopAsyncIteration once the provider has finished
        # (or swallowed the exception), the exception itself if it re-raised.
        if await self.__aexit__(typ, value, tb) or typ is None:
            raise StopAsyncIteration
        raise value


@_with_session_attributes
class GuardedContextManager(contextlib._GeneratorContextManager):  # type: ignore[type-arg]
    """A ``@contextmanager`` result that names every protocol but ``with``."""

    _self_provider: ClassVar[ProviderInfo]

    # contextlib's own __enter__, plus PG107 (see GuardedAsyncContextManager).
    def __enter__(self) -> Any:
        try:
            del self.args, self.kwds, self.func
        except AttributeError:
            __tracebackhide__ = True
            raise _misuse(self, k.REENTER, obj=self) from None
        try:
            return next(self.gen)
        except StopIteration:
            raise RuntimeError("generator didn't yield") from None

    def __aenter__(self) -> NoReturn:
        __tracebackhide__ = True
        raise _misuse(self, k.ASYNC_WITH)

    __aexit__ = None

    def __aiter__(self) -> NoReturn:
        __tracebackhide__ = True
        raise _misuse(self, k.ASYNC_FOR)

    def __iter__(self) -> NoReturn:
        __tracebackhide__ = True
        raise _misuse(self, k.FOR)

    def __await__(self) -> NoReturn:
        __tracebackhide__ = True
        raise _misuse(self, k.AWAIT)

    # The same generator face as GuardedAsyncContextManager's, for Depends() on a
    # @contextmanager provider (FastAPI runs it in a thread with next()/throw()/close()).
    def __next__(self) -> Any:
        if "func" in self.__dict__:  # not entered yet
            if _getframe(1).f_code not in _ENTERING:
                __tracebackhide__ = True  # next() by hand (see __anext__)
                raise _misuse(self, k.FOR)
            return self.__enter__()
        return self._pg_leave(None, None, None)

    def throw(self, typ: Any, value: Any = None, tb: Any = None) -> Any:
        if value is None:
            value = typ if isinstance(typ, BaseException) else typ()
            typ = type(value)
        return self._pg_leave(typ, value, tb if tb is not None else value.__traceback__)

    def close(self) -> None:
        if "func" in self.__dict__:
            # Not entered: this is someone taking the context manager for the session
            # (session.close()), not contextlib closing the generator it drives.
            __tracebackhide__ = True
            raise _misuse(self, k.ATTRIBUTE, attr="close", obj=self)
        self.gen.close()

    def _pg_leave(self, typ: Any, value: Any, tb: Any) -> NoReturn:
        if self.__exit__(typ, value, tb) or typ is None:
            raise StopIteration
        raise value


# The code that steps a generator provider's generator to enter the block: contextlib's
# (Depends()), and protoguard's own when the context manager is itself guarded again
# (``provider(contextmanager(guarded))``). A step from anywhere else is by hand.
_ENTERING = frozenset(
    {
        contextlib._AsyncGeneratorContextManager.__aenter__.__code__,
        contextlib._GeneratorContextManager.__enter__.__code__,
        GuardedAsyncContextManager.__aenter__.__code__,
        GuardedContextManager.__enter__.__code__,
    }
)


def _wrapped_repr(self: Any) -> str:
    """A proxy's repr: the object's own (``<async_generator object get_db at 0x...>``),
    not wrapt's (``<AsyncGeneratorProxy at 0x... for async_generator at 0x...>``), so
    errors that show it (FastAPI's, Python's) name the provider, as they would
    unguarded."""
    return repr(self.__wrapped__)


class _ResultProxy(_BaseProxy):  # type: ignore[misc]
    """Common ground of the wrapt proxies around generators and coroutines."""

    __getattribute__ = _FAST_GETATTRIBUTE
    __wrapped_setattr_fixups__ = staticmethod(_nothing_to_fix)

    def __init__(self, wrapped: Any) -> None:
        # Not wrapt's __init__: it copies the wrapped object's __module__ and __doc__
        # into the proxy, and a generator or coroutine has no __module__, so each proxy
        # paid for an AttributeError made and discarded (over a microsecond, more than
        # everything else a call of a guarded provider does). Their __doc__ is None,
        # which ``specialise`` puts in the class.
        self.__wrapped__ = wrapped

    def __getattr__(self, name: str) -> Any:
        # wrapt calls this for names the proxy itself lacks; an AttributeError raised by
        # a property would land here too, so PG103 is decided here and not by properties.
        if name in k.SESSION_ATTRIBUTES:
            __tracebackhide__ = True
            raise _misuse(self, k.ATTRIBUTE, attr=name, obj=self.__wrapped__)
        return getattr(self.__wrapped__, name)

    _self_provider: ClassVar[ProviderInfo]
    # Set on the proxy by _misuse(); the class default keeps the read a plain lookup
    # (a miss would go through __getattr__ to the wrapped object and raise).
    _self_pg_reported = False

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(f"cannot pickle a guarded {type(self.__wrapped__).__name__}")

    __repr__ = _wrapped_repr


class AsyncGeneratorProxy(_ResultProxy):
    """An async generator provider's result: ``async for`` and ``anext()`` pass through."""

    def __aiter__(self) -> Any:
        return self.__wrapped__.__aiter__()

    def __anext__(self) -> Any:
        return self.__wrapped__.__anext__()

    def __aenter__(self) -> NoReturn:
        __tracebackhide__ = True
        raise _misuse(self, k.ASYNC_WITH)

    __aexit__ = None

    def __await__(self) -> NoReturn:
        __tracebackhide__ = True
        raise _misuse(self, k.AWAIT)

    def __enter__(self) -> NoReturn:
        __tracebackhide__ = True
        raise _misuse(self, k.WITH)

    __exit__ = None

    def __iter__(self) -> NoReturn:
        __tracebackhide__ = True
        raise _misuse(self, k.FOR)


class GeneratorProxy(_ResultProxy):
    """A generator provider's result: ``for`` and ``next()`` pass through."""

    def __iter__(self) -> Any:
        return self.__wrapped__.__iter__()

    def __next__(self) -> Any:
        return self.__wrapped__.__next__()

    def __enter__(self) -> NoReturn:
        __tracebackhide__ = True
        raise _misuse(self, k.WITH)

    __exit__ = None

    def __aenter__(self) -> NoReturn:
        __tracebackhide__ = True
        raise _misuse(self, k.ASYNC_WITH)

    __aexit__ = None

    def __aiter__(self) -> NoReturn:
        __tracebackhide__ = True
        raise _misuse(self, k.ASYNC_FOR)

    def __await__(self) -> NoReturn:
        __tracebackhide__ = True
        raise _misuse(self, k.AWAIT)


class CoroutineProxy(_ResultProxy):
    """A coroutine function's result: only ``await`` passes through.

    On a misuse the coroutine is closed, so Python does not add a second, less useful
    "coroutine ... was never awaited" warning to our error.
    """

    def __await__(self) -> Any:
        return self.__wrapped__.__await__()

    def _self_misuse(self, used: str) -> NoReturn:
        __tracebackhide__ = True
        self.__wrapped__.close()
        raise _misuse(self, used)

    def __aenter__(self) -> NoReturn:
        __tracebackhide__ = True
        self._self_misuse(k.ASYNC_WITH)

    __aexit__ = None

    def __aiter__(self) -> NoReturn:
        __tracebackhide__ = True
        self._self_misuse(k.ASYNC_FOR)

    def __enter__(self) -> NoReturn:
        __tracebackhide__ = True
        self._self_misuse(k.WITH)

    __exit__ = None

    def __iter__(self) -> NoReturn:
        __tracebackhide__ = True
        self._self_misuse(k.FOR)


class SessionProxy(_BaseProxy):  # type: ignore[misc]
    """A session (or whatever a session maker or plain function returned).

    Attributes are forwarded by wrapt's C code with no Python frame in between. Each
    protocol dunder does what the real object's type does if it has that dunder, and
    raises the misuse if it does not.
    """

    _self_provider: ClassVar[ProviderInfo]
    # wrapt's __init__ copied the session's __module__ and __doc__ into the proxy, where
    # this lookup finds them before the class's own.
    __getattribute__ = _FAST_GETATTRIBUTE

    def _self_fail(self, used: str) -> NoReturn:
        __tracebackhide__ = True
        info = self._self_provider
        kind = None
        if info.kind == k.FUNCTION:
            # A plain function: what matters is what it returned.
            kind = k.object_kind(self.__wrapped__)
            if kind is None:
                raise TypeError(
                    f"{type(self.__wrapped__).__name__!r} object does not support {used!r}"
                )
        self._self_pg_reported = True
        raise misuse(info, used, result_kind=kind)

    def __aenter__(self) -> Any:
        wrapped = self.__wrapped__
        method = getattr(type(wrapped), "__aenter__", None)
        if method is None:
            __tracebackhide__ = True
            self._self_fail(k.ASYNC_WITH)
        return method(wrapped)

    def __aexit__(self, *exc_info: Any) -> Any:
        wrapped = self.__wrapped__
        return type(wrapped).__aexit__(wrapped, *exc_info)

    def __enter__(self) -> Any:
        wrapped = self.__wrapped__
        method = getattr(type(wrapped), "__enter__", None)
        if method is None:
            __tracebackhide__ = True
            self._self_fail(k.WITH)
        return method(wrapped)

    def __exit__(self, *exc_info: Any) -> Any:
        wrapped = self.__wrapped__
        return type(wrapped).__exit__(wrapped, *exc_info)

    def __aiter__(self) -> Any:
        wrapped = self.__wrapped__
        method = getattr(type(wrapped), "__aiter__", None)
        if method is None:
            __tracebackhide__ = True
            self._self_fail(k.ASYNC_FOR)
        return method(wrapped)

    def __iter__(self) -> Any:
        wrapped = self.__wrapped__
        method = getattr(type(wrapped), "__iter__", None)
        if method is None:
            __tracebackhide__ = True
            self._self_fail(k.FOR)
        return method(wrapped)

    def __await__(self) -> Any:
        wrapped = self.__wrapped__
        method = getattr(type(wrapped), "__await__", None)
        if method is None:
            __tracebackhide__ = True
            self._self_fail(k.AWAIT)
        return method(wrapped)

    __repr__ = _wrapped_repr

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(f"cannot pickle a guarded {type(self.__wrapped__).__name__}")


#: The class each provider kind's results get.
RESULT_CLASS: dict[str, type] = {
    k.ASYNC_CM: GuardedAsyncContextManager,
    k.SYNC_CM: GuardedContextManager,
    k.ASYNC_GEN: AsyncGeneratorProxy,
    k.SYNC_GEN: GeneratorProxy,
    k.COROUTINE: CoroutineProxy,
    k.ASYNC_SESSIONMAKER: SessionProxy,
    k.SESSIONMAKER: SessionProxy,
    k.FUNCTION: SessionProxy,
}


def specialise(info: ProviderInfo) -> type:
    """A subclass of the kind's result class that knows its provider."""
    base = RESULT_CLASS[info.kind]
    attrs: dict[str, Any] = {"_self_provider": info, "__module__": base.__module__}
    if base in (GuardedAsyncContextManager, GuardedContextManager):
        # contextlib gives a provider without a docstring its class's docstring.
        attrs["__doc__"] = base.__mro__[1].__doc__
    elif issubclass(base, _ResultProxy):
        attrs["__doc__"] = None  # what a generator or coroutine object says
    return type(base)(base.__name__, (base,), attrs)
