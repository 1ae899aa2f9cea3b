"""Find wrong protocols in a module's source, once the module has executed.

A *use* is a provider called in one of the places where its protocol matters::

    async for x in f(...)      async with f(...)      with f(...)      for x in f(...)
    await f(...)               Depends(f)  (plain, in Annotated[...], in dependencies=[...])
    f(...).execute             db = f(...)  ...  db.execute   (PG103: a session's attribute
                                                               on what the provider returned)
    cm = f(...)  ...  async with cm:  ...  async with cm:     (PG107: one context manager
                                                               entered twice)

``f`` is a name or a dotted attribute chain. The source is parsed once with :mod:`ast`;
``f`` is then resolved against the module's real globals, so imports and aliases
(``from .deps import get_db as db``, ``import app.deps as deps``) are followed exactly as
Python followed them. Resolution never runs user code: attributes are looked up with
``inspect.getattr_static``. A name bound inside the enclosing function (a parameter, a
local) is not the global of that name, and is skipped, as is anything that does not
resolve.

The import hook reads the text first (``_index.index_calls``): the calls that might be
uses, a superset of what the parser finds, cached per file. Once the module ran, only
those names are resolved (:func:`needs_parse`); the source is parsed only if one of them
is a provider that may not speak the protocol it is used with, and the parser decides.
When the text leaves any doubt, it parses.
"""

from __future__ import annotations

import ast
import bisect
import contextlib
import dataclasses
import functools
import inspect
import re
import sys
import textwrap
import tokenize
import types
from collections.abc import Iterable, Mapping
from typing import Any, Callable, NamedTuple, Optional, Union

from . import _decorator, _messages, _proxies
from . import _kinds as k
from .exceptions import Code, Kind, ProviderInfo

#: The protocol of a ``Depends(f)`` use.
DEPENDS = "Depends"
#: The protocol of a use of the provider's result as the session (PG103).
ATTRIBUTE = k.ATTRIBUTE
#: The protocol of a second entry of the context manager a provider returned (PG107).
REENTER = k.REENTER

# The protocols a use can have, as the user wrote them.
_STATEMENT_PROTOCOLS = (k.ASYNC_FOR, k.ASYNC_WITH, k.WITH, k.FOR, k.AWAIT)
_DEPENDS_NAMES = frozenset({"Depends", "Security"})
# Attribute chains longer than this are not followed (nor worth following).
_MAX_CHAIN = 6

_Span = tuple[int, int, int, int]  # lineno, col_offset, end_lineno, end_col_offset


class Use(NamedTuple):
    """One place where a provider's protocol matters, as found in the source."""

    #: ``"async for"``, ``"async with"``, ``"with"``, ``"for"``, ``"await"`` or
    #: ``"Depends"``.
    protocol: str
    #: The name or attribute chain that is called (or handed to ``Depends``).
    chain: tuple[str, ...]
    #: Where the call (or the ``Depends`` argument) is: line, col, end line, end col
    #: (1-based lines, 0-based UTF-8 byte columns, as in :mod:`ast`).
    span: _Span
    #: Where the name the result is bound to is (``db`` in ``async for db in ...``).
    target: Optional[_Span]
    #: For ``Depends``: the chain of the ``Depends``/``Security`` callable itself.
    via: tuple[str, ...] = ()
    #: For :data:`ATTRIBUTE`: the session attribute taken on the provider's result
    #: (``execute``), and where that attribute expression is (``db.execute``,
    #: ``get_db().execute``); ``target`` is then the name the result was assigned to
    #: (None for ``get_db().execute``). For :data:`REENTER`: the statement that enters
    #: the name again (``"async with"`` or ``"with"``), and where the name is in it (or
    #: the statement's start, if the name is on a later line); ``target`` is the name
    #: the result was assigned to.
    attr: str = ""
    at: Optional[_Span] = None
    #: The first and last line of the module's top-level statement that holds the use
    #: (where ``at`` is, for :data:`ATTRIBUTE`), with any sharing a line with it: all
    #: that a finding's text parses. None: the whole module.
    lines: Optional[tuple[int, int]] = None


@dataclasses.dataclass(frozen=True)
class SourceFinding:
    """A misuse found in source: where, which code, what, and the fix."""

    #: The file, as the module's ``__file__`` names it.
    path: str
    #: The line (1-based).
    line: int
    #: The column (1-based, in characters).
    col: int
    #: The misuse code, e.g. ``"PG101"``.
    code: Code
    #: What is wrong, in one sentence.
    message: str
    #: The user's statement rewritten, or what to change.
    fix: str
    #: The provider that is misused.
    provider: ProviderInfo
    #: The module's name.
    module: str = ""
    #: The protocol the code used: ``"async for"``, ..., or ``"Depends"``.
    used: str = ""
    #: What else the fix needs, as run time says it after the fix (``"import
    #: contextlib"``, ``"needs an async def; main() is a plain def"``); not part of
    #: ``fix``, which is code only. Empty if nothing.
    note: str = ""

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}:{self.col}: {self.code} {self.message}; "
            f"fix: {self.fix_with_note()}"
        )

    def fix_with_note(self) -> str:
        """The fix, with its note after it as a comment (``  # import contextlib``), as
        the run-time message writes it."""
        return f"{self.fix}  # {self.note}" if self.note else self.fix


# --- parsing ---------------------------------------------------------------------------


class _Scope:
    """The names bound in one function, class or comprehension scope."""

    __slots__ = (
        "assigned",
        "attr_owners",
        "bound",
        "declared_global",
        "entered",
        "is_class",
        "is_comprehension",
        "parent",
    )

    def __init__(
        self,
        parent: Optional[_Scope],
        *,
        is_class: bool = False,
        is_comprehension: bool = False,
    ) -> None:
        self.parent = parent
        self.is_class = is_class
        self.is_comprehension = is_comprehension
        self.bound: set[str] = set()
        self.declared_global: set[str] = set()
        # For PG103: `name = f(...)` statements, and the names a session attribute is
        # taken on (`name.execute`), in this scope itself.
        self.assigned: list[tuple[ast.Name, ast.Call, ast.stmt]] = []
        self.attr_owners: set[str] = set()
        # For PG107: the names a with statement enters (`async with cm as db:`).
        self.entered: set[str] = set()


