"""Which of a FastAPI app's dependencies cannot give a session as written.

``check_app`` walks every route's dependency tree (HTTP and websocket routes, included
routers, the apps and routers behind Starlette's ``Mount`` and ``Host``,
``dependencies=[...]`` at every level, nested dependencies) and diagnoses each
dependency's callable as the installed FastAPI runs it (by the kind of the function,
beneath ``functools.wraps`` on FastAPI 0.123.5 and later). It reports only what it has
evidence for: a context-manager function that is not guarded (its kind is certain), a
coroutine/plain function whose return annotation says it returns a session's context
manager or iterator when FastAPI injects what it returns, or a coroutine or guarded
wrapper that FastAPI drives as the generator beneath it. Nothing here calls a dependency.
"""

from __future__ import annotations

import functools
import inspect
import keyword
import re
import types
import typing
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, Optional

import fastapi
from fastapi import routing as fastapi_routing
from starlette.routing import Host, Mount

from . import _decorator
from . import _kinds as k
from ._messages import DOCS_URL, definition_line, fix_line, render
from .exceptions import Code, Kind, ProviderInfo

PG103: Code = "PG103"

#: The last FastAPI that injects what a dependency returns without unwrapping it first.
_LAST_INJECTING_FASTAPI = (0, 123, 4)

# Return annotations that are a session's context manager or transaction whatever their
# type arguments, by the qualified name of a class in their MRO (SQLAlchemy is never
# imported here).
_SESSION_CONTEXT_TYPES = {
    "sqlalchemy.ext.asyncio.session.AsyncSessionTransaction": True,
    "sqlalchemy.ext.asyncio.session._AsyncSessionContextManager": True,
    "sqlalchemy.orm.session.SessionTransaction": False,
}
# Generic return annotations that are evidence only with a session-like first type
# argument: ``AbstractAsyncContextManager[AsyncSession]`` is, a bare
# ``AbstractAsyncContextManager`` (a lock, say) is not. The value: whether it is async.
_GENERIC_CONTEXT_TYPES = {
    "contextlib.AbstractAsyncContextManager": True,
    "contextlib.AbstractContextManager": False,
}
_GENERIC_ITERATOR_TYPES = {
    "collections.abc.AsyncIterator": True,
    "collections.abc.Iterator": False,
}


class DependencyProblem(NamedTuple):
    """A dependency of one route that cannot give a session as written.

    One record per route and parameter: a provider shared by many routes gives one record
    for each route (and each parameter) that depends on it.
    """

    #: The route's full path, router prefixes and mount paths included
    #: (``"/items/{item_id}"``).
    path: str
    #: The route's HTTP methods, sorted (``("GET",)``), or ``("websocket",)``.
    methods: tuple[str, ...]
    #: The parameter that receives the dependency: ``"db"``; ``"user.db"`` for the ``db``
    #: parameter of the dependency behind ``user``; ``"dependencies[0]"`` for the first of
    #: the route's parameterless dependencies (the app's, then the routers' from the
    #: outermost in, then the route's own).
    parameter: str
    #: The dependency's callable: qualified name, kind and definition site.
    provider: ProviderInfo
    #: The misuse code, e.g. ``"PG103"``.
    code: Code
    #: What goes wrong, in one sentence.
    message: str
    #: How to fix it.
    fix: str
    #: The host pattern of the Starlette ``Host`` that serves the route
    #: (``app.host("api.example.com", api)``), or None if the route is served for any host.
    host: Optional[str] = None

    @property
    def route(self) -> str:
        """``"GET /items"``, ``"GET, POST /items"`` or ``"websocket /chat"``; a route served
        behind a ``Host`` is shown as a URL without its scheme, ``"GET api.example.com/items"``."""
        return f"{', '.join(self.methods)} {self.host or ''}{self.path}".strip()

    def __str__(self) -> str:
        where = (
            self.parameter
            if self.parameter.startswith("dependencies[")
            else f"parameter {self.parameter}"
        )
        return (
            f"[{self.code}] {self.route}, {where}: {self.message}\n"
            f"  {definition_line(self.provider)}\n"
            f"{fix_line(self.fix)}\n"
            f"  docs: {DOCS_URL}#{self.code.lower()}"
        )