def _chain(node: ast.AST) -> Optional[tuple[str, ...]]:
    """``("a", "b", "c")`` for ``a.b.c``; None for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or len(parts) >= _MAX_CHAIN:
        return None
    parts.append(node.id)
    parts.reverse()
    return tuple(parts)


def _span(node: ast.AST) -> _Span:
    return (
        node.lineno,  # type: ignore[attr-defined]
        node.col_offset,  # type: ignore[attr-defined]
        getattr(node, "end_lineno", None) or node.lineno,  # type: ignore[attr-defined]
        getattr(node, "end_col_offset", None) or node.col_offset,  # type: ignore[attr-defined]
    )


_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
_STORE = (ast.Store, ast.Del)
# Pattern-matching captures (3.10+): looked up by name so 3.9 works.
_CAPTURES = tuple(getattr(ast, name) for name in ("MatchAs", "MatchStar") if hasattr(ast, name))
_MATCH_MAPPING = getattr(ast, "MatchMapping", None)
_TRIES = tuple(getattr(ast, name) for name in ("Try", "TryStar") if hasattr(ast, name))
_NESTED = (*_FUNCTIONS, ast.ClassDef, ast.Lambda, *_COMPREHENSIONS)
_WITHS = (ast.With, ast.AsyncWith)
_With = Union[ast.With, ast.AsyncWith]
_LOOPS = (ast.For, ast.AsyncFor, ast.While)
# What holds statements: a statement, an except clause, a case of a match (3.10+).
_BLOCKS = (
    ast.stmt,
    ast.ExceptHandler,
    *(getattr(ast, n) for n in ("match_case",) if hasattr(ast, n)),
)

#: The attributes whose use on a provider's result is PG103, as run time decides it:
#: a session's attributes, and (on a context manager only) ``close`` and ``aclose``.
SESSION_NAMES = k.SESSION_ATTRIBUTES | _proxies._CLOSE_METHODS
_CONTEXT_MANAGER_KINDS = frozenset({k.ASYNC_CM, k.SYNC_CM})
_RESULT_TYPES: dict[str, type] = {
    k.ASYNC_CM: contextlib._AsyncGeneratorContextManager,
    k.SYNC_CM: contextlib._GeneratorContextManager,
    k.ASYNC_GEN: types.AsyncGeneratorType,
    k.SYNC_GEN: types.GeneratorType,
    k.COROUTINE: types.CoroutineType,
}


def session_attributes(kind: Kind) -> frozenset[str]:
    """The attributes that are PG103 on what a provider of ``kind`` returns (none for a
    session maker, whose result is the session): those run time reports, less any the
    result's own type has (a generator's ``close``)."""
    result_type = _RESULT_TYPES.get(kind)
    if result_type is None:
        return frozenset()
    names = SESSION_NAMES if kind in _CONTEXT_MANAGER_KINDS else k.SESSION_ATTRIBUTES
    return frozenset(name for name in names if not hasattr(result_type, name))


def _is_attribute_error(node: Optional[ast.AST]) -> bool:
    """Whether an ``except`` clause's type (or ``suppress()``'s argument) names
    AttributeError, alone or in a tuple."""
    if isinstance(node, ast.Tuple):
        return any(_is_attribute_error(element) for element in node.elts)
    chain = _chain(node) if node is not None else None
    return chain is not None and chain[-1] == "AttributeError"


def _shielded_body(node: ast.AST) -> bool:
    """Whether ``node``'s body runs where an AttributeError is caught on purpose (``try:
    ... except AttributeError:``, ``with suppress(AttributeError):``): code that probes
    for an attribute, which is no misuse to report."""
    if isinstance(node, _TRIES):
        return any(_is_attribute_error(handler.type) for handler in node.handlers)
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return any(
            isinstance(item.context_expr, ast.Call)
            and any(_is_attribute_error(arg) for arg in item.context_expr.args)
            for item in node.items
        )
    return False


class _Flow:
    """For PG103 and PG107 in one scope: each of ``names`` (each assigned a call once in
    the scope), whether it is only ever used as ``name.attr`` or entered as a with
    item of its own (``async with name as db:``) there (no other read, no other
    binding, no use from a nested scope), and where each ``name.attr`` and each entry
    is."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.bailed: set[str] = set()
        self.bindings: dict[str, list[ast.AST]] = {name: [] for name in names}
        self.accesses: dict[str, list[tuple[ast.Attribute, bool]]] = {name: [] for name in names}
        # Each with statement that enters the name, with the statements it is in (the
        # outermost first).
        self.entries: dict[str, list[tuple[_With, tuple[ast.AST, ...]]]] = {
            name: [] for name in names
        }
        # The statements the last binding of each name is in (its own last).
        self.binding_paths: dict[str, tuple[ast.AST, ...]] = {}
        self._ancestors: list[ast.AST] = []

    def _bail(self, *names: Optional[str]) -> None:
        self.bailed.update(name for name in names if name in self.names)

    def walk(self, node: ast.AST, nested: bool, shielded: bool) -> None:
        # Recursive as the collector's walk is (a tree too deep raises RecursionError).
        names = self.names
        if isinstance(node, ast.Name):
            if node.id in names:
                if nested or isinstance(node.ctx, ast.Load):
                    self.bailed.add(node.id)  # read as itself: passed, returned, entered
                else:
                    self.bindings[node.id].append(node)
                    self.binding_paths[node.id] = tuple(self._ancestors)
            return
        if isinstance(node, ast.Attribute):
            value = node.value
            if isinstance(value, ast.Name) and value.id in names:
                if nested or not isinstance(node.ctx, ast.Load):
                    self.bailed.add(value.id)
                else:
                    self.accesses[value.id].append((node, shielded))
                return
        elif isinstance(node, _NESTED):
            if not nested and isinstance(node, (*_FUNCTIONS, ast.ClassDef)):
                self._bail(node.name)
            nested = True
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            self._bail(*(a.asname or a.name.partition(".")[0] for a in node.names))
            return
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            self._bail(*node.names)
            return
        elif isinstance(node, ast.ExceptHandler):
            self._bail(node.name)
        elif _CAPTURES and isinstance(node, _CAPTURES):
            self._bail(getattr(node, "name", None))
        elif _MATCH_MAPPING is not None and isinstance(node, _MATCH_MAPPING):
            self._bail(getattr(node, "rest", None))
        elif isinstance(node, (ast.With, ast.AsyncWith)) and not nested:
            for item in node.items:
                expr = item.context_expr
                if isinstance(expr, ast.Name) and expr.id in names:
                    # Entered by itself (`async with cm as db:`): PG107's, not a read.
                    self.entries[expr.id].append((node, tuple(self._ancestors)))
                    if len(node.items) > 1:
                        self.bailed.add(expr.id)  # (not one the fix can rewrite alone)
        is_block = isinstance(node, _BLOCKS)
        if is_block:
            self._ancestors.append(node)
        body = (
            {id(statement) for statement in node.body}  # type: ignore[attr-defined]
            if _shielded_body(node)
            else ()
        )
        for child in ast.iter_child_nodes(node):
            if (
                isinstance(child, ast.Name)
                and isinstance(node, ast.withitem)
                and child is node.context_expr
                and child.id in names
                and not nested
            ):
                continue  # an entry, recorded above
            self.walk(child, nested, shielded or id(child) in body)
        if is_block:
            self._ancestors.pop()


def _in(statement: ast.AST, block: list[ast.stmt]) -> bool:
    return any(node is statement for node in block)


def _holder(
    parent: Optional[ast.AST], statement: ast.AST, body: list[ast.stmt]
) -> Optional[tuple[list[ast.stmt], int]]:
    """The list of statements ``statement`` is in, directly in ``parent`` (in ``body``,
    the function's, for None), and its index there; None if it is in none (an except
    clause or a case of a match, which only one of runs, holds it)."""
    blocks = (
        [body]
        if parent is None
        else [getattr(parent, f, None) for f in ("body", "orelse", "finalbody")]
    )
    for block in blocks:
        if isinstance(block, list):
            for index, node in enumerate(block):
                if node is statement:
                    return block, index
    return None


def _leaves(statements: list[ast.stmt]) -> bool:
    """Whether anything in ``statements``, at any depth, may leave them early: a return,
    a raise, or a break or continue of the loop around them."""
    return _messages.statements_leave_early(statements, raises=True)


def _straight(path: tuple[ast.AST, ...]) -> bool:
    """Whether, once the first statement of ``path`` (each of its statements in the one
    before) runs, the last runs whole: the ones before it are with statements, each the
    next in its body, and none of their bodies (nor the last's, a with statement too)
    has a return, raise, break or continue, at any depth (see _leaves)."""
    for outer, inner in zip(path, path[1:]):
        if not isinstance(outer, _WITHS) or not _in(inner, outer.body):
            return False
    return not any(_leaves(node.body) for node in path if isinstance(node, _WITHS))


def _after(first: tuple[ast.AST, ...], second: tuple[ast.AST, ...], body: list[ast.stmt]) -> bool:
    """Whether the with statement ending ``second`` (its statements from the
    function's body in) surely runs after the one ending ``first`` has been entered,
    if it runs: in its block (nested), or later in the same list of statements, the
    first reached through with statements only and no return, raise, break or continue
    between them, at any depth. Not for two branches of an if/else or a try/except,
    which only one of may run."""
    if any(node is first[-1] for node in second[:-1]):
        return True  # nested in its block
    if any(node is second[-1] for node in first[:-1]):
        return False  # the other way round
    common = 0
    while common < min(len(first), len(second)) and first[common] is second[common]:
        common += 1
    parent = first[common - 1] if common else None
    one = _holder(parent, first[common], body)
    other = _holder(parent, second[common], body)
    if one is None or other is None or one[0] is not other[0] or one[1] >= other[1]:
        return False
    block = one[0]
    if _leaves(block[one[1] + 1 : other[1]]):
        return False
    return _straight(first[common:])


def _in_loop(entry: tuple[ast.AST, ...], assignment: ast.stmt, around: tuple[ast.AST, ...]) -> bool:
    """Whether the with statement ending ``entry`` runs at each turn of a loop (with
    statements only between them) that ``assignment`` (in the statements ``around``)
    comes before, and nothing in the loop's body, at any depth, may leave it early or
    skip the entry (a return, raise, break or continue)."""
    index = len(entry) - 1
    while index > 0 and isinstance(entry[index - 1], _WITHS):
        index -= 1
    if index == 0:
        return False
    loop = entry[index - 1]
    if not isinstance(loop, _LOOPS) or not _in(entry[index], loop.body):
        return False
    if any(node is loop for node in around):
        return False  # a new one at each turn
    if (assignment.lineno, assignment.col_offset) > (loop.lineno, loop.col_offset):
        return False
    if _leaves(loop.body):
        return False  # (a continue too: it may skip the entry at every turn but one)
    return _straight(entry[index:])


def _entered_again(
    entries: list[tuple[_With, tuple[ast.AST, ...]]],
    assignment: ast.stmt,
    around: tuple[ast.AST, ...],
    body: list[ast.stmt],
) -> Optional[_With]:
    """PG107: of the with statements that enter one name (``assignment``, ``cm =
    get_db()``, its only binding, in the statements ``around``), the first that surely
    enters it a second time: after another in the same block or in its block, or in a
    loop; None if none is sure to."""
    end = (assignment.end_lineno or assignment.lineno, assignment.end_col_offset or 0)
    if any((node.lineno, node.col_offset) < end for node, _ in entries):
        return None  # one before the assignment: in a loop, another object's turn
    if len({type(node) for node, _ in entries}) > 1:
        return None  # `with` and `async with`: one of them is another misuse
    ordered = sorted(entries, key=lambda entry: (entry[0].lineno, entry[0].col_offset))
    paths = [(*ancestors, node) for node, ancestors in ordered]
    for (node, _), second in zip(ordered, paths):
        if any(_after(first, second, body) for first in paths if first is not second):
            return node
    for (node, _), path in zip(ordered, paths):
        if _in_loop(path, assignment, around):
            return node
    return None