class _Diagnosis(NamedTuple):
    provider: ProviderInfo
    code: Code
    message: str
    fix: str


def check_app(app: object) -> list[DependencyProblem]:
    """Every dependency of ``app`` that cannot give a session as written."""
    routes = getattr(app, "routes", None)
    if routes is None:
        raise TypeError(
            "protoguard.fastapi.check_app() takes a FastAPI app or an APIRouter, not "
            f"{k.describe(app)}."
        )
    problems: list[DependencyProblem] = []
    seen: set[tuple[Optional[str], str, tuple[str, ...], str]] = set()
    # Keyed by id() of the call and of the module names of the function that depends on
    # it (a fix names a session maker by them); both stay alive for the whole walk.
    diagnoses: dict[tuple[int, int], Optional[_Diagnosis]] = {}
    for host, path, methods, dependant in _routes(routes, None, "", frozenset()):
        for parameter, call, names in _dependencies(dependant, ()):
            key = (id(call), id(names))
            if key not in diagnoses:
                diagnoses[key] = _diagnose(call, names)
            diagnosis = diagnoses[key]
            # The same route reached twice (a router included twice at one prefix).
            if diagnosis is None or (host, path, methods, parameter) in seen:
                continue
            seen.add((host, path, methods, parameter))
            problems.append(DependencyProblem(path, methods, parameter, *diagnosis, host=host))
    return problems


# --- walking the app -------------------------------------------------------------------


def _routes(
    routes: Sequence[Any], host: Optional[str], prefix: str, walking: frozenset[int]
) -> Iterator[tuple[Optional[str], str, tuple[str, ...], Any]]:
    """(host, full path, methods, dependant) of every FastAPI route, the routes of the apps
    and routers behind a Mount or a Host included.

    ``walking`` holds the id() of the route lists whose walk reached ``routes``: an app
    mounted inside itself is walked once.
    """
    if id(routes) in walking:
        return
    walking = walking | {id(routes)}
    # Newer FastAPI keeps an included router as one lazy node and exposes its routes, as
    # they are served, through iter_route_contexts(); older versions copy the routes into
    # the including router, whose route list is then already flat.
    iter_contexts = getattr(fastapi_routing, "iter_route_contexts", None)
    pairs: Iterator[tuple[Any, Any]]
    if iter_contexts is None:  # pragma: no cover - FastAPI without included-router nodes
        pairs = ((route, route) for route in routes)
    else:
        pairs = ((ctx.original_route, ctx) for ctx in iter_contexts(routes))
    for original, effective in pairs:
        if isinstance(original, fastapi_routing.APIWebSocketRoute):
            yield host, prefix + effective.path, ("websocket",), effective.dependant
        elif isinstance(original, fastapi_routing.APIRoute):
            methods = tuple(sorted(effective.methods or ()))
            yield host, prefix + effective.path, methods, effective.dependant
        # Mount and Host give the routes of their app (a FastAPI or Starlette app, a
        # Router), or none for an app without routes (StaticFiles, any other ASGI app).
        # Taken from the node as it is served: a Host in a router included with a prefix
        # serves its app beneath a Mount at that prefix.
        elif isinstance(original, Mount):
            yield from _routes(effective.routes, host, prefix + effective.path, walking)
        elif isinstance(original, Host):
            # Routes behind a Host keep their paths; the request's host must match too
            # (a Host inside a Host: the inner one's, which the request must also match).
            yield from _routes(effective.routes, effective.host, prefix, walking)