class _Collector:
    """One walk over a module's tree: the uses, and the names bound in each scope."""

    def __init__(self) -> None:
        self.found: list[tuple[Use, _Scope]] = []
        self.await_targets: dict[int, ast.AST] = {}
        self.shielded = 0  # inside how many bodies that catch AttributeError on purpose
        self.declared_global: set[str] = set()  # by a `global` statement anywhere

    # The walk is recursive; a pathological tree raises RecursionError, which the caller
    # treats as a module it cannot read.
    def visit(self, node: ast.AST, scope: _Scope) -> None:
        if isinstance(node, _FUNCTIONS):
            scope.bound.add(node.name)
            for decorator in node.decorator_list:
                self.visit(decorator, scope)
            inner = _Scope(scope)
            self._arguments(node.args, scope, inner)
            if node.returns is not None:
                self.visit(node.returns, scope)
            for statement in node.body:
                self.visit(statement, inner)
            arguments = node.args
            parameters = {
                a.arg
                for a in (
                    *arguments.posonlyargs,
                    *arguments.args,
                    *arguments.kwonlyargs,
                    arguments.vararg,
                    arguments.kwarg,
                )
                if a is not None
            }
            self.flow(node.body, inner, parameters)
            return
        if isinstance(node, ast.Lambda):
            inner = _Scope(scope)
            self._arguments(node.args, scope, inner)
            self.visit(node.body, inner)
            return
        if isinstance(node, ast.ClassDef):
            scope.bound.add(node.name)
            for child in (*node.decorator_list, *node.bases, *node.keywords):
                self.visit(child, scope)
            inner = _Scope(scope, is_class=True)
            for statement in node.body:
                self.visit(statement, inner)
            return
        if isinstance(node, _COMPREHENSIONS):
            self._comprehension(node, scope)
            return
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, _STORE):
                scope.bound.add(node.id)
            return
        if isinstance(node, ast.NamedExpr):
            # A walrus in a comprehension binds in the enclosing function.
            owner = scope
            while owner.is_comprehension and owner.parent is not None:
                owner = owner.parent
            if isinstance(node.target, ast.Name):
                owner.bound.add(node.target.id)
            self.visit(node.value, scope)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name != "*":
                    scope.bound.add(alias.asname or alias.name.partition(".")[0])
            return
        if isinstance(node, ast.Global):
            scope.declared_global.update(node.names)
            self.declared_global.update(node.names)
            return
        if isinstance(node, ast.Nonlocal):
            scope.bound.update(node.names)
            return
        if isinstance(node, ast.ExceptHandler) and node.name:
            scope.bound.add(node.name)
        elif _CAPTURES and isinstance(node, _CAPTURES):
            name = getattr(node, "name", None)
            if name:
                scope.bound.add(name)
        elif _MATCH_MAPPING is not None and isinstance(node, _MATCH_MAPPING):
            rest = getattr(node, "rest", None)
            if rest:
                scope.bound.add(rest)
        self._uses(node, scope)
        if _shielded_body(node):
            body = {id(statement) for statement in node.body}  # type: ignore[attr-defined]
            for child in ast.iter_child_nodes(node):
                shielded = id(child) in body
                self.shielded += shielded
                self.visit(child, scope)
                self.shielded -= shielded
            return
        for child in ast.iter_child_nodes(node):
            self.visit(child, scope)

    def flow(self, body: list[ast.stmt], scope: _Scope, parameters: set[str]) -> None:
        """PG103 and PG107 in one function's body (PG103 in the module's too): ``name =
        f(...)``, the only binding of ``name`` in the scope, then ``name.execute`` after
        it (PG103), or ``async with name`` twice (PG107), ``name`` used in no other way
        (not iterated, awaited, passed, returned, read by a nested function; for PG103
        not entered, for PG107 no attribute taken)."""
        if not scope.assigned:
            return
        owners = scope.attr_owners
        if scope.parent is not None:  # PG107 in a function only
            owners = owners | scope.entered
        if not owners:
            return
        candidates: dict[str, tuple[ast.Name, ast.Call, ast.stmt]] = {}
        for assigned in scope.assigned:
            if assigned[0].id in owners:
                candidates.setdefault(assigned[0].id, assigned)
        names = set(candidates) - parameters - scope.declared_global
        if scope.parent is None:
            names -= self.declared_global  # a module global another function may set
        if not names:
            return
        flow = _Flow(names)
        for statement in body:
            flow.walk(statement, False, False)
        for name in sorted(names - flow.bailed):
            target, call, assignment = candidates[name]
            if flow.bindings[name] != [target]:
                continue
            chain = _chain(call.func)
            assert chain is not None
            if flow.entries[name]:
                if not flow.accesses[name] and scope.parent is not None:
                    entry = _entered_again(
                        flow.entries[name], assignment, flow.binding_paths[name], body
                    )
                    if entry is not None:
                        at = _span(entry.items[0].context_expr)
                        if at[0] != entry.lineno:
                            # (`async with \` then `cm as db:`) Run time's line is the
                            # statement's, up to Python 3.12.
                            at = (entry.lineno, entry.col_offset, entry.lineno, entry.col_offset)
                        protocol = k.ASYNC_WITH if isinstance(entry, ast.AsyncWith) else k.WITH
                        use = Use(
                            REENTER,
                            chain,
                            _span(call),
                            _span(target),
                            (),
                            protocol,
                            at,
                        )
                        self.found.append((use, scope))
                continue  # (PG103 is for a name that is not entered)
            end = (assignment.end_lineno or 0, assignment.end_col_offset or 0)
            accesses = sorted(flow.accesses[name], key=lambda a: (a[0].lineno, a[0].col_offset))
            for access, shielded in accesses:
                if shielded or access.attr not in SESSION_NAMES:
                    continue
                if (access.lineno, access.col_offset) < end:
                    continue  # read before the assignment (in a loop, say)
                use = Use(
                    ATTRIBUTE, chain, _span(call), _span(target), (), access.attr, _span(access)
                )
                self.found.append((use, scope))

    def _arguments(self, args: ast.arguments, outer: _Scope, inner: _Scope) -> None:
        for default in (*args.defaults, *args.kw_defaults):
            if default is not None:
                self.visit(default, outer)
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
        every.extend(a for a in (args.vararg, args.kwarg) if a is not None)
        for arg in every:
            inner.bound.add(arg.arg)
            if arg.annotation is not None:
                self.visit(arg.annotation, outer)

    def _comprehension(self, node: ast.AST, scope: _Scope) -> None:
        generators: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
        inner = _Scope(scope, is_comprehension=True)
        for position, generator in enumerate(generators):
            # The first iterable is evaluated in the enclosing scope.
            where = scope if position == 0 else inner
            self._use_call(
                k.ASYNC_FOR if generator.is_async else k.FOR,
                generator.iter,
                generator.target,
                where,
            )
            self.visit(generator.iter, where)
            self.visit(generator.target, inner)
            for condition in generator.ifs:
                self.visit(condition, inner)
        if isinstance(node, ast.DictComp):
            self.visit(node.key, inner)
            self.visit(node.value, inner)
        else:
            self.visit(node.elt, inner)  # type: ignore[attr-defined]

    def _use_call(
        self, protocol: str, call: ast.AST, target: Optional[ast.AST], scope: _Scope
    ) -> None:
        if not isinstance(call, ast.Call):
            return
        chain = _chain(call.func)
        if chain is None:
            return
        use = Use(protocol, chain, _span(call), _span(target) if target is not None else None)
        self.found.append((use, scope))

    def _uses(self, node: ast.AST, scope: _Scope) -> None:
        if isinstance(node, (ast.For, ast.AsyncFor)):
            protocol = k.ASYNC_FOR if isinstance(node, ast.AsyncFor) else k.FOR
            self._use_call(protocol, node.iter, node.target, scope)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            protocol = k.ASYNC_WITH if isinstance(node, ast.AsyncWith) else k.WITH
            for item in node.items:
                self._use_call(protocol, item.context_expr, item.optional_vars, scope)
                if isinstance(item.context_expr, ast.Name):
                    scope.entered.add(item.context_expr.id)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            value = node.value
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if isinstance(value, ast.Await):
                if len(targets) == 1:
                    self.await_targets[id(value)] = targets[0]
            elif (
                isinstance(value, ast.Call)
                and len(targets) == 1
                and isinstance(targets[0], ast.Name)
                and _chain(value.func) is not None
            ):
                scope.assigned.append((targets[0], value, node))
        elif isinstance(node, ast.Attribute):
            if node.attr in SESSION_NAMES and isinstance(node.ctx, ast.Load):
                value = node.value
                if isinstance(value, ast.Name):
                    scope.attr_owners.add(value.id)
                elif isinstance(value, ast.Call) and not self.shielded:
                    chain = _chain(value.func)
                    if chain is not None:  # `get_db().execute`
                        use = Use(ATTRIBUTE, chain, _span(value), None, (), node.attr, _span(node))
                        self.found.append((use, scope))
        elif isinstance(node, ast.Await):
            self._use_call(k.AWAIT, node.value, self.await_targets.pop(id(node), None), scope)
        elif isinstance(node, ast.Call):
            self._depends(node, scope)

    def _depends(self, node: ast.Call, scope: _Scope) -> None:
        via = _chain(node.func)
        if via is None or via[-1] not in _DEPENDS_NAMES:
            return
        argument: Optional[ast.AST] = node.args[0] if node.args else None
        for keyword in node.keywords:
            if keyword.arg == "dependency":
                argument = keyword.value
        chain = _chain(argument) if argument is not None else None
        if chain is None:
            return
        assert argument is not None
        self.found.append((Use(DEPENDS, chain, _span(argument), None, via), scope))


def _is_global(root: str, scope: _Scope) -> bool:
    """Whether ``root``, used in ``scope``, is the module's global of that name."""
    current: Optional[_Scope] = scope
    innermost = True
    while current is not None and current.parent is not None:  # the module has no parent
        if current.is_class and not innermost:
            pass  # a class body's names are not visible in the functions inside it
        elif root in current.declared_global:
            return True
        elif root in current.bound:
            return False
        innermost = False
        current = current.parent
    return True


def parse_uses(source: str, filename: str = "<unknown>") -> list[Use]:
    """Every use in ``source`` whose callable is a module global (or a chain from one).

    Raises SyntaxError, ValueError or RecursionError for source it cannot read.
    """
    tree = _messages.parse(source, filename)
    module_scope = _Scope(None)
    collector = _Collector()
    for statement in tree.body:
        collector.visit(statement, module_scope)
    collector.flow(tree.body, module_scope, set())
    # The top-level statements, those sharing a line taken together (`import os; db =
    # get_db()`), by first and last line, for each use's `lines`.
    groups: list[tuple[int, int]] = []
    for statement in tree.body:
        first = _messages._first_line(statement)
        last = statement.end_lineno or statement.lineno
        if groups and first <= groups[-1][1]:
            groups[-1] = (groups[-1][0], max(groups[-1][1], last))
        else:
            groups.append((first, last))
    starts = [first for first, _ in groups]

    def lines(use: Use) -> Optional[tuple[int, int]]:
        line = (use.at or use.span)[0]
        i = bisect.bisect_right(starts, line) - 1
        return groups[i] if i >= 0 and line <= groups[i][1] else None

    return [
        use._replace(lines=lines(use))
        for use, scope in collector.found
        if _is_global(use.chain[0], scope) and (not use.via or _is_global(use.via[0], scope))
    ]


# --- resolving -------------------------------------------------------------------------

_MISSING = object()


def resolve(chain: Iterable[str], namespace: Mapping[str, Any]) -> Any:
    """The object ``chain`` names in ``namespace``, or ``None``; never runs user code."""
    parts = iter(chain)
    obj = namespace.get(next(parts), _MISSING)
    for part in parts:
        if obj is _MISSING:
            return None
        try:
            obj = inspect.getattr_static(obj, part, _MISSING)
        except Exception:  # a broken __mro__ or __dict__: not resolvable
            return None
        if isinstance(obj, (classmethod, staticmethod)):
            obj = obj.__func__
    return None if obj is _MISSING else obj


_CO_COROUTINE = inspect.CO_COROUTINE
_CO_ITERABLE_COROUTINE = inspect.CO_ITERABLE_COROUTINE
_PROVIDER_KINDS = frozenset(k.SUPPORTED)


def provider_kind(obj: object) -> Optional[tuple[Kind, Optional[ProviderInfo]]]:
    """(kind, ProviderInfo if guarded) of a provider; None for anything else.

    Plain functions are not reported (what they return is unknown), nor are functions
    that only *claim* to be coroutine functions (``inspect.markcoroutinefunction``) or
    generator-based coroutines (``@types.coroutine``), which ``await`` accepts.
    """
    try:
        info = _decorator._guarded_info(obj)
        if info is None and isinstance(obj, functools.partial):
            # A partial of a guarded provider: calling it calls the guard. (A guarded
            # @asynccontextmanager is a plain function, which classify() cannot tell.)
            info = _decorator._guarded_info(k._innermost(obj))
        if info is not None:
            return (info.kind, info) if info.kind in _PROVIDER_KINDS else None
        kind = k.classify(obj)
    except Exception:  # an object that breaks isinstance(): not a provider we know
        return None
    if kind not in _PROVIDER_KINDS:
        return None
    if kind in (k.COROUTINE, k.SYNC_GEN):
        code = getattr(k._innermost(obj), "__code__", None)
        flags = code.co_flags if isinstance(code, types.CodeType) else 0
        if kind == k.COROUTINE and not flags & _CO_COROUTINE:
            return None
        if kind == k.SYNC_GEN and flags & _CO_ITERABLE_COROUTINE:
            return None
    assert kind is not None
    return kind, None


def _is_fastapi_depends(obj: object) -> bool:
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__name__", None)
    return (
        isinstance(module, str)
        and (module == "fastapi" or module.startswith("fastapi."))
        and name in _DEPENDS_NAMES
    )


# A line of source as Python counts lines: ended by \n, \r\n or \r, and by nothing else.
# (str.splitlines also ends lines at \f, \v, \x1c-\x1e, \x85, \u2028 and \u2029, so a
# form feed between two sections would put every span after it on the wrong line.)
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