def _dependencies(
    dependant: Any, chain: tuple[str, ...]
) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """(parameter, call, the module names of the function that depends on it) of every
    dependency beneath ``dependant``, depth first."""
    names = getattr(_unwrap(_impartial(dependant.call)), "__globals__", None)
    if not isinstance(names, dict):
        names = {}
    position = 0
    for sub in dependant.dependencies:
        if sub.name is None:  # from dependencies=[...]: only a route has those
            label = f"dependencies[{position}]"
            position += 1
        else:
            label = sub.name
        here = (*chain, label)
        if sub.call is not None:
            yield ".".join(here), sub.call, names
        yield from _dependencies(sub, here)


# --- diagnosing one dependency ---------------------------------------------------------


def _guard_info(obj: object) -> Optional[ProviderInfo]:
    """The ProviderInfo of a provider guarded by @protoguard.provider, else None (also
    for a wrapper that functools.wraps gave a guarded provider's mark)."""
    return _decorator._guarded_info(obj)


def _diagnose(call: Any, names: Optional[dict[str, Any]] = None) -> Optional[_Diagnosis]:
    """Why ``call`` cannot give a session through Depends(), or None if it can (or if
    there is no evidence that it cannot). ``names``: the module names of the function
    that depends on it, by which a fix may name a session maker."""
    names = {} if names is None else names
    obj = _impartial(call)
    if isinstance(obj, type):
        return None  # a class: Depends() instantiates it
    maker = _maker_info(obj)
    if maker is not None:
        # A subclass may define a __call__ that FastAPI can call as it is: then it is
        # judged as any other callable instance, by what its __call__ returns.
        refused = _required_parameter(call)
        if refused is not None:
            return _session_maker(_named(maker, obj, names), refused)
    if isinstance(obj, types.MethodType) and obj.__name__ == "begin":
        maker = _maker_info(obj.__self__)
        if maker is not None and _sqlalchemy_begin(obj.__self__):
            return _maker_begin(_named(maker, obj.__self__, names))
    if (
        _guard_info(obj) is None
        and not isinstance(obj, (types.FunctionType, types.MethodType))
        and callable(obj)
    ):
        obj = obj.__call__  # a callable instance: FastAPI classifies its __call__
    # A return annotation says what Depends() injects only if FastAPI injects what the
    # call returns; if it iterates it instead, an iterator annotation is what it needs.
    driven = _driven_as_generator(call)
    seen: set[int] = set()
    while obj is not None and id(obj) not in seen:
        seen.add(id(obj))
        info = _guard_info(obj)
        if info is not None:
            # Guarding makes context-manager functions work with Depends(); it cannot
            # turn a returned context manager into a session.
            if info.kind in (k.COROUTINE, k.FUNCTION):
                if driven:  # a guarded wrapper of a generator function
                    if info.kind == k.FUNCTION:
                        # contextlib gets the generator it returns (see _decorator's
                        # call): FastAPI drives it as it would the unguarded wrapper.
                        return None
                    return _wraps_a_generator(info, guarded=True)
                return _returns_wrong(obj, info)
            if info.kind in (k.ASYNC_CM, k.SYNC_CM) and not driven:
                return _guarded_but_injected(obj, info)
            return None
        kind = k.classify(obj)
        if kind in (k.ASYNC_CM, k.SYNC_CM):
            return _context_manager_function(obj, kind)
        if kind not in (k.COROUTINE, k.FUNCTION):
            return None  # (async) generators, session makers, non-providers
        name, filename, lineno = k.definition_site(obj)
        info = ProviderInfo(name, kind, filename, lineno)
        if not driven:
            diagnosis = _returns_wrong(obj, info)
            if diagnosis is not None or kind == k.COROUTINE:
                return diagnosis
        elif kind == k.COROUTINE:  # a coroutine function wrapping a generator function
            return _wraps_a_generator(info, guarded=False)
        # A plain function with __wrapped__ is a transparent wrapper (functools.wraps):
        # what it returns is what the function beneath returns. Its return annotation,
        # copied by functools.wraps, is that function's, so it is no evidence when FastAPI
        # iterates what the call returns.
        obj = getattr(obj, "__wrapped__", None)
    return None


def _impartial(func: Any) -> Any:
    while isinstance(func, functools.partial):
        func = func.func
    return func


def _unwrap(func: Any) -> Any:
    try:
        return inspect.unwrap(func)
    except ValueError:  # a cycle of __wrapped__
        return func


def _short(info: ProviderInfo) -> str:
    return info.name.rpartition("<locals>.")[2]


def _fastapi_injects() -> bool:
    """Whether the installed FastAPI injects what a context-manager function returns
    (0.123.4 and earlier) rather than failing to iterate it."""
    parts = re.findall(r"\d+", fastapi.__version__)[:3]
    return tuple(int(part) for part in parts) <= _LAST_INJECTING_FASTAPI


def _driven_as_generator(call: Any) -> bool:
    """Whether FastAPI runs ``call`` as a dependency with cleanup: calls it, then iterates
    what it returns, rather than injecting what it returns (or what that returns when
    awaited). FastAPI decides by the kind of function it reads, not by what calling
    ``call`` returns.
    """
    return any(
        inspect.isasyncgenfunction(target) or inspect.isgeneratorfunction(target)
        for target in _read_by_fastapi(call)
    )


def _read_by_fastapi(call: Any) -> list[Any]:
    """The callables whose kind the installed FastAPI reads to decide how to run ``call``.

    FastAPI 0.123.5 and later look beneath partials and ``__wrapped__`` (as
    ``fastapi.dependencies.models._unwrapped_call`` does), at ``call`` and at its
    ``__call__``; earlier ones read ``call`` and its ``__call__`` as they are (``inspect``
    itself looks beneath partials and bound methods).
    """
    if _fastapi_injects():
        return [call, getattr(call, "__call__", None)]  # noqa: B004
    outer = _impartial(call)
    unwrapped = _unwrap(outer)
    targets = [outer, unwrapped]
    if inspect.isclass(unwrapped):
        return targets
    for owner in (outer, unwrapped):
        dunder_call = getattr(owner, "__call__", None)  # noqa: B004
        if dunder_call is not None:
            targets += [_impartial(dunder_call), _unwrap(_impartial(dunder_call))]
    return targets


def _generator_fix(obj: Any, name: str, is_async: bool) -> str:
    """The generator to write in place of ``obj`` (``name``, its qualified name), on lines
    of its own: a definition is more than one line, and the code is valid Python as it
    stands (printed one level in under "fix:"). A method's is the method as its class
    writes it: ``def session(self):`` for ``Database.session``."""
    decorator, signature = _defined_as(obj, name)
    if is_async:
        header, block = f"async def {signature}:", render(k.ASYNC_WITH, "...", "session")
    else:
        header, block = f"def {signature}:", render(k.WITH, "...", "session")
    return f"\n{decorator}{header}\n    {block}\n        yield session"


def _defined_as(obj: Any, name: str) -> tuple[str, str]:
    """The decorator line (with its newline, or "") and the name and parameters of the
    def that replaces ``obj``: ``get_db()`` for a function, ``session(self)`` for a
    method (``Holder.__call__``: a callable instance's), ``@classmethod`` and
    ``session(cls)`` for a class method, ``@staticmethod`` and ``session()`` for a
    static one. ``check`` hands over the function itself, not bound, for all three: it is
    then told by its class's attribute, or failing that by its first parameter."""
    own = name.rpartition(".")[2]
    if isinstance(obj, types.MethodType):
        if isinstance(obj.__self__, type):
            return "@classmethod\n", f"{own}(cls)"
        return "", f"{own}(self)"
    if own == name:
        return "", f"{name}()"
    found = _class_attribute(obj)
    try:
        first = next(iter(inspect.signature(_unwrap(obj)).parameters), None)
    except (TypeError, ValueError):  # no signature to read
        first = None
    if isinstance(found, classmethod) or (found is None and first == "cls"):
        return "@classmethod\n", f"{own}(cls)"
    if isinstance(found, staticmethod) or first is None or (found is None and first != "self"):
        return "@staticmethod\n", f"{own}()"
    return "", f"{own}({first})"