class _Source:
    """A module's source lines, for the text of a span; read only when a finding needs it.

    What is parsed is one part of the module (see :meth:`part`), so that a finding costs
    what its statement does, not what the module does: a module of a megabyte with one
    finding is not walked whole at every import.
    """

    def __init__(self, lines: list[str], part: Optional[tuple[int, int]] = None) -> None:
        self.lines = lines
        self._part = part
        self._parts: dict[tuple[int, int], _Source] = {}
        self._tree: Optional[ast.Module] = None
        self._parsed = False
        self._statements: Optional[_messages.Statements] = None
        self._lambdas: Optional[list[_Span]] = None
        self._blocks: Optional[dict[_Span, ast.AST]] = None

    @classmethod
    def of(cls, source: str) -> _Source:
        """The source of a whole module."""
        return cls(_LINE.findall(source))

    def part(self, lines: Optional[tuple[int, int]]) -> _Source:
        """The source with only ``lines`` (first, last) parsed: top-level statements
        (:attr:`Use.lines`), whose nodes are those of the whole module's tree, at the
        same lines and columns. None: the whole module."""
        if lines is None or lines == self._part:
            return self
        part = self._parts.get(lines)
        if part is None:
            part = self._parts[lines] = _Source(self.lines, lines)
        return part

    @property
    def tree(self) -> Optional[ast.Module]:
        """The module (or its part) parsed, or None if it does not parse (any more)."""
        if not self._parsed:
            self._parsed = True
            if self._part is None:
                code = "".join(self.lines)
            else:
                first, last = self._part
                # Blank lines before it keep its line numbers.
                code = "\n" * (first - 1) + "".join(self.lines[first - 1 : last])
            try:
                self._tree = _messages.parse(code)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                self._tree = None
        return self._tree

    @property
    def with_statements(self) -> dict[_Span, ast.AST]:
        """Each ``with`` and ``async with`` statement, by the span of each of its items'
        expressions."""
        if self._blocks is None:
            tree = self.tree
            self._blocks = {
                _span(item.context_expr): node
                for node in (ast.walk(tree) if tree is not None else ())
                if isinstance(node, (ast.With, ast.AsyncWith))
                for item in node.items
            }
        return self._blocks

    @property
    def statements(self) -> Optional[_messages.Statements]:
        """The module's statements and functions by line (None if it does not parse)."""
        if self._statements is None and self.tree is not None:
            self._statements = _messages.Statements(self.tree)
        return self._statements

    def in_lambda(self, span: _Span) -> bool:
        """Whether ``span`` is in a lambda's body, which runs as a plain function of its
        own (its defaults are not: they run where the lambda is)."""
        if self._lambdas is None:
            tree = self.tree
            self._lambdas = [
                _span(node.body)
                for node in (ast.walk(tree) if tree is not None else ())
                if isinstance(node, ast.Lambda)
            ]
        line, col, end_line, end_col = span
        return any(
            (body[0], body[1]) <= (line, col) and (end_line, end_col) <= (body[2], body[3])
            for body in self._lambdas
        )

    def text(self, span: _Span) -> str:
        line, col, end_line, end_col = span
        if not 0 < line <= end_line <= len(self.lines):
            return ""
        chunk = [self.lines[i].encode("utf-8") for i in range(line - 1, end_line)]
        if len(chunk) == 1:
            piece = chunk[0][col:end_col]
        else:
            piece = chunk[0][col:] + b"".join(chunk[1:-1]) + chunk[-1][:end_col]
        text = piece.decode("utf-8", "replace")
        if len(chunk) > 1:
            # Spread over lines by a formatter: written out again on one line, as the
            # run-time fix does (`get_db(read_only=True)`, not `get_db( read_only=True, )`).
            try:
                with _messages.quiet():
                    expression = ast.parse(text.strip(), mode="eval")
                return ast.unparse(expression)
            except (SyntaxError, ValueError):
                pass
        return " ".join(text.split())

    def written(self, span: _Span) -> str:
        """The text of ``span``, a provider call assigned at a line of its own, as run time
        reads it (see :func:`_messages._assigned_call`): spread over lines, its lines
        kept as they are in the source of the function it is in, dedented; one line as
        :meth:`text` has it."""
        line, col, end_line, end_col = span
        statements = self.statements
        if line == end_line or statements is None or not 0 < line <= end_line <= len(self.lines):
            return self.text(span)
        # What inspect reads as the function's source: its def's block, from the first
        # decorator.
        scope = statements.scope(line)
        first = _messages._first_line(scope) if scope is not None else 1
        try:
            block = inspect.getblock(self.lines[first - 1 :]) if scope is not None else self.lines
        except (SyntaxError, tokenize.TokenError):  # pragma: no cover - the module parsed
            return self.text(span)
        # Read as run time reads a file: each line ended by \n.
        read = [piece.rstrip("\r\n") + "\n" for piece in block]
        dedented: list[str] = _LINE.findall(textwrap.dedent("".join(read)))
        start, end = line - first, end_line - first
        if end >= len(dedented):  # pragma: no cover - the span is in the scope's block
            return self.text(span)
        # The columns moved left by what dedenting took from each line (whitespace).
        start_col = col - (len(read[start]) - len(dedented[start]))
        end_col -= len(read[end]) - len(dedented[end])
        return (
            dedented[start].encode("utf-8")[start_col:].decode("utf-8", "replace")
            + "".join(dedented[start + 1 : end])
            + dedented[end].encode("utf-8")[:end_col].decode("utf-8", "replace")
        )

    def column(self, line: int, col: int) -> int:
        """The 1-based character column of a UTF-8 byte offset."""
        if not 0 < line <= len(self.lines):
            return col + 1
        return len(self.lines[line - 1].encode("utf-8")[:col].decode("utf-8", "replace")) + 1


def _with_fix(block: ast.AST, use: Use, kind: Kind, text: _Source) -> str:
    """The run-time fix for a ``with`` statement on a provider call: the statement
    with its other items kept, and the provider's items rewritten (or nested)."""
    assert isinstance(block, (ast.With, ast.AsyncWith))
    items: list[tuple[str, Optional[str]]] = []
    mine: set[int] = set()
    for i, item in enumerate(block.items):
        expr = item.context_expr
        items.append(
            (
                text.text(_span(expr)),
                text.text(_span(item.optional_vars)) if item.optional_vars else None,
            )
        )
        if isinstance(expr, ast.Call) and _chain(expr.func) == use.chain:
            mine.add(i)
    early = kind == k.ASYNC_GEN and _messages.block_leaves_early(block)
    fixed = _messages.with_items(kind, use.protocol, items, mine, early)
    # A block on one line with its body keeps the body, as run time's fix does.
    body = [stmt for stmt in block.body if stmt.lineno == block.lineno]
    if body and fixed.endswith(":"):
        first, last = body[0], body[-1]
        text_of_body = text.text(
            (first.lineno, first.col_offset, last.lineno, last.end_col_offset or last.col_offset)
        )
        return _messages.with_body(fixed, text_of_body)
    return fixed


def _statement_fix(use: Use, kind: Kind, info: ProviderInfo, text: _Source) -> tuple[str, str]:
    """The run-time fix, and its note, for the statement of ``use``: the statement read
    as one line, as run time reads it, and rewritten by the same rule, which takes apart
    more than the call (`if (db := await get_db()) is not None:`, `x = f(await get_db())`).
    ("", "") where there is no statement to read."""
    called = use.chain[-1]  # the name the line calls the provider by
    try:
        # Of statements sharing the line, the one of the use, where it is.
        statement = _messages.logical_line(
            text.lines, use.span[0], called, text.statements, use.span[1]
        )
        if not statement.strip():
            return "", ""
        # Of calls of that name on the line (`process(cache.session(), await
        # repo.session())`), the one of the use, where it is.
        start = _messages.code_start(statement, text.lines[use.span[0] - 1])
        at = use.span[1] - start if start is not None else None
        # The block the fix opens may be left early (a return in it): an async
        # generator is then entered once, as run time's fix says.
        node = text.statements.at(use.span[0], called) if text.statements is not None else None
        early = (
            kind == k.ASYNC_GEN
            and node is not None
            and _messages.statement_leaves_early(text.tree, node)
        )
        fix, note = _messages._fix(
            info,
            kind,
            use.protocol,
            statement,
            None,
            f"{called}(...)",
            leaves_early=early,
            name=called,
            at=at,
        )
    except RecursionError:  # an expression nested too deep to take apart: the call's fix
        return "", ""
    if f"{called}(...)" in fix:  # the statement did not show the call (a decorator's line)
        return "", ""
    return fix, note


def _attribute_finding(
    use: Use, kind: Kind, guarded: Optional[ProviderInfo], obj: object, text: _Source
) -> tuple[Code, str, str, str, ProviderInfo]:
    """(code, message, fix, note, provider) for a session attribute taken on what the
    provider returned, as run time words them: the line of the attribute rewritten
    (`async with get_db() as session: await session.execute(q)`) for `get_db().execute`;
    for `db = get_db()` then `db.execute`, the assignment rewritten, and the note that it
    replaces that line."""
    info = _info(obj, kind, guarded)
    name = ".".join(use.chain)
    if info.filename is None:
        info = info._replace(name=name)
    called = use.chain[-1]
    attr = use.attr
    where = use.at or use.span
    message = (
        f"'.{attr}' on the object {name}() returned, which is {_messages._RESULT[kind]}; "
        f"{_messages.definition_line(info)}"
    )
    fix = note = ""
    owner = text.text(use.target) if use.target is not None else None
    assigned = (text.written(use.span) if owner else text.text(use.span)) or f"{called}(...)"
    try:
        statement = _messages.logical_line(text.lines, where[0], called, text.statements, where[1])
        if statement.strip():
            at = None
            if owner is None:
                start = _messages.code_start(statement, text.lines[use.span[0] - 1])
                at = use.span[1] - start if start is not None else None
            fix, note = _messages._fix(
                info, kind, k.ATTRIBUTE, statement, owner, assigned, attr, name=called, at=at
            )
    except RecursionError:  # an expression nested too deep to take apart
        fix = ""
    if not fix or (owner is None and f"{called}(...)" in fix):
        fix, note = _messages.rewritten(kind, k.ATTRIBUTE, assigned, owner), ""
    if owner is not None and use.target is not None:
        assigned_at = use.target[0]
        if assigned_at != where[0] and (
            fix.endswith(f" as {owner}:")
            or fix.startswith((f"for {owner} in ", f"async for {owner} in "))
        ):
            # As run time says it: the fix is for the line that made the name.
            source = text.lines[assigned_at - 1].strip() if assigned_at <= len(text.lines) else ""
            note = f"  # replaces line {assigned_at}: {source}" if source else ""
    statements = text.statements
    plain_def = statements.plain_def(where[0]) if statements is not None else None
    if text.in_lambda(where):
        plain_def = _messages.LAMBDA
    note = _messages.async_def_note(fix, plain_def) or note
    return k.misuse_code(kind, k.ATTRIBUTE), message, fix, note, info


def _reentry_finding(
    use: Use, kind: Kind, guarded: Optional[ProviderInfo], obj: object, text: _Source
) -> tuple[Code, str, str, ProviderInfo]:
    """(code, message, fix, provider) for a context manager entered a second time, as
    run time words them: the provider named as run time names it (by its own name, or
    by the alias the assignment calls it by), and the with statement rewritten to call
    it again (`async with get_db() as db:`)."""
    info = _info(obj, kind, guarded)
    if info.filename is None:
        info = info._replace(name=".".join(use.chain))
    called = use.chain[-1]
    name = _messages.short_name(info)
    if called != name.rpartition(".")[2]:
        name = called  # `from app.db import get_db as provide`: `provide()`
    assert use.at is not None
    statement = _messages.logical_line(text.lines, use.at[0], None, text.statements)
    assigned = text.written(use.span) or f"{called}(...)"
    fix = _messages.render(use.attr, assigned, _messages._pieces(statement, called)[1])
    message = f"{_messages.reentered(use.attr, name + '()')}; {_messages.definition_line(info)}"
    return k.misuse_code(kind, k.REENTER), message, fix, info


def _info(obj: object, kind: Kind, guarded: Optional[ProviderInfo]) -> ProviderInfo:
    if guarded is not None:
        return guarded
    name, filename, lineno = k.definition_site(obj)
    return ProviderInfo(name, kind, filename, lineno)


def _diagnose_depends(obj: object) -> Optional[tuple[ProviderInfo, Code, str, str]]:
    """What FastAPI makes of ``Depends(obj)``: _fastapi_check's diagnosis, if any."""
    if "fastapi" not in sys.modules:  # pragma: no cover - Depends resolved, so it is there
        return None
    from . import _fastapi_check

    diagnosis = _fastapi_check._diagnose(obj)
    if diagnosis is None:
        return None
    return diagnosis.provider, diagnosis.code, diagnosis.message, diagnosis.fix