def _class_attribute(func: Any) -> Any:
    """What the class of a function defined in a class body holds under its name (a
    classmethod, a staticmethod, the function), read without running code; None for a
    class defined in a function, or one that cannot be found."""
    qualname = getattr(func, "__qualname__", "")
    names = getattr(_unwrap(func), "__globals__", None)
    if not isinstance(qualname, str) or "<locals>" in qualname or not isinstance(names, dict):
        return None
    *path, own = qualname.split(".")
    try:
        owner = names.get(path[0]) if path else None
        for part in path[1:]:
            owner = inspect.getattr_static(owner, part, None)
        if not isinstance(owner, type):
            return None
        return inspect.getattr_static(owner, own, None)
    except Exception:  # a class that breaks getattr_static: no evidence
        return None


def _context_manager_function(obj: Any, kind: Kind) -> _Diagnosis:
    name, filename, lineno = k.definition_site(obj)
    info = ProviderInfo(name, kind, filename, lineno)
    short = _short(info)
    is_async = kind == k.ASYNC_CM
    decorator = "@asynccontextmanager" if is_async else "@contextmanager"
    returned = "_AsyncGeneratorContextManager" if is_async else "_GeneratorContextManager"
    if _fastapi_injects():
        outcome = (
            f"FastAPI calls {short}() and injects the {returned} it returns, so the "
            "endpoint's first use of it as a session fails with AttributeError."
        )
    else:
        outcome = (
            f"FastAPI calls {short}() and then fails to iterate the {returned} it returns, "
            "before the endpoint runs."
        )
    message = f"{short} is an unguarded {decorator} function: {outcome}"
    gen = "an async generator" if is_async else "a generator"
    fix = (
        f"decorate {short} with @protoguard.provider (above {decorator}), or make it "
        f"{gen}:{_generator_fix(obj, short, is_async)}"
    )
    return _Diagnosis(info, PG103, message, fix)


def _maker_info(obj: Any) -> Optional[ProviderInfo]:
    """The ProviderInfo of a session maker, guarded (its name and where it was guarded) or
    not (its type's name, no site), else None."""
    info = _guard_info(obj)
    if info is not None:
        return info if info.kind in (k.ASYNC_SESSIONMAKER, k.SESSIONMAKER) else None
    kind = k.classify(obj)
    if kind in (k.ASYNC_SESSIONMAKER, k.SESSIONMAKER):
        return ProviderInfo(type(obj).__name__, kind, None, None)
    return None


def _required_parameter(call: Any) -> Optional[str]:
    """The parameter of ``call``'s signature, as FastAPI reads it, that the request must
    send (``**local_kw`` for SQLAlchemy's makers), or None if there is none (or no
    signature to read)."""
    try:
        parameters = inspect.signature(call).parameters.values()
    except (TypeError, ValueError):
        return None
    for parameter in parameters:
        if parameter.kind == inspect.Parameter.VAR_KEYWORD:
            return f"**{parameter.name}"
        if (
            parameter.kind != inspect.Parameter.VAR_POSITIONAL
            and parameter.default is inspect.Parameter.empty
        ):
            return parameter.name
    return None


def _sqlalchemy_begin(maker: Any) -> bool:
    """Whether the ``begin`` of ``maker`` (the maker beneath the guard, for a guarded one)
    is SQLAlchemy's own, which returns a context manager; a subclass's may be a generator
    FastAPI drives."""
    target = maker.__wrapped__ if _guard_info(maker) is not None else maker
    begin = inspect.getattr_static(type(target), "begin", None)
    return str(getattr(begin, "__module__", "")).startswith("sqlalchemy.")