def findings(
    uses: Iterable[Use],
    namespace: Mapping[str, Any],
    path: str,
    source: Optional[str],
    module: str = "",
    *,
    read_source: Optional[Callable[[], Optional[str]]] = None,
) -> list[SourceFinding]:
    """The uses whose resolved callable does not speak the protocol used.

    The source is needed only for a finding's text; without ``source``, it is read
    with ``read_source`` when a first finding needs it.
    """
    found: list[SourceFinding] = []
    module_text: Optional[_Source] = None

    def load(use: Use) -> _Source:
        """The source, with the part parsed that ``use`` is in."""
        nonlocal module_text
        if module_text is None:
            if source is not None:
                module_text = _Source.of(source)
            else:
                module_text = _Source.of((read_source() if read_source is not None else None) or "")
        return module_text.part(use.lines)

    reported: set[_Span] = set()  # the assignments a PG103 was reported for

    for use in uses:
        obj = resolve(use.chain, namespace)
        if obj is None:
            continue
        line, col = (use.at or use.span)[:2]
        if use.protocol == ATTRIBUTE:
            classified = provider_kind(obj)
            if classified is None or use.attr not in session_attributes(classified[0]):
                continue
            if use.target is not None:
                if use.span in reported:
                    continue  # the first use of the name is the misuse; the fix is one
                reported.add(use.span)
            kind, guarded = classified
            text = load(use)
            code, message, fix, note, info = _attribute_finding(use, kind, guarded, obj, text)
        elif use.protocol == REENTER:
            classified = provider_kind(obj)
            if classified is None or classified[0] not in _CONTEXT_MANAGER_KINDS:
                continue  # (a session maker's session may be entered again)
            kind, guarded = classified
            if k.SUPPORTED[kind][0] != use.attr:
                continue  # `with` on an @asynccontextmanager's: that is the misuse
            text = load(use)
            code, message, fix, info = _reentry_finding(use, kind, guarded, obj, text)
            note = ""
        elif use.protocol == DEPENDS:
            if not _is_fastapi_depends(resolve(use.via, namespace)):
                continue
            diagnosed = _diagnose_depends(obj)
            if diagnosed is None:
                continue
            info, code, message, fix = diagnosed
            message = message.rstrip(".")
            note = ""
        else:
            classified = provider_kind(obj)
            if classified is None:
                continue
            kind, guarded = classified
            if use.protocol in k.SUPPORTED[kind]:
                continue
            text = load(use)
            info = _info(obj, kind, guarded)
            name = ".".join(use.chain)
            if info.filename is None:
                # Nothing to point at (a sessionmaker made in code): name it as the
                # code does, not by its class.
                info = info._replace(name=name)
            code = k.misuse_code(kind, use.protocol)
            call = text.text(use.span) or name + "(...)"
            target = text.text(use.target) if use.target is not None else None
            message = (
                f"{_messages.misused(use.protocol, name + '()', kind)}; "
                f"{_messages.definition_line(info)}"
            )
            block = None
            if use.protocol in (k.WITH, k.ASYNC_WITH):
                block = text.with_statements.get(use.span)
            if block is not None:
                fix = _with_fix(block, use, kind, text)
                note = _messages.with_note(fix)
            else:
                fix, note = _statement_fix(use, kind, info, text)
                if not fix:  # no source to read
                    fix = _messages.rewritten(kind, use.protocol, call, target or None)
            statements = text.statements
            plain_def = statements.plain_def(use.span[0]) if statements is not None else None
            if text.in_lambda(use.span):
                # What runs the call is the lambda, a plain function whatever it is in,
                # as run time says (its frame is the lambda's).
                plain_def = _messages.LAMBDA
            note = _messages.async_def_note(fix, plain_def) or note
            node = statements.at(use.span[0], use.chain[-1]) if statements else None
            loop = node if isinstance(node, (ast.For, ast.AsyncFor)) else None
            if "contextlib.asynccontextmanager(" in fix:  # entered once, as run time notes it
                note = _messages.entered_once_note(fix, note, loop)
            else:  # a loop rewritten as a block, as run time notes it
                note += _messages.loop_rewritten_note(fix, loop, use.chain[-1])
        text = load(use)
        found.append(
            SourceFinding(
                path,
                line,
                text.column(line, col),
                code,
                message,
                fix,
                info,
                module,
                {ATTRIBUTE: f".{use.attr}", REENTER: use.attr}.get(use.protocol, use.protocol),
                # Run time writes it after the fix: "  # import contextlib".
                note.strip().removeprefix("#").strip(),
            )
        )
    found.sort(key=lambda f: (f.line, f.col))
    return found


# --- after the text index ---------------------------------------------------------------

#: A call the text index (``_index.index_calls``) says might be a use: (protocol, chain,
#: via). The protocol is one of the statement protocols, :data:`UNSURE` (a call whose
#: protocol the text cannot tell), :data:`DEPENDS` (``via`` is the callable the chain is
#: handed to) or :data:`DEPENDS_UNSURE` (a Depends argument the text cannot tell).
#: ``(UNSURE, (), ())`` means: parse whatever the module resolves to.
IndexedCall = tuple[str, tuple[str, ...], tuple[str, ...]]

UNSURE = "?"
DEPENDS_UNSURE = "Depends?"


def needs_parse(calls: Iterable[IndexedCall], namespace: Mapping[str, Any]) -> bool:
    """Whether some indexed call resolves, in the executed module's globals, to a
    provider that may not speak its protocol (or to FastAPI's Depends with an argument
    it would not take as written): then only the parser can tell."""
    for protocol, chain, via in calls:
        if via:
            if not _is_fastapi_depends(resolve(via, namespace)):
                continue
            if protocol == DEPENDS_UNSURE:
                return True
            obj = resolve(chain, namespace)
            if obj is not None and _diagnose_depends(obj) is not None:
                return True
            continue
        if not chain:
            return True
        obj = resolve(chain, namespace)
        if obj is None:
            continue
        classified = provider_kind(obj)
        if classified is None:
            continue
        if protocol == ATTRIBUTE:
            if session_attributes(classified[0]):
                return True  # a context manager, a generator or a coroutine: the parser tells
            continue
        if protocol == REENTER:
            if classified[0] in _CONTEXT_MANAGER_KINDS:
                return True  # entered twice, perhaps: the parser tells
            continue
        if protocol == UNSURE or protocol not in k.SUPPORTED[classified[0]]:
            return True
    return False