def _is_code(name: str) -> bool:
    """Whether ``name`` can stand in code as it is: a dotted identifier."""
    return all(part.isidentifier() and not keyword.iskeyword(part) for part in name.split("."))


def _named(info: ProviderInfo, maker: Any, names: dict[str, Any]) -> _Maker:
    """``info`` with the name by which a fix can write ``maker`` in code, or None: a
    guarded maker's name if it is code and means no other object in the module of the
    function that depends on it (``names``), else a module name that holds ``maker``."""
    guarded = info.filename is not None
    if guarded and info.name != info.kind and _is_code(info.name):
        first = info.name.split(".")[0]
        if first not in names or (first == info.name and names[first] is maker):
            return _Maker(info, info.name)
    try:
        held = [name for name, value in names.items() if value is maker]
    except Exception:  # a module dict changed under us: no name
        held = []
    if not held:
        return _Maker(info, None)
    if not guarded:
        info = info._replace(name=held[0])
    return _Maker(info, held[0])


class _Maker(NamedTuple):
    info: ProviderInfo
    #: The name by which code can write the maker, or None if there is none to trust.
    code: Optional[str]

    @property
    def unnamed(self) -> bool:
        """An unguarded maker that no module name holds: its name is its type's."""
        return self.info.filename is None and self.code is None


def _maker_generator(info: ProviderInfo, maker: Optional[str], call: str, does: str) -> str:
    """The fix for a session maker's dependency: the (async) generator that enters
    ``maker`` + ``call`` (``Session.begin()``) and ``does``. Without a name to trust
    (``maker`` None), ``...`` stands for it."""
    is_async = info.kind == k.ASYNC_SESSIONMAKER
    gen = "an async generator" if is_async else "a generator"
    header = "async def get_db():" if is_async else "def get_db():"
    known = maker is not None
    expr = f"{maker}{call}" if known else "..."
    where = "" if known else f" (... being Session{call} for a maker named Session)"
    block = render(k.ASYNC_WITH if is_async else k.WITH, expr, "session")
    return f"depend on {gen} that {does}{where}:\n{header}\n    {block}\n        yield session"


def _maker_begin(maker: _Maker) -> _Diagnosis:
    """PG103 for a session maker's begin() given to Depends(): FastAPI calls it and
    injects the block it returns (its annotation says so only for async_sessionmaker)."""
    info = maker.info._replace(name=f"{maker.info.name}.begin")
    if maker.unnamed:
        heading = f"the begin() of this {info.kind} is given to Depends(), which calls"
    else:
        heading = (
            f"{_short(info)} is the begin() of {_article(info.kind)} {info.kind}: Depends() calls"
        )
    message = f"{heading} it and injects the context manager it returns, not a session."
    fix = _maker_generator(info, maker.code, ".begin()", "enters its block and yields the session")
    return _Diagnosis(info, PG103, message, fix)


def _session_maker(maker: _Maker, refused: str) -> _Diagnosis:
    """PG103 for a session maker given to Depends() itself: FastAPI reads the signature
    of its ``__call__``, ``(**local_kw)`` for SQLAlchemy's, and ``refused``, its parameter
    that the request must send, as a required query parameter."""
    info = maker.info
    if maker.unnamed:
        heading = f"this {info.kind} is given to Depends(), which reads"
    else:
        heading = f"{_short(info)} is {_article(info.kind)} {info.kind}: Depends() reads"
    message = (
        f"{heading} its {refused} as a query parameter the request must send, so FastAPI "
        "refuses every request to the route before the endpoint runs (422, or a websocket "
        f"closed with 1008: {refused.lstrip('*')} missing)."
    )
    fix = _maker_generator(info, maker.code, "()", "opens a session from it and yields it")
    return _Diagnosis(info, PG103, message, fix)


def _guarded_but_injected(obj: Any, info: ProviderInfo) -> _Diagnosis:
    short = _short(info)
    is_async = info.kind == k.ASYNC_CM
    gen = "an async generator" if is_async else "a generator"
    message = (
        f"{short} is a guarded {info.kind}, but FastAPI {fastapi.__version__} does not look "
        f"beneath @protoguard.provider: Depends() calls {short}() and injects the context "
        "manager it returns, so the endpoint's first use of it as a session raises PG103 "
        "(AttributeError where protoguard is off)."
    )
    fix = (
        f"upgrade FastAPI to 0.123.5 or later, or make {short} {gen}:"
        f"{_generator_fix(obj, short, is_async)}"
    )
    return _Diagnosis(info, PG103, message, fix)


def _wraps_a_generator(info: ProviderInfo, guarded: bool) -> _Diagnosis:
    """PG103 for a wrapper that FastAPI drives as the generator function beneath it
    (through ``__wrapped__``) but that does not return a generator: a coroutine function
    returns a coroutine."""
    short = _short(info)
    returned = "the coroutine it returns"
    message = (
        f"{short} is a {'guarded ' if guarded else ''}{info.kind} that wraps a generator "
        f"function: FastAPI sees the generator function beneath (through __wrapped__), "
        f"calls {short}() and then fails to iterate {returned}, before the endpoint runs."
    )
    plain = "a plain function (def, not async def) that returns what the function beneath returns"
    if not guarded:
        fix = f"make the wrapper of {short} {plain}"
    else:
        fix = (
            "move @protoguard.provider beneath the wrapper, onto the generator function "
            f"itself, and make the wrapper {plain}"
        )
    return _Diagnosis(info, PG103, message, fix)


def _returns_wrong(obj: Any, info: ProviderInfo) -> Optional[_Diagnosis]:
    """PG103 if ``obj``'s return annotation is a session's context manager or iterator."""
    try:
        annotation = typing.get_type_hints(obj).get("return")
    except Exception:  # names that do not resolve: no evidence
        return None
    found = _wrong_return_type(annotation)
    if found is None:
        return None
    what, is_async, shown = found
    short = _short(info)
    does = "awaits it" if info.kind == k.COROUTINE else "calls it"
    message = (
        f"{short} is a {info.kind} that returns {_article(what)} {what} ({shown}): "
        f"Depends() {does} and injects the {what}, not a session."
    )
    gen = "an async generator" if is_async else "a generator"
    fix = f"make {short} {gen} that yields the session:{_generator_fix(obj, short, is_async)}"
    return _Diagnosis(info, PG103, message, fix)


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def _qualified_mro(tp: type) -> list[str]:
    return [f"{base.__module__}.{base.__qualname__}" for base in getattr(tp, "__mro__", ())]


def _wrong_return_type(annotation: Any) -> Optional[tuple[str, bool, str]]:
    """(what it is, whether async, its readable name), or None if it may be a session."""
    origin = typing.get_origin(annotation) or annotation
    if not isinstance(origin, type):
        return None  # Union, Optional, Any, a string that did not resolve
    mro = _qualified_mro(origin)
    for qualified, is_async in _SESSION_CONTEXT_TYPES.items():
        if qualified in mro:
            return "context manager", is_async, origin.__qualname__
    args = typing.get_args(annotation)
    session = args[0] if args else None
    if not (isinstance(session, type) and callable(getattr(session, "execute", None))):
        return None
    shown = f"{origin.__qualname__} of {session.__qualname__}"
    for qualified, is_async in _GENERIC_CONTEXT_TYPES.items():
        if qualified in mro:
            return "context manager", is_async, shown
    for qualified, is_async in _GENERIC_ITERATOR_TYPES.items():
        if qualified in mro:
            return "iterator", is_async, shown
    return None
