"""Every message protoguard writes: the call site, the fix line, and the text.

Only ever called once a misuse has happened, so nothing here is on the hot path. The
proxies hand over a ProviderInfo and the protocol that was used; this module finds the
user's frame, reads the user's line and rewrites it.
"""

from __future__ import annotations

import ast
import bisect
import contextlib
import copy
import functools
import inspect
import io
import itertools
import linecache
import os
import re
import sys
import textwrap
import threading
import tokenize
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import CodeType, FrameType
from typing import NamedTuple, Optional

from . import _kinds as k
from .exceptions import CallSite, Kind, ProtocolAttributeError, ProtocolError, ProviderInfo

DOCS_URL = "https://protoguard.readthedocs.io/en/latest/errors/"

# Parsing (or compiling) the user's source must not warn. An invalid escape sequence
# warns as it is compiled (SyntaxWarning from 3.12, DeprecationWarning before): that
# warning is the user's own import's to give, and where warnings are errors (-W error)
# it makes protoguard's parse a SyntaxError, which would lose the finding.
# catch_warnings() swaps the warnings module's filters, which are global: the lock keeps
# two of protoguard's parses (imports in two threads) from restoring each other's
# filters out of order, which could leave "ignore" in force for good. It cannot keep a
# warning another thread gives during a parse from being ignored: that window is one
# parse long, and only open while a finding is being read.
_QUIET = threading.RLock()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Ignore every warning in the block (see _QUIET)."""
    with _QUIET, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse(source)``, warning nothing (see _QUIET)."""
    with quiet():
        return ast.parse(source, filename)


# Frames of these modules are never the user's line.
_INTERNAL_MODULES = frozenset(
    {
        "contextlib",
        "protoguard._decorator",
        "protoguard._findings",
        "protoguard._lifecycle",
        "protoguard._messages",
        "protoguard._proxies",
        "protoguard.sqlalchemy",
    }
)

_WHAT = {
    k.ASYNC_WITH: "'async with' on {call}",
    k.ASYNC_FOR: "'async for' over {call}",
    k.WITH: "'with' on {call}",
    k.FOR: "'for' over {call}",
    k.AWAIT: "'await' on {call}",
}

# What calling a provider of each kind returns: the object the user misused.
_RESULT = {
    k.ASYNC_CM: "an async context manager",
    k.SYNC_CM: "a context manager",
    k.ASYNC_GEN: "an async generator",
    k.SYNC_GEN: "a generator",
    k.COROUTINE: "a coroutine (not awaited yet)",
    k.ASYNC_SESSIONMAKER: "a session (an async context manager)",
    k.SESSIONMAKER: "a session (a context manager)",
}


def misused(protocol: str, call: str, kind: Kind) -> str:
    """``'async with' on make_session(), which is a coroutine (not awaited yet)``: the
    statement, the call and what the call returned, at run time and at import time."""
    return f"{_WHAT[protocol].format(call=call)}, which is {_RESULT[kind]}"


def reentered(protocol: str, call: str) -> str:
    """``'async with' a second time on the context manager get_db() returned; it runs
    once``: PG107, at run time and at import time."""
    return f"'{protocol}' a second time on the context manager {call} returned; it runs once"


# What the provider itself is, for the line that says where it is defined.
_DEFINITION = {
    k.ASYNC_CM: "an @asynccontextmanager function",
    k.SYNC_CM: "a @contextmanager function",
    k.ASYNC_GEN: "an async generator function",
    k.SYNC_GEN: "a generator function",
    k.COROUTINE: "a coroutine function",
    k.ASYNC_SESSIONMAKER: "an async_sessionmaker",
    k.SESSIONMAKER: "a sessionmaker",
    k.FUNCTION: "a function",
}


def definition_line(info: ProviderInfo) -> str:
    """``get_db: an @asynccontextmanager function, defined at app/deps.py:10``."""
    what = f"{short_name(info)}: {_DEFINITION[info.kind]}"
    if info.filename is None:  # an unguarded sessionmaker, seen at import time, say
        return what
    where = "guarded at" if info.kind in (k.ASYNC_SESSIONMAKER, k.SESSIONMAKER) else "defined at"
    return f"{what}, {where} {info.location}"


# Why the code is wrong, one sentence each; the fix line follows it.
_WHY = {
    "PG101": "It is a context manager, not an iterator: enter it with '{right}' "
    "to get the session.",
    "PG102": "It is a generator, not a context manager: iterate it with '{right}', or let "
    "FastAPI's Depends() drive it.",
    "PG103": "This is the object the provider returned, not the session: {right} first and "
    "use the session it gives you.",
    "PG104": "Only a coroutine can be awaited; {call} must be used with '{right}'.",
    "PG105": "{call} is {side} provider, so it needs '{right}'.",
    "PG106": "{call} returns a coroutine: await it first (a forgotten 'await').",
    "PG107": "A context manager made by @contextmanager/@asynccontextmanager runs once; "
    "call the provider again for a new one.",
}


def _is_internal(frame: FrameType) -> bool:
    return frame.f_globals.get("__name__") in _INTERNAL_MODULES


def short_name(info: ProviderInfo) -> str:
    """``get_db`` for ``make_app.<locals>.get_db``: the name the user calls it by."""
    return info.name.rpartition("<locals>.")[2]


def user_frame(depth: int = 2) -> Optional[FrameType]:
    """The innermost frame of the user's code, ``depth`` frames up (see _find_user_frame)."""
    try:
        start: Optional[FrameType] = sys._getframe(depth)
    except ValueError:  # pragma: no cover - no such frame
        return None
    return _find_user_frame(start)[0]


# What runs an asyncio task's step: the event loop, named by the functions it runs in
# (Handle._run, BaseEventLoop._run_once/run_forever/run_until_complete, asyncio.run and
# Runner.run). A walk that reaches one of them from asyncio's own frames has left the task.
_EVENT_LOOP = frozenset({"_run", "_run_once", "run_forever", "run_until_complete", "run"})


def _is_asyncio(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__")
    return isinstance(name, str) and (name == "asyncio" or name.startswith("asyncio."))


def _find_user_frame(frame: Optional[FrameType]) -> tuple[Optional[FrameType], bool]:
    """(the innermost frame of the user's code from ``frame`` outwards, whether asyncio
    used the object on the user's behalf where no user line is on the stack).

    protoguard's and contextlib's frames are skipped, and so are asyncio's: a line of
    asyncio's is never the one to fix. Given an awaitable that is not a coroutine,
    ``asyncio.ensure_future()``, ``gather()``, ``shield()`` (and ``wait_for()`` before
    Python 3.12) wrap it in a task of their own, which awaits it later, from the event
    loop: the walk then reaches the loop with no user frame in between, and the frames
    above the loop (``asyncio.run(main())``) did not do it, so there is no line to name.
    """
    by_asyncio = False
    while frame is not None:
        if _is_asyncio(frame):
            by_asyncio = True
            if frame.f_code.co_name in _EVENT_LOOP:
                return None, True
        elif not _is_internal(frame):
            return frame, False
        frame = frame.f_back
    return None, by_asyncio


@functools.lru_cache(maxsize=32)  # a message reads its line's code several times
def _code_of(line: str) -> str:
    """The line without its comment and surrounding blanks."""
    if "#" not in line:  # no comment (the tokenizer, in Python, is slow on a long line)
        return line.strip()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(line.strip()).readline))
    except (tokenize.TokenError, SyntaxError):
        return line.strip()
    for token in tokens:
        if token.type == tokenize.COMMENT:
            return line.strip()[: token.start[1]].rstrip()
    return line.strip()


@functools.lru_cache(maxsize=16)  # a message reads its line several times: one parse
def _parse_line(line: str) -> Optional[ast.AST]:
    """The statement on one source line, or None if it is not a whole statement. (Kept
    for the next call: not to be changed.)"""
    body = _code_of(line)
    if not body:
        return None
    if body.endswith(":"):
        body += " pass"
    try:
        tree = parse("async def _protoguard_():\n" + textwrap.indent(body, "    "))
    except SyntaxError:
        return None
    func = tree.body[0]
    assert isinstance(func, ast.AsyncFunctionDef)
    # `x = 1; db = await get_db()`: more than one statement, none of them the line.
    return func.body[0] if len(func.body) == 1 else None


# A line as the parser counts lines: ended by \n, \r\n or \r (not by \f, as str.splitlines).
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def _segment(source: str, node: ast.AST) -> str:
    """The text of ``node`` in ``source``, as ast.get_source_segment() gives it (which
    splits the source into lines one character at a time, in Python: seconds for a line
    of 600 KB)."""
    lineno = getattr(node, "lineno", None)
    end_lineno = getattr(node, "end_lineno", None)
    col = getattr(node, "col_offset", None)
    end_col = getattr(node, "end_col_offset", None)
    if lineno is None or end_lineno is None or col is None or end_col is None:
        return ast.unparse(node)
    lines = _LINE.findall(source)
    if not 0 < lineno <= end_lineno <= len(lines):
        return ast.unparse(node)
    if lineno == end_lineno:
        text = lines[lineno - 1].encode("utf-8")[col:end_col].decode("utf-8", "replace")
    else:
        first = lines[lineno - 1].encode("utf-8")[col:].decode("utf-8", "replace")
        last = lines[end_lineno - 1].encode("utf-8")[:end_col].decode("utf-8", "replace")
        text = first + "".join(lines[lineno : end_lineno - 1]) + last
    return text or ast.unparse(node)


def _entered_again(
    statement: str, frame: FrameType, cm: object
) -> Optional[tuple[int, list[tuple[str, Optional[str]]]]]:
    """For PG107: the items of the ``with`` statement ``statement`` (expression, name),
    and which of them is a plain name that holds ``cm`` in ``frame``, the context
    manager entered again; None if it cannot be told (no such statement, or no name:
    ``async with self.cm:``, whose attribute is not read again here)."""
    stmt = _parse_line(statement)
    if not isinstance(stmt, (ast.With, ast.AsyncWith)):
        return None
    source = _PARSED + _code_of(statement) + " pass"
    index = None
    for i, item in enumerate(stmt.items):
        expr = item.context_expr
        if isinstance(expr, ast.Name):
            held = frame.f_locals.get(expr.id, frame.f_globals.get(expr.id))
            if held is cm:
                index = i
    if index is None:
        return None
    items = [
        (
            _segment(source, item.context_expr),
            _segment(source, item.optional_vars) if item.optional_vars else None,
        )
        for item in stmt.items
    ]
    return index, items


def _pieces(line: str, call_name: str, at: Optional[int] = None) -> tuple[str, Optional[str]]:
    """(the provider expression, the name the session is bound to) from the user's line
    (``at``: where the call is in it, if known; see :func:`_is_call_of`)."""
    stmt = _parse_line(line)
    expr: Optional[ast.AST] = None
    target: Optional[ast.AST] = None
    if isinstance(stmt, (ast.AsyncFor, ast.For)):
        expr, target = stmt.iter, stmt.target
    elif isinstance(stmt, (ast.AsyncWith, ast.With)):
        # `async with a() as x, get_db() as db:`: the item that calls the provider.
        items = stmt.items
        if len(items) > 1:
            items = [item for item in items if _calls(item.context_expr, call_name, at)] or items
        if len(items) == 1:
            expr, target = items[0].context_expr, items[0].optional_vars
    elif isinstance(stmt, ast.Expr):
        expr = stmt.value
    elif (
        isinstance(stmt, ast.Return)
        and stmt.value is not None
        and _calls(stmt.value, call_name, at)
    ):
        expr = stmt.value  # `return await get_db("primary")`
    elif isinstance(stmt, (ast.If, ast.While)):
        # `if (db := await get_db("primary")) is not None:`
        named = _named_call(stmt.test, call_name, at)
        if named is not None:
            expr, target = named.value, named.target
    elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and (
        stmt.value is None or _calls_anywhere(stmt.value, call_name)
    ):  # (not `x[await get_db()] = 1`: the call is in the target; see below)
        value = stmt.value
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
        expr = value.value if isinstance(value, ast.Await) else value
    if expr is None and stmt is not None:
        # A statement of another shape (`if await get_db():`, a default argument): the
        # call as written, the outermost of its calls, if it has one.
        expr = next(
            (
                n
                for n in ast.walk(stmt)
                if isinstance(n, ast.Call) and _is_call_of(n, call_name, at)
            ),
            None,
        )
    if expr is None:
        return f"{call_name}(...)", None
    if isinstance(expr, ast.Await):
        expr = expr.value
    code = _code_of(line)
    source = "async def _protoguard_():\n" + textwrap.indent(
        code + (" pass" if code.endswith(":") else ""), "    "
    )
    return _segment(source, expr), (_segment(source, target) if target is not None else None)


def _named_call(test: ast.expr, name: str, at: Optional[int] = None) -> Optional[ast.NamedExpr]:
    """The ``(db := await get_db())`` in a condition, if it binds a call of ``name``."""
    for node in ast.walk(test):
        if isinstance(node, ast.NamedExpr) and _calls(node.value, name, at):
            return node
    return None


def _without_walrus(test: ast.expr, named: ast.NamedExpr) -> str:
    """The condition ``test`` with ``named`` (`db := await get_db()`) as its name only
    (`db is not None`)."""
    where = (named.lineno, named.col_offset, named.end_lineno, named.end_col_offset)

    class Replace(ast.NodeTransformer):
        def visit_NamedExpr(self, node: ast.NamedExpr) -> ast.AST:
            here = (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)
            return node.target if here == where else self.generic_visit(node)

    # On a copy: the tree is _parse_line's, which keeps it for the next call.
    return ast.unparse(Replace().visit(copy.deepcopy(test)))


def _attribute_owner(line: str, attr: str) -> Optional[str]:
    """For PG103: the name whose attribute was taken on this line (``db`` in
    ``db.execute``, ``self.db`` in ``self.db.execute``)."""
    code = _code_of(line)
    if code.endswith(":"):
        code += " pass"
    try:
        tree = parse("async def _():\n" + textwrap.indent(code, "    "))
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == attr:
            owner = _dotted(node.value)
            if owner is not None:
                return owner
    return None


def _dotted(node: ast.AST) -> Optional[str]:
    """``a.b.c`` for a name or a chain of attributes on a name; None for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _injected_by_depends(frame: FrameType, name: Optional[str]) -> Optional[str]:
    """If ``name`` is a parameter of the frame's function declared with Depends(), the
    dependency as Depends() writes it (``repo.session``), or "" if it is no name;
    else None."""
    code = frame.f_code
    if name is None or name not in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]:
        return None
    try:
        tree = parse(textwrap.dedent(inspect.getsource(code)))
    except (OSError, TypeError, SyntaxError):
        return None
    func = tree.body[0] if tree.body else None
    if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    arguments = func.args
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults: dict[str, Optional[ast.expr]] = dict.fromkeys(a.arg for a in positional)
    for arg, default in zip(
        positional[len(positional) - len(arguments.defaults) :], arguments.defaults
    ):
        defaults[arg.arg] = default
    for arg, kw_default in zip(arguments.kwonlyargs, arguments.kw_defaults):
        defaults[arg.arg] = kw_default
    declared: list[Optional[ast.expr]] = [
        arg.annotation for arg in [*positional, *arguments.kwonlyargs] if arg.arg == name
    ]
    declared.append(defaults.get(name))
    for part in declared:
        for node in ast.walk(part) if part is not None else ():
            if isinstance(node, ast.Call) and _called_name(node) in ("Depends", "Security"):
                given = [
                    *node.args[:1],
                    *(kw.value for kw in node.keywords if kw.arg == "dependency"),
                ]
                return (_dotted(given[0]) if given else None) or ""
    return None


def _calls(expr: ast.AST, name: str, at: Optional[int] = None) -> bool:
    """Whether ``expr`` is a call of ``name`` (awaited or not)."""
    if isinstance(expr, ast.Await):
        expr = expr.value
    return isinstance(expr, ast.Call) and _is_call_of(expr, name, at)


def _is_call_of(call: ast.Call, name: str, at: Optional[int] = None) -> bool:
    """Whether ``call`` calls what ``name`` names: ``repo.session()`` calls
    ``Repository.session`` (a method is called by its attribute, not its class).

    ``at``, if known, is where the call that was misused starts in the line's code (a
    UTF-8 byte offset; the line's nodes are parsed ``_INDENT`` columns in): of two calls
    of that name on the line (`process(cache.session(), await repo.session())`), only
    that one is the provider's."""
    return _called_name(call) == name.rpartition(".")[2] and (
        at is None or call.col_offset == at + _INDENT
    )


def _called_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def render(protocol: str, expr: str, target: Optional[str]) -> str:
    """The statement that uses ``expr`` with ``protocol``, binding ``target``."""
    name = target or "session"
    if protocol == k.ASYNC_WITH:
        return f"async with {expr} as {name}:"
    if protocol == k.WITH:
        return f"with {expr} as {name}:"
    if protocol == k.ASYNC_FOR:
        return f"async for {name} in {expr}:"
    if protocol == k.FOR:
        return f"for {name} in {expr}:"
    if protocol == k.AWAIT:
        return f"{name} = await {expr}"
    return f"{name} = {expr}"


def _right_protocol(kind: Kind, used: str) -> str:
    """The protocol to suggest for a provider of ``kind`` used with ``used``."""
    if kind == k.COROUTINE:
        return k.AWAIT
    return k.SUPPORTED[kind][0]


def rewritten(
    kind: Kind, used: str, expr: str, target: Optional[str], *, leaves_early: bool = False
) -> str:
    """``expr`` used with the protocol a provider of ``kind`` speaks, binding ``target``
    (the rule the run-time and the import-time fixes share). ``leaves_early``: the
    user's block may be left before its end (a return or break in it)."""
    if kind == k.COROUTINE and used in (k.ASYNC_WITH, k.WITH, k.ASYNC_FOR, k.FOR, k.ATTRIBUTE):
        # A block or a loop over what a coroutine gives, or the session's attribute
        # taken on it: await it, and enter the session it returns (a forgotten await,
        # or a sync block on an async provider), so the session is closed at the
        # block's end.
        return render(k.ASYNC_WITH, f"await {expr}", target)
    if leaves_early and kind == k.ASYNC_GEN and used != k.ASYNC_FOR:
        # An 'async for' left by its return or break would leave the generator's
        # cleanup for later (PG201): the provider entered once, as Depends() does.
        entered = entered_once(expr)
        if entered is not None:
            return render(k.ASYNC_WITH, entered, target)
    return render(_right_protocol(kind, used), expr, target)


def entered_once(expr: str, wrapper: str = "contextlib.asynccontextmanager") -> Optional[str]:
    """``contextlib.asynccontextmanager(get_db)(args)`` for the call ``get_db(args)``
    (or ``wrapper``, ``contextlib.contextmanager`` for a generator provider)."""
    try:
        with quiet():
            call = ast.parse(expr, mode="eval").body
    except SyntaxError:
        return None
    if isinstance(call, ast.Call):
        func = _segment(expr, call.func)
        if expr.startswith(func):
            return f"{wrapper}({func}){expr[len(func) :]}"
    return None


def leaves_early(filename: str, lineno: int, name: str) -> bool:
    """Whether the block the fix for the statement at ``filename:lineno`` makes may be
    left before its end (see :func:`statement_leaves_early`)."""
    tree = _parsed("".join(linecache.getlines(filename)))
    node = Statements(tree).at(lineno, name) if tree is not None else None
    return node is not None and statement_leaves_early(tree, node)


def statement_leaves_early(tree: Optional[ast.AST], node: ast.stmt) -> bool:
    """Whether the block the fix makes of ``node`` (a statement of ``tree``) may be left
    before its end: a ``with`` block's body, a loop's (by a return, or a break of its
    own), or a simple statement with the lines after it in its block that use what it
    binds (`db = await get_db()`), which go in the block the fix opens (by a return, or
    a break or continue of a loop around)."""
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return block_leaves_early(node)
    if isinstance(node, (ast.For, ast.AsyncFor)):
        return block_leaves_early(ast.Module(body=node.body, type_ignores=[]), loop=True) or any(
            isinstance(jump, ast.Break) for jump in own_jumps(node)
        )
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return False  # a call on a decorator's line
    for parent in ast.walk(tree) if tree is not None else ():
        for field in ("body", "orelse", "finalbody"):
            body = getattr(parent, field, None)
            if isinstance(body, list) and any(stmt is node for stmt in body):
                after = body[[id(stmt) for stmt in body].index(id(node)) :]
                bound = {
                    name.id
                    for name in ast.walk(node)
                    if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Store)
                }
                using = [
                    i
                    for i, stmt in enumerate(after)
                    if any(isinstance(n, ast.Name) and n.id in bound for n in ast.walk(stmt))
                ]
                block = after[: using[-1] + 1] if using else after[:1]
                return block_leaves_early(ast.Module(body=block, type_ignores=[]))
    return False


def own_jumps(loop: ast.AST) -> list[ast.stmt]:
    """The ``break`` and ``continue`` statements of the body of ``loop`` (a ``for``
    statement) that are its own: in no loop or function nested in it."""
    found: list[ast.stmt] = []

    def walk(stmts: list[ast.stmt]) -> None:
        for stmt in stmts:
            if isinstance(stmt, (ast.Break, ast.Continue)):
                found.append(stmt)
            elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
                walk(stmt.orelse)  # a nested loop's else is this loop's code
            elif not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for field in ("body", "orelse", "finalbody"):
                    inner = getattr(stmt, field, None)
                    if isinstance(inner, list):
                        walk(inner)
                for child in ast.iter_child_nodes(stmt):  # except and case clauses
                    clause = getattr(child, "body", None)
                    if not isinstance(child, ast.stmt) and isinstance(clause, list):
                        walk(clause)

    walk(getattr(loop, "body", []))
    found.sort(key=lambda jump: (jump.lineno, jump.col_offset))
    return found


def loop_jumps_note(loop: ast.AST) -> str:
    """For a loop rewritten as a block that enters the provider once: what to do with
    the loop's own ``break`` and ``continue`` (the block is no loop: pasted as they are,
    they are a SyntaxError, or they leave a loop around it), as a comment line under
    the fix; "" if it has none."""
    return _jumps_note(loop) + _else_note(loop)


def _jumps_note(loop: ast.AST) -> str:
    jumps = own_jumps(loop)
    if not jumps:
        return ""
    body = getattr(loop, "body", [])
    if body[0].lineno == getattr(loop, "lineno", None):
        # A loop on one line: the fix keeps its body without them (_body_on_the_line).
        words = sorted({"break" if isinstance(jump, ast.Break) else "continue" for jump in jumps})
        named = " and ".join(f"'{word}'" for word in words)
        return (
            f"\n# its {named} {'is' if len(words) == 1 else 'are'} left out: this block is no "
            "loop and runs its body once"
        )
    if len(jumps) == 1 and body and jumps[0] is body[-1] and isinstance(jumps[0], ast.Break):
        return (
            f"\n# and delete the 'break' on line {jumps[0].lineno}: this block is no loop "
            "and runs its body once"
        )
    named = ", ".join(
        f"the '{'break' if isinstance(jump, ast.Break) else 'continue'}' on line {jump.lineno}"
        for jump in jumps
    )
    return (
        f"\n# this block is no loop and runs its body once: {named} must go; "
        "make its condition an if/else, the lines after it in the else"
    )


def _else_note(loop: ast.AST) -> str:
    """What to do with the loop's own ``else:`` (after a block it is a SyntaxError)."""
    orelse: list[ast.stmt] = getattr(loop, "orelse", None) or []
    if not orelse:
        return ""
    first = orelse[0].lineno
    if any(isinstance(jump, ast.Break) for jump in own_jumps(loop)):
        return (
            f"\n# and the loop's 'else:' must go: its lines (from line {first}) run only "
            "where the 'break' did not happen: put them in that else"
        )
    return (
        f"\n# and the loop's 'else:' must go: its lines (from line {first}) follow the "
        "block, as they followed the loop"
    )


def loop_at(filename: str, lineno: int, name: str) -> Optional[ast.stmt]:
    """The ``for`` statement at ``filename:lineno``, if the statement there is one."""
    tree = _parsed("".join(linecache.getlines(filename)))
    node = Statements(tree).at(lineno, name) if tree is not None else None
    return node if isinstance(node, (ast.For, ast.AsyncFor)) else None


def entered_once_note(fix: str, note: str, loop: Optional[ast.stmt]) -> str:
    """``note`` on ``fix``, a fix that enters a provider through contextlib: contextlib
    to import, if ``note`` does not say it; for ``loop`` (the user's loop, if it is one)
    rewritten as that block, what to do with its own ``break`` and ``continue``."""
    if "import contextlib" not in note:
        note = f"{note}; import contextlib" if note else _IMPORT_CONTEXTLIB
    if loop is not None and fix.startswith("async with contextlib.asynccontextmanager("):
        note += loop_jumps_note(loop)
    return note


def loop_rewritten_note(fix: str, loop: Optional[ast.stmt], name: str) -> str:
    """For ``loop`` (the statement the misuse is in, if it is a loop) over a call of
    ``name``, rewritten by ``fix`` as a block (`for db in get_db():` over a context
    manager: `async with get_db() as db:`): what to do with the loop's own ``break``,
    ``continue`` and ``else:``, as entered_once_note says it for contextlib's block;
    "" otherwise."""
    if (
        not isinstance(loop, (ast.For, ast.AsyncFor))
        or not fix.startswith(("async with ", "with "))
        or "contextlib." in fix  # (entered_once_note says it)
        or not _calls_anywhere(loop.iter, name)
    ):
        return ""
    return loop_jumps_note(loop)


def block_leaves_early(node: ast.AST, loop: bool = False) -> bool:
    """Whether the body of ``node`` (a block) has a statement that leaves it before its
    end: a return, or a break or continue of no loop in it (``loop``: a return only,
    the body being a loop's)."""
    return statements_leave_early(getattr(node, "body", ()), loop)


def statements_leave_early(
    statements: Iterable[ast.AST], loop: bool = False, raises: bool = False
) -> bool:
    """Whether any of ``statements``, at any depth, leaves them before their end: a
    return (or, with ``raises``, a raise), or a break or continue of no loop in them
    (``loop``: not those, the statements being a loop's body). Not those of a function
    or class they define."""

    # Statements only (return, break and continue are statements), one at a time: an
    # expression however deep costs nothing, and no recursion.
    leaving = (ast.Return, ast.Raise) if raises else ast.Return
    pending = [(stmt, loop) for stmt in statements]
    while pending:
        stmt, in_loop = pending.pop()
        if isinstance(stmt, leaving) or (
            isinstance(stmt, (ast.Break, ast.Continue)) and not in_loop
        ):
            return True
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            pending.extend((child, True) for child in stmt.body)
            pending.extend((child, in_loop) for child in stmt.orelse)  # no longer the loop
            continue
        pending.extend(
            (child, in_loop)
            for child in ast.iter_child_nodes(stmt)
            if isinstance(child, _STATEMENT_PARTS)
        )
    return False


# What holds statements in a statement: statements, except clauses and match cases.
# (Not _BLOCKS, the block statements, below: under that name this one was replaced by
# it, and the walk above saw no statement nested in an if or a try.)
_STATEMENT_PARTS: tuple[type, ...] = (
    ast.stmt,
    ast.excepthandler,
    *filter(None, [getattr(ast, "match_case", None)]),
)


def fix_line(fix: str, note: str = "") -> str:
    """A message's "fix:" line; a fix over several lines (code to write) has its code
    lines indented under it."""
    return f"  fix: {fix}{note}".replace("\n", "\n        ")


def _fix(
    info: ProviderInfo,
    kind: Kind,
    used: str,
    line: str,
    owner: Optional[str],
    assigned: str,
    attr: Optional[str] = None,
    leaves_early: bool = False,
    name: Optional[str] = None,
    at: Optional[int] = None,
) -> tuple[str, str]:
    """The user's line rewritten to the protocol ``kind`` speaks, and a note on it for
    the message (not part of the fix): what else to move, or what it needs. ``name``:
    what the line calls the provider (its own name if None); ``at``: where in the line's
    code the call that was misused starts, if known (see :func:`_is_call_of`).

    A loop or block written on one line with its body (`async for db in get_db():
    await db.commit()`) keeps the body after the rewritten header: the header alone,
    pasted over the line, would leave a block with no body."""
    name = name or short_name(info)
    at = _checked_at(line, name, at)
    fixed, note = _fix_statement(
        info, kind, used, line, owner, assigned, attr, leaves_early, name, at
    )
    return _with_the_body(fixed, line, name), note


def _with_the_body(fixed: str, line: str, name: str) -> str:
    """``fixed``, a block's header, with the body the user's block has on its line (see
    :func:`_body_on_the_line`), if it has one; ``fixed`` as it is otherwise."""
    return with_body(fixed, _body_on_the_line(line, name, fixed) if fixed.endswith(":") else None)


def with_body(fixed: str, body: Optional[str]) -> str:
    """``fixed``, a block's header, followed by ``body`` on its line, if that is code."""
    # In a loop: a 'break' in a block's body (`with x() as y: break`) is a loop's around it.
    if body and _is_code(f"while True:\n{' ' * _INDENT}{fixed} {body}"):
        return f"{fixed} {body}"
    return fixed


def _checked_at(line: str, name: str, at: Optional[int]) -> Optional[int]:
    """``at`` if a call of ``name`` starts there in the line's code; None otherwise (the
    first call of that name is taken)."""
    stmt = _parse_line(line) if at is not None else None
    if stmt is not None and any(
        isinstance(node, ast.Call) and _is_call_of(node, name, at) for node in ast.walk(stmt)
    ):
        return at
    return None


def _body_on_the_line(line: str, name: str, fixed: str) -> Optional[str]:
    """The body of a `for`/`with` statement written on its header's line, when the header
    calls ``name`` (`async for db in get_db(): await db.commit()`); None otherwise.

    A loop rewritten as ``fixed``, a block that is no loop, loses the loop's own 'break'
    and 'continue' (in a block they are a SyntaxError, or a loop's around it), and what
    follows them, which never ran: `for db in get_db(): x = db; break` keeps `x = db`,
    `async for db in get_db(): break` keeps `pass`. The note says so (see
    :func:`_jumps_note`)."""
    parsed = _parse_code(line)
    if parsed is None:
        return None
    code, stmt = parsed
    if isinstance(stmt, (ast.For, ast.AsyncFor)):
        header: list[ast.AST] = [stmt.iter]
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        header = [item.context_expr for item in stmt.items]
    else:
        return None
    if not any(_calls_anywhere(part, name) for part in header):
        return None
    first = stmt.body[0]
    if first.lineno != stmt.lineno:  # pragma: no cover - one line: the same line
        return None
    encoded = code.encode("utf-8")
    start = len(encoded[: first.col_offset - _INDENT].decode("utf-8", "replace"))
    if isinstance(stmt, (ast.For, ast.AsyncFor)) and not fixed.startswith(("for ", "async for ")):
        kept = list(itertools.takewhile(lambda s: not isinstance(s, _JUMPS), stmt.body))
        if not kept:
            return "pass"
        end_col = kept[-1].end_col_offset or kept[-1].col_offset
        end = len(encoded[: end_col - _INDENT].decode("utf-8", "replace"))
        return code[start:end].strip() or None
    return code[start:].strip() or None


_JUMPS = (ast.Break, ast.Continue)


def _fix_statement(
    info: ProviderInfo,
    kind: Kind,
    used: str,
    line: str,
    owner: Optional[str],
    assigned: str,
    attr: Optional[str],
    leaves_early: bool,
    name: str,
    at: Optional[int] = None,
) -> tuple[str, str]:
    """_fix, for the statement's header (or the statement, if it is no block)."""
    expr, target = _pieces(line, name, at)
    stmt = _parse_line(line)
    inner = None
    if used == k.ATTRIBUTE:
        if owner is None:  # `await get_db().execute(q)`: the call is on the line
            inner = _provider_call(line, name, attr, at)
        if inner is None:
            # `db.execute(...)`: rewrite the provider call that `db` came from.
            expr, target = assigned, owner
    elif used == k.REENTER:
        expr = assigned
    else:
        inner = _provider_call(line, name, at=at)
    if inner is None:
        if isinstance(stmt, (ast.With, ast.AsyncWith)) and used in (k.WITH, k.ASYNC_WITH):
            source = _PARSED + _code_of(line) + " pass"
            items: list[tuple[str, Optional[str]]] = [
                (
                    _segment(source, item.context_expr),
                    _segment(source, item.optional_vars) if item.optional_vars else None,
                )
                for item in stmt.items
            ]
            mine = {i for i, item in enumerate(stmt.items) if _calls(item.context_expr, name, at)}
            if len(items) == 1:
                mine = {0}
                if target is None and isinstance(stmt.items[0].context_expr, ast.Name):
                    # `db = make_session()` then `async with db:`: the block uses `db`.
                    items = [(items[0][0], items[0][0])]
            if mine:  # (none: the provider called by another name, the item unknown)
                fixed = with_items(kind, used, items, mine, leaves_early)
                return fixed, with_note(fixed)
        fixed = rewritten(kind, used, expr, target, leaves_early=leaves_early)
        if isinstance(stmt, ast.If) and fixed.endswith(":"):
            named = _named_call(stmt.test, name, at)
            if named is not None:
                # The session bound first, then the condition on it.
                whole = f"{fixed}\n    if {_without_walrus(stmt.test, named)}:"
                if _is_code(whole):
                    return whole, ""
        if (
            isinstance(stmt, ast.Return)
            and stmt.value is not None
            and _calls(stmt.value, name)
            and fixed.endswith(":")
        ):  # `return await get_db()`: the session would leave the block, closed
            return fixed, _USE_IT_INSIDE
        return fixed, ""
    if inner.loop is not None and kind in (k.ASYNC_GEN, k.SYNC_GEN) and _is_code(inner.loop):
        return inner.loop, ""  # `[db for db in get_db()]`: the comprehension's own loop
    if inner.each is not None:
        stacked = _on_an_exit_stack(kind, used, inner.call, inner.each, _code_of(line))
        if stacked is not None:
            return stacked, _USE_THEM_INSIDE
    # `r = await (await get_db()).execute(q)`: the provider's statement, then the line
    # on the session it gives.
    fixed = rewritten(kind, used, inner.call, inner.target, leaves_early=leaves_early)
    if inner.rest is None:
        return fixed, ""
    note = ""
    if inner.block:  # the line is a block's header itself: the next line, one level in
        whole = f"{fixed}\n    {inner.rest}"
    elif fixed.endswith(":") and _keeps_session(inner.rest, inner.target):
        # `db, other = session, 1`, `dbs = [db]`: the line keeps the session for the
        # lines after it, which the block must hold too (on one line, the block would
        # end at once and close the session they use).
        whole = f"{fixed}\n    {inner.rest}"
        note = _USE_IT_INSIDE
    elif fixed.endswith(":"):  # the rest of the line is the block's body
        whole = f"{fixed} {inner.rest}"
    else:
        whole = f"{fixed}; {inner.rest}"
    return (whole, note) if _is_code(whole) else (fixed, "")


_USE_IT_INSIDE = (
    "  # the lines that use the session go in this block too: it closes the session at its end"
)
_IMPORT_CONTEXTLIB = "  # import contextlib"
_USE_THEM_INSIDE = (
    "  # import contextlib; the lines that use the sessions go in this block too: it closes"
    " them at its end"
)


_STACK_NAMES = ("stack", "exit_stack", "_stack")
# How a fix that enters sessions on an exit stack begins, async and sync.
_EXIT_STACKS = ("async with contextlib.AsyncExitStack() as ", "with contextlib.ExitStack() as ")
# Such a fix: the stack's block, and under it the line that enters each item's session.
_PER_ITEM_FIX = re.compile(
    rf"{re.escape(_EXIT_STACKS[0])}(\w+):\n.*\b\1\.enter_async_context\("
    rf"|{re.escape(_EXIT_STACKS[1])}(\w+):\n.*\b\2\.enter_context\("
)


def _on_an_exit_stack(
    kind: Kind, used: str, call: str, each: Callable[[str], Optional[str]], code: str
) -> Optional[str]:
    """The line of a provider ``call`` made per item of a comprehension, each item's
    session entered on an exit stack (`await stack.enter_async_context(get_db(t))`)
    whose block holds them all; None if it cannot be written."""
    stack = next(
        (name for name in _STACK_NAMES if not re.search(rf"\b{name}\b", code)),
        f"stack_{len(code)}",  # a line that uses every one of them already
    )
    # How the provider's session is taken, as one statement would: its block's or
    # loop's expression.
    fixed = rewritten(kind, used, call, "_")
    entered: Optional[str] = None
    is_async = fixed.startswith("async ")
    if fixed.startswith(("async with ", "with ")) and fixed.endswith(" as _:"):
        entered = fixed[len("async with " if is_async else "with ") : -len(" as _:")]
    elif fixed.startswith(("async for _ in ", "for _ in ")) and fixed.endswith(":"):
        expr = fixed[len("async for _ in " if is_async else "for _ in ") : -1]
        wrapper = "contextlib.asynccontextmanager" if is_async else "contextlib.contextmanager"
        entered = entered_once(expr, wrapper)
    if entered is None:
        return None
    if is_async:
        header = f"{_EXIT_STACKS[0]}{stack}:"
        line = each(f"await {stack}.enter_async_context({entered})")
    else:
        header = f"{_EXIT_STACKS[1]}{stack}:"
        line = each(f"{stack}.enter_context({entered})")
    if line is None:
        return None
    whole = f"{header}\n{' ' * _INDENT}{line}"
    return whole if _is_code(whole) else None


def with_note(fixed: str) -> str:
    """The note on ``fixed``, a ``with`` statement rewritten by :func:`with_items`: the
    body goes under the last of blocks that nest, or contextlib is to be imported."""
    if "\n" in fixed:
        return "  # the blocks nest: the body goes under the last one"
    return _IMPORT_CONTEXTLIB if "contextlib." in fixed else ""


def async_def_note(fix: str, plain_def: Optional[str]) -> str:
    """The note on a fix for a line that is not in an ``async def`` (``plain_def``, as
    :meth:`Statements.plain_def` says where it is; None: in one): the fix uses 'await',
    'async with' or 'async for', so the code must move into an async def."""
    if plain_def is not None and needs_async_def(fix):
        return f"  # needs an async def; {not_in_an_async_def(plain_def)}"
    return ""


# Where a line is when it is in no function (see Statements.plain_def).
MODULE_LEVEL = "<module>"
LAMBDA = "<lambda>"  # the name of a lambda's code
_CLASS_BODY = "class "


def not_in_an_async_def(plain_def: str) -> str:
    """What the line is in, for the "needs an async def" note."""
    if plain_def == MODULE_LEVEL:
        return "this is module-level code"
    if plain_def.startswith(_CLASS_BODY):
        return f"this is the body of {plain_def}"
    if plain_def == LAMBDA:
        return "a lambda is a plain function"
    return f"{plain_def}() is a plain def"


def _keeps_session(rest: str, name: str) -> bool:
    """Whether the statement ``rest`` hands the session ``name`` itself on (binds it, or
    a container of it, or what a call given it returns; or returns it), rather than only
    using it (`r = await session.execute(q)`)."""
    try:
        tree = parse(_PARSED + rest)
    except SyntaxError:
        return True
    func = tree.body[0]
    assert isinstance(func, ast.AsyncFunctionDef)
    for stmt in func.body:
        value = getattr(stmt, "value", None)
        if isinstance(value, ast.AST) and _flows(value, name):
            return True
        if any(isinstance(node, ast.NamedExpr) for node in ast.walk(stmt)):
            return True
    return False


def _flows(node: ast.AST, name: str) -> bool:
    """Whether the value of ``node`` may be, or hold, what ``name`` names."""
    if isinstance(node, ast.Name):
        return node.id == name
    if isinstance(node, (ast.Attribute, ast.Subscript, ast.Compare, ast.BinOp, ast.UnaryOp)):
        return False  # what the session gave, not the session
    if isinstance(node, ast.Call):  # a call given the session may keep it
        return any(_flows(arg, name) for arg in [*node.args, *(kw.value for kw in node.keywords)])
    return any(_flows(child, name) for child in ast.iter_child_nodes(node))


def with_items(
    kind: Kind,
    used: str,
    items: list[tuple[str, Optional[str]]],
    mine: set[int],
    leaves_early: bool = False,
) -> str:
    """A ``with`` (or ``async with``) statement of ``items`` (expression, name) whose
    items ``mine`` call the provider, rewritten: the other items kept, the provider's
    rewritten in place where they stay items of the statement, or the statement split
    into blocks nested in order where they do not (`async with a() as a:` then, one
    level in, `async for b in get_db():`)."""
    lines: list[str] = []
    group: list[str] = []
    head = f"{used} "

    def close() -> None:
        if group:
            lines.append(f"{head}{', '.join(group)}:")
            group.clear()

    for i, (expr, target) in enumerate(items):
        if i not in mine:
            group.append(expr + (f" as {target}" if target else ""))
            continue
        fixed = rewritten(kind, used, expr, target, leaves_early=leaves_early)
        if fixed.startswith(head) and fixed.endswith(":"):
            group.append(fixed[len(head) : -1])
        else:
            close()
            lines.append(fixed)
    close()
    return "\n".join(" " * (_INDENT * depth) + text for depth, text in enumerate(lines))


@functools.lru_cache(maxsize=64)  # a fix is compiled as async code and as plain code
def _is_code(fix: str, in_async_def: bool = True) -> bool:
    """Whether a fix of one or more lines compiles in an async def (or a plain one)."""
    source = f"{'async ' if in_async_def else ''}def _protoguard_():\n"
    source += textwrap.indent(fix, " " * _INDENT)
    if fix.endswith(":"):  # a block's header: give it a body
        last = source.rpartition("\n")[2]
        source += "\n" + " " * (len(last) - len(last.lstrip()) + _INDENT) + "pass"
    try:
        with quiet():
            compile(source, "<fix>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def needs_async_def(fix: str) -> bool:
    """Whether a fix uses 'async with', 'async for', 'await' or an async comprehension,
    which only an async def may."""
    return _is_code(fix) and not _is_code(fix, in_async_def=False)


class _Nested(NamedTuple):
    """A provider call nested in a line's expression, for a fix to take apart."""

    call: str  # the call as written
    rest: Optional[str]  # the line on the session instead, if the line used it as one
    block: bool  # whether the line is a block's header (`async with ...:`)
    target: str = "session"  # the name to bind the session to
    # Iterated by a comprehension: the line with the comprehension's 'for' made 'async
    # for' or the reverse, for a generator provider.
    loop: Optional[str] = None
    # Called per item of a comprehension, with its variable (`[await get_db(t) for t in
    # ts]`): the line with the call entered as given (`await
    # stack.enter_async_context(get_db(t))`), for a block of an exit stack to hold.
    each: Optional[Callable[[str], Optional[str]]] = None


def _provider_call(
    line: str, name: str, attr: Optional[str] = None, at: Optional[int] = None
) -> Optional[_Nested]:
    """The provider call when it is nested in the line's expression rather than being
    the expression itself (None otherwise), with the line rewritten on the session: the
    call's attribute ``attr`` taken (`get_db().execute(q)`, PG103), or, without
    ``attr``, the call awaited (`(await get_db()).execute(q)`). The rest is None when
    the line hands the call to what used it (`await asyncio.wait_for(get_db(), 1)`,
    `list(get_db())`): the rest of that line is not about the session."""
    parsed = _parse_code(line)
    if parsed is None:
        return None
    code, stmt = parsed
    found = _nested_calls(stmt, name, at)
    if attr is not None:
        # The call whose attribute was taken: `get_db().execute`.
        found = [
            (node, path)
            for node, path in found
            if isinstance(path[-1], ast.Attribute) and path[-1].attr == attr
        ]
    if not found:
        return None
    node, path = found[0]
    call = _segment(_PARSED + code, node)
    block = isinstance(stmt, (ast.AsyncFor, ast.For, ast.AsyncWith, ast.With))
    if _in_scope_of_its_own(node, path):
        # `[await get_db(t) for t in ts]`: the call runs once per item, with names only
        # the comprehension (or lambda) has; the line cannot be moved into its block.
        # With the comprehension's variable, each item's session is entered on an exit
        # stack whose block holds them all.
        return _Nested(call, None, block, each=_per_item(code, node, path, attr))
    if _iterated_by_comprehension(node, path):
        return _comprehension_fix(code, call, path[-2], block)
    stepped = _stepped_into(node, path, stmt)
    if stepped is not None:  # `db = await anext(get_db())`: the session is `db`
        return _Nested(call, None, block, stepped)
    if attr is not None:
        return _Nested(call, _replaced(code, node, path, "session"), block)
    if isinstance(path[-1], ast.Await):  # the await, with its parentheses if any
        return _Nested(call, _replaced(code, path[-1], path[:-1], "session"), block)
    return _Nested(call, None, block)


_STEPS = frozenset({"anext", "next"})


def _stepped_into(node: ast.AST, path: tuple[ast.AST, ...], stmt: ast.stmt) -> Optional[str]:
    """The name a statement binds the first step of the call ``node`` to, if it is that
    (`db = await anext(get_db())`, `db = next(get_db())`): what the block binds."""
    parent = path[-1] if path else None
    if not (
        isinstance(parent, ast.Call)
        and isinstance(parent.func, ast.Name)
        and parent.func.id in _STEPS
        and parent.args[:1] == [node]
        and isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
    ):
        return None
    value = stmt.value.value if isinstance(stmt.value, ast.Await) else stmt.value
    return _dotted(stmt.targets[0]) if value is parent else None


def _parse_code(line: str) -> Optional[tuple[str, ast.stmt]]:
    """The line's code and its statement, parsed from ``_PARSED + code`` (one line)."""
    code = _code_of(line)
    stmt = _parse_line(line)
    if stmt is None or "\n" in code:
        return None
    assert isinstance(stmt, ast.stmt)
    return code, stmt


def _nested_calls(
    stmt: ast.stmt, name: str, at: Optional[int] = None
) -> list[tuple[ast.Call, tuple[ast.AST, ...]]]:
    """The calls of ``name`` nested in the statement's expression (outermost first, each
    with the nodes around it); none when the expression is the call itself (awaited or
    not), which is no nesting."""
    whole: Optional[ast.AST] = None
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr, ast.Return)):
        whole = stmt.value
    elif isinstance(stmt, (ast.AsyncFor, ast.For)):
        whole = stmt.iter
    elif isinstance(stmt, (ast.AsyncWith, ast.With)) and len(stmt.items) == 1:
        whole = stmt.items[0].context_expr
    if isinstance(whole, ast.Await):
        whole = whole.value
    if whole is None or (isinstance(whole, ast.Call) and _is_call_of(whole, name, at)):
        return []
    return list(_calls_in(whole, name, at))


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _in_scope_of_its_own(node: ast.AST, path: tuple[ast.AST, ...]) -> bool:
    """Whether ``node`` is in a lambda's body, or in a comprehension but not in its first
    iterable (the one part evaluated where the comprehension is)."""
    chain = (*path, node)
    for i, parent in enumerate(chain[:-1]):
        child = chain[i + 1]
        if isinstance(parent, ast.Lambda) and child is parent.body:
            return True
        if isinstance(parent, _COMPREHENSIONS):
            first = parent.generators[0]
            if child is not first or i + 2 >= len(chain) or chain[i + 2] is not first.iter:
                return True
    return False


def _per_item(
    code: str, node: ast.Call, path: tuple[ast.AST, ...], attr: Optional[str]
) -> Optional[Callable[[str], Optional[str]]]:
    """For a call in a comprehension's body that uses a variable of the comprehension
    (`[await get_db(t) for t in ts]`, `[get_db(t).execute(q) for t in ts]`): a function
    giving the line with the call's session taken by the expression it is given instead
    (`await stack.enter_async_context(get_db(t))`); None for any other call, or one in a
    lambda's body.

    A generator expression the expression makes asynchronous (it awaits) becomes a list
    comprehension: an asynchronous one could no longer be given to list() or iterated
    by 'for'."""
    chain = (*path, node)
    if any(isinstance(part, ast.Lambda) for part in chain):
        return None
    variables = {
        target.id
        for part in path
        if isinstance(part, _COMPREHENSIONS)
        for generator in part.generators
        for target in ast.walk(generator.target)
        if isinstance(target, ast.Name)
    }
    if not any(isinstance(n, ast.Name) and n.id in variables for n in ast.walk(node)):
        return None  # the same call for every item: one block around the line holds it
    parent = path[-1]
    if attr is not None:  # `get_db(t).execute(q)`: the session's attribute instead
        replaced: ast.expr = node
        around = path
    elif isinstance(parent, ast.Await):  # `await get_db(t)`: the session instead
        replaced, around = parent, path[:-1]
    elif isinstance(parent, ast.comprehension) and parent.iter is node:
        # `for db in get_db(t)` in the comprehension: its one item, the session (`async
        # for db in get_db(t)`: its 'for', over a list, made a plain one).
        replaced, around = node, path
    else:
        return None
    generators = [part for part in path if isinstance(part, ast.GeneratorExp)]
    outer = generators[0] if generators else None
    line, shift, after_it = code, 0, len(code)
    if isinstance(parent, ast.comprehension) and parent.is_async and replaced is node:
        keyword = _async_for(code, path[-2], parent)
        if keyword is None:
            return None
        line = code[: keyword[0]] + "for" + code[keyword[1] :]
        shift, after_it = len("for") - (keyword[1] - keyword[0]), keyword[1]

    def span(part: ast.expr) -> tuple[int, int]:
        """Where ``part`` is in ``line``: the 'async' dropped, those after it moved."""
        start, end = _span(code, part)
        return (
            start + (shift if start >= after_it else 0),
            end + (shift if end >= after_it else 0),
        )

    def each(entered: str) -> Optional[str]:
        code = line
        if replaced is node and not attr:
            text = f"[{entered}]"
        elif entered.startswith("await ") and _is_primary(replaced, around):
            text = f"({entered})"
        else:
            text = entered
        start, end = span(replaced)
        if _is_primary(replaced, around):
            # Parentheses that only grouped it (`(await get_db(t)).execute`) go.
            before, after = code[:start].rstrip(), code[end:].lstrip()
            if before.endswith("(") and after.startswith(")"):
                start, end = len(before) - 1, len(code) - len(after) + 1
        if outer is None or not entered.startswith("await ") or shift:
            # (A generator expression with the 'async for' made plain was asynchronous
            # already: awaiting, it still is.)
            return code[:start] + text + code[end:]
        # The generator expression, awaiting now, as a list comprehension.
        g_start, g_end = span(outer)
        if not (g_start <= start and end <= g_end and code[g_start] == "("):
            return None  # pragma: no cover - a generator expression is in parentheses
        inside = code[g_start + 1 : start] + text + code[end : g_end - 1]
        call = path[path.index(outer) - 1] if path.index(outer) > 0 else None
        shares = (
            isinstance(call, ast.Call)
            and call.args == [outer]
            and not call.keywords
            and span(call.func)[1] == g_start
        )  # `list(x for x in y)`: the call's parentheses are the generator's
        listed = f"([{inside}])" if shares else f"[{inside}]"
        return code[:g_start] + listed + code[g_end:]

    return each


def _async_for(code: str, comp: ast.AST, generator: ast.comprehension) -> Optional[tuple[int, int]]:
    """Where the 'async for' of ``generator``, one of the comprehension ``comp``'s, is in
    ``code`` (ast has no place for it): between what comes before it and its target."""
    assert isinstance(comp, _COMPREHENSIONS)
    generators = comp.generators
    i = next((i for i, g in enumerate(generators) if g is generator), None)
    if i is None:  # pragma: no cover - the comprehension's own
        return None
    if i > 0:
        before: ast.expr = (generators[i - 1].ifs or [generators[i - 1].iter])[-1]
    else:
        before = comp.value if isinstance(comp, ast.DictComp) else comp.elt
    end, target = _span(code, before)[1], _span(code, generator.target)[0]
    found = list(re.finditer(r"\basync\s+for\b", code[end:target]))
    return (end + found[-1].start(), end + found[-1].end()) if found else None


def _iterated_by_comprehension(node: ast.AST, path: tuple[ast.AST, ...]) -> bool:
    """Whether ``node`` is the first iterable of a comprehension (`[db for db in
    get_db()]`): the comprehension iterates what the call returns."""
    return (
        len(path) >= 2
        and isinstance(path[-1], ast.comprehension)
        and path[-1].iter is node
        and isinstance(path[-2], _COMPREHENSIONS)
        and path[-2].generators[0] is path[-1]
    )


def _comprehension_fix(code: str, call: str, comp: ast.AST, block: bool) -> _Nested:
    """The provider call a comprehension iterates, taken apart for a fix: bound to the
    comprehension's variable, and with a list, set or dict comprehension over one
    variable and no condition, the line with the comprehension as a display of its
    one item (`async with get_db() as db: sessions = [db]`). A generator expression
    stays as it is: it runs later, after any block would have ended."""
    assert isinstance(comp, _COMPREHENSIONS)
    source = _PARSED + code
    first = comp.generators[0]
    target = first.target.id if isinstance(first.target, ast.Name) else "session"
    if isinstance(comp, ast.GeneratorExp):
        return _Nested(call, None, block, target)
    # The 'for' (or 'async for') of the first generator, between the item and the target.
    item = comp.value if isinstance(comp, ast.DictComp) else comp.elt
    item_end, target_start = _span(code, item)[1], _span(code, first.target)[0]
    keyword = list(re.finditer(r"(\basync\s+)?\bfor\b", code[item_end:target_start]))
    loop = None
    if keyword:
        start, end = item_end + keyword[-1].start(), item_end + keyword[-1].end()
        loop = code[:start] + ("for" if keyword[-1].group(1) else "async for") + code[end:]
    rest = None
    if len(comp.generators) == 1 and not first.ifs and isinstance(first.target, ast.Name):
        if isinstance(comp, ast.DictComp):
            one = f"{{{_segment(source, comp.key)}: {_segment(source, comp.value)}}}"
        elif isinstance(comp, ast.SetComp):
            one = f"{{{_segment(source, comp.elt)}}}"
        else:
            one = f"[{_segment(source, comp.elt)}]"
        rest = _replaced(code, comp, (), one)
    return _Nested(call, rest, block, target, loop)


# A line is parsed as the body of this function ('await' parses there): its nodes are
# on line 2, _INDENT columns in.
_INDENT = 4
_PARSED = "async def _protoguard_():\n" + " " * _INDENT


def _calls_in(
    node: ast.AST, name: str, at: Optional[int] = None, path: tuple[ast.AST, ...] = ()
) -> Iterator[tuple[ast.Call, tuple[ast.AST, ...]]]:
    """The calls of ``name`` in ``node``, outermost first, each with the nodes around it
    (``node`` first, its parent last)."""
    if isinstance(node, ast.Call) and _is_call_of(node, name, at) and path:
        yield node, path
    for child in ast.iter_child_nodes(node):
        yield from _calls_in(child, name, at, (*path, node))


def _span(code: str, node: ast.expr) -> tuple[int, int]:
    """Where ``node`` of ``_PARSED + code`` is in ``code``: (start, end) characters."""
    encoded = code.encode("utf-8")  # the offsets count UTF-8 bytes
    end_offset = node.end_col_offset if node.end_col_offset is not None else node.col_offset
    return (
        len(encoded[: node.col_offset - _INDENT].decode("utf-8", "replace")),
        len(encoded[: end_offset - _INDENT].decode("utf-8", "replace")),
    )


def _is_primary(node: ast.AST, path: tuple[ast.AST, ...]) -> bool:
    """Whether ``node`` is what an attribute, a subscript or a call is taken on: there,
    parentheses around it only group it, and an 'await' needs them (`(await
    make_session()).execute`)."""
    parent = path[-1] if path else None
    return (isinstance(parent, (ast.Attribute, ast.Subscript)) and parent.value is node) or (
        isinstance(parent, ast.Call) and parent.func is node
    )


def _replaced(code: str, node: ast.expr, path: tuple[ast.AST, ...], text: str) -> str:
    """``code`` (the one line a node of ``_PARSED + code`` was parsed from) with ``node``
    replaced by ``text``; parentheses that only grouped it for an attribute, a
    subscript or a call on it go too (`(await get_db()).execute`)."""
    start, end = _span(code, node)
    if _is_primary(node, path):
        before, after = code[:start].rstrip(), code[end:].lstrip()
        if before.endswith("(") and after.startswith(")"):
            start, end = len(before) - 1, len(code) - len(after) + 1
    return code[:start] + text + code[end:]


def _logical_line(
    filename: str, lineno: int, name: Optional[str] = None, col: Optional[int] = None
) -> str:
    """The statement at ``filename:lineno`` as one line, for a fix to rewrite.

    The physical line when it is a whole statement; otherwise (a call spread over
    lines, as formatters write long ones, a line continued with a backslash, or
    statements separated by semicolons: the one that calls ``name``) the statement
    around it, read from the file: its header only, for a block. Only ever on the
    error path. ``col``: where on the line the call is (a UTF-8 byte column), if known:
    of statements sharing the line, the one there.
    """
    line = linecache.getline(filename, lineno)
    if _is_whole(line, linecache.getline(filename, lineno - 1) if lineno > 1 else ""):
        return _in_the_body(line, name, col) or line
    return _statement_around(filename, lineno, line, name, col)


def _in_the_body(line: str, name: Optional[str], col: Optional[int] = None) -> Optional[str]:
    """The statement of a block written on one line that calls ``name``, when the
    block's header does not (`for i in ids: db = await get_db(i)`), or when ``col``
    (where the call is on the line, a UTF-8 byte column), if known, is in that statement
    (`async with cache.session() as c: db = await repo.session()`): the statement to
    rewrite is that one, not the block. Also the statement at ``col`` that uses what an
    earlier one of the body made (`async with get_db() as a: b = get_db(); b.info`,
    PG103 on `b`): the misuse is the body's, and its fix the assignment's, not the
    header's. None otherwise."""
    parsed = _parse_code(line) if name is not None else None
    if parsed is None or name is None:
        return None
    code, stmt = parsed
    header = _header_of(stmt)
    if header is None:
        return None
    in_header = any(_calls_anywhere(part, name) for part in header)
    base = code_start(code, line) if col is not None else None
    made = False  # whether a statement of the body before this one calls it
    for inner in stmt.body:  # type: ignore[attr-defined]
        calls = _calls_anywhere(inner, name)
        start, end = _span(code, inner)
        if calls and not in_header:
            return code[start:end]
        if in_header and (calls or made) and col is not None and base is not None:
            # The header calls it too: the statement where the call is, or the use of
            # what the body made, if it is here.
            first, last = (base + len(code[:at].encode("utf-8")) for at in (start, end))
            if first <= col < last:
                return code[start:end]
        made = made or calls
    return None


def _header_of(stmt: ast.stmt) -> Optional[list[ast.AST]]:
    """The parts of a block's header (None for a statement that is no such block)."""
    if isinstance(stmt, (ast.For, ast.AsyncFor)):
        return [stmt.target, stmt.iter]
    if isinstance(stmt, (ast.While, ast.If)):
        return [stmt.test]
    if isinstance(stmt, (ast.With, ast.AsyncWith)):
        return [
            part for item in stmt.items for part in (item.context_expr, item.optional_vars) if part
        ]
    return None


def _calls_anywhere(node: ast.AST, name: str) -> bool:
    """Whether a call of ``name`` is anywhere in ``node``."""
    return any(isinstance(n, ast.Call) and _is_call_of(n, name) for n in ast.walk(node))


def logical_line(
    lines: Sequence[str],
    lineno: int,
    name: Optional[str],
    statements: Optional[Statements],
    col: Optional[int] = None,
) -> str:
    """:func:`_logical_line` for a module whose source is read and parsed already (as
    ``protoguard check`` has it): ``lines`` are its lines, each with its end, and
    ``statements`` those of the module parsed (None if it does not parse)."""
    line = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
    if _is_whole(line, lines[lineno - 2] if 1 < lineno <= len(lines) else ""):
        return _in_the_body(line, name, col) or line
    node = statements.at(lineno, name, col) if statements is not None else None
    return _on_one_line(node, lines, line)


def _is_whole(line: str, before: str) -> bool:
    """Whether ``line`` (``before`` being the line before it) is a whole statement by
    itself, or blank."""
    return not line.strip() or (_parse_line(line) is not None and not _backslashed(before, line))


def _continued(filename: str, lineno: int) -> bool:
    """Whether the line at ``lineno`` continues the one before it, or goes on in the
    next, with a backslash (`db = \\` / `    await get_db()`)."""
    before = linecache.getline(filename, lineno - 1) if lineno > 1 else ""
    return _backslashed(before, linecache.getline(filename, lineno))


def _backslashed(before: str, line: str) -> bool:
    """Whether ``line`` continues ``before`` (the line before it), or goes on in the
    next, with a backslash."""
    return before.rstrip("\r\n").endswith("\\") or line.rstrip("\r\n").endswith("\\")


@functools.lru_cache(maxsize=512)  # a strict-mode finding may repeat at one place
def _statement_around(
    filename: str, lineno: int, line: str, name: Optional[str] = None, col: Optional[int] = None
) -> str:
    node = _statement_at(filename, lineno, line, name, col)
    return _on_one_line(node, linecache.getlines(filename), line)


def _on_one_line(node: Optional[ast.stmt], lines: Sequence[str], line: str) -> str:
    """The statement ``node`` of the module of ``lines`` (``line`` is one of them) on
    one line: as written if it is one statement of several on the line, its header
    for a block."""
    if node is None:
        return line
    if node.lineno == node.end_lineno and not isinstance(node, _BLOCKS):
        # One statement of several on the line: as written.
        written = lines[node.lineno - 1].encode("utf-8") if node.lineno <= len(lines) else b""
        segment = written[node.col_offset : node.end_col_offset].decode("utf-8", "replace")
        if segment.strip():
            return segment
    return _one_line(node) or line


_BLOCKS = (
    ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.If, ast.While, ast.Try,
    ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
)  # fmt: skip


@functools.lru_cache(maxsize=512)
def _statement_at(
    filename: str, lineno: int, line: str, name: Optional[str] = None, col: Optional[int] = None
) -> Optional[ast.stmt]:
    """The innermost statement at ``filename:lineno`` (``line`` is the line's text, for
    the cache); of statements on one line, the one that calls ``name`` (at ``col``, if
    known)."""
    try:
        tree = parse("".join(linecache.getlines(filename)))
    except (SyntaxError, ValueError):
        return None
    return Statements(tree).at(lineno, name, col)


def _one_line(node: Optional[ast.stmt]) -> Optional[str]:
    """A simple statement, or a block's header, written on one line."""
    prefix = "async " if isinstance(node, (ast.AsyncWith, ast.AsyncFor)) else ""
    if isinstance(node, (ast.With, ast.AsyncWith)):
        items = ", ".join(
            ast.unparse(item.context_expr)
            + (f" as {ast.unparse(item.optional_vars)}" if item.optional_vars else "")
            for item in node.items
        )
        return f"{prefix}with {items}:"
    if isinstance(node, (ast.For, ast.AsyncFor)):
        return f"{prefix}for {ast.unparse(node.target)} in {ast.unparse(node.iter)}:"
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr, ast.Return)):
        return ast.unparse(node)
    return None


# The code of a comprehension or generator expression: what runs it is no def of the
# user's, but the def (or lambda) it is written in.
_NESTED_CODE = frozenset({"<listcomp>", "<setcomp>", "<dictcomp>", "<genexpr>"})


def plain_def_of(code: Optional[CodeType], filename: str, lineno: int, name: str) -> Optional[str]:
    """:func:`plain_def_at` for a call of ``name`` at ``filename:lineno`` run by ``code``
    (None if unknown): LAMBDA when what runs it is a lambda, or a comprehension or
    generator expression in a lambda's body, as the frame of a run-time misuse says."""
    if code is not None and (
        code.co_name == LAMBDA or (code.co_name in _NESTED_CODE and _in_a_lambda(code, name))
    ):
        return LAMBDA
    return plain_def_at(filename, lineno)


def _in_a_lambda(code: CodeType, name: str) -> bool:
    """Whether ``code``, a comprehension's or generator expression's, is in a lambda's
    body: by its qualified name (Python 3.11 and later); before, whether the calls of
    ``name`` on its first line are all in a lambda's body."""
    qualname = getattr(code, "co_qualname", None)
    if isinstance(qualname, str):
        parts = qualname.split(".<locals>.")
        while parts and parts[-1] in _NESTED_CODE:
            parts.pop()
        return bool(parts) and parts[-1] == LAMBDA
    tree = _parsed("".join(linecache.getlines(code.co_filename)))
    if tree is None:
        return False
    lineno = code.co_firstlineno
    in_lambda: set[int] = set()
    calls: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Lambda):
            in_lambda.update(id(n) for n in ast.walk(node.body) if isinstance(n, ast.Call))
        elif isinstance(node, ast.Call) and node.lineno == lineno and _is_call_of(node, name):
            calls.add(id(node))
    return bool(calls) and calls <= in_lambda


@functools.lru_cache(maxsize=256)  # a finding repeats at its place: parse once
def plain_def_at(filename: str, lineno: int) -> Optional[str]:
    """The name of the plain ``def`` whose body holds ``filename:lineno`` (innermost),
    if it is not an ``async def``; None at module level, in an ``async def`` or where
    the source cannot be read."""
    lines = linecache.getlines(filename)
    if len(lines) < lineno:
        return None  # no source (code compiled from a string), or not this one's
    tree = _parsed("".join(lines))
    return None if tree is None else Statements(tree).plain_def(lineno)


class Statements:
    """A module's statements and functions by line, walked once for the lookups of many
    lines (the findings of ``protoguard check`` in one module)."""

    def __init__(self, tree: ast.AST) -> None:
        statements = [node for node in ast.walk(tree) if isinstance(node, ast.stmt)]
        statements.sort(key=lambda node: node.lineno)  # stable: as walked, within a line
        self._statements = statements
        self._starts = [node.lineno for node in statements]
        self._functions = [
            node
            for node in statements
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        ]
        self._function_starts = [node.lineno for node in self._functions]

    def at(
        self,
        lineno: int,
        name: Optional[str] = None,
        col: Optional[int] = None,
        prefer: Optional[Callable[[ast.Call], bool]] = None,
    ) -> Optional[ast.stmt]:
        """The innermost statement at line ``lineno``; of statements on one line, the
        one that calls ``name``: of several (`a = await repo.session(); b =
        cache.session()`), the one at ``col`` (where the call is on the line, a UTF-8
        byte column) if known, else one whose call ``prefer`` says is the provider's."""
        # Walking back from the line, the first statement that holds it is on the last
        # line to start any that do: those are the innermost (one, or several: `x; y`).
        innermost: list[ast.stmt] = []
        for i in range(bisect.bisect_right(self._starts, lineno) - 1, -1, -1):
            node = self._statements[i]
            if innermost and node.lineno < innermost[0].lineno:
                break
            if lineno <= (node.end_lineno or node.lineno):
                innermost.append(node)
        innermost.reverse()  # as walked
        if not innermost:
            return None
        if name is not None and len(innermost) > 1:  # statements sharing the line
            calling = [
                node
                for node in innermost
                if any(isinstance(n, ast.Call) and _is_call_of(n, name) for n in ast.walk(node))
            ]
            if col is not None:
                calling = [node for node in calling if _holds(node, lineno, col)] or calling
            elif prefer is not None and len(calling) > 1:
                calling = [
                    node
                    for node in calling
                    if any(
                        isinstance(n, ast.Call) and _is_call_of(n, name) and prefer(n)
                        for n in ast.walk(node)
                    )
                ] or calling
            if calling:
                return calling[-1]  # the innermost: `if c: db = await get_db()`
        return innermost[-1]

    def scope(self, lineno: int) -> Optional[ast.stmt]:
        """The innermost ``def``, ``async def`` or ``class`` whose body holds line
        ``lineno`` (whose code runs it); None for module-level code."""
        # The innermost is the last to start of those that hold the line.
        for i in range(bisect.bisect_right(self._function_starts, lineno) - 1, -1, -1):
            node = self._functions[i]
            if _first_line(node.body[0]) <= lineno <= (node.end_lineno or node.lineno):
                return node
        return None

    def plain_def(self, lineno: int) -> Optional[str]:
        """Where line ``lineno`` is when that is not in an ``async def``: the name of the
        plain ``def`` whose body holds it (innermost), ``class Name`` in a class body,
        MODULE_LEVEL in none; None in an ``async def``."""
        node = self.scope(lineno)
        if node is None:
            return MODULE_LEVEL
        if isinstance(node, ast.ClassDef):
            return f"{_CLASS_BODY}{node.name}"
        return node.name if isinstance(node, ast.FunctionDef) else None


def _holds(node: ast.stmt, lineno: int, col: int) -> bool:
    """Whether column ``col`` of line ``lineno`` is within ``node``."""
    end = (node.end_lineno or node.lineno, node.end_col_offset or 0)
    return (node.lineno, node.col_offset) <= (lineno, col) < end


def _first_line(node: ast.stmt) -> int:
    """The first line of a statement, its decorators' included."""
    decorators: list[ast.expr] = getattr(node, "decorator_list", None) or []
    return min([node.lineno, *(decorator.lineno for decorator in decorators)])


@functools.lru_cache(maxsize=8)  # a module's findings at several places: one parse
def _parsed(source: str) -> Optional[ast.Module]:
    try:
        return parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def right_use(info: ProviderInfo, site: Optional[CallSite]) -> str:
    """The right statement for the provider call on ``site``'s line (PG204's fix)."""
    name = short_name(info)
    line = _logical_line(site.filename, site.lineno, name) if site is not None else ""
    parsed = _parse_code(line) if line else None
    found = _nested_calls(parsed[1], name) if parsed is not None else []
    if parsed is None or not found:
        expr, target = _pieces(line, name)
        return rewritten(info.kind, k.CALL, expr, target)
    # `pending.append(make_session())`: the call is part of the line, which handed
    # what it returned to something else.
    code, (node, path) = parsed[0], found[0]
    call = _segment(_PARSED + code, node)
    if info.kind == k.COROUTINE and not any(isinstance(n, ast.GeneratorExp) for n in path):
        # A forgotten await: the line as it is, with the call awaited where it is. (In a
        # generator expression the await would make it an async one.)
        awaited = f"(await {call})" if _is_primary(node, path) else f"await {call}"
        fixed = _replaced(code, node, path, awaited)
        if _is_code(fixed):
            return fixed
    # What the line did with a context manager or generator cannot be kept: it is
    # entered or iterated, and the session used in its block.
    return rewritten(info.kind, k.CALL, call, None)


def enter_once(info: ProviderInfo, site: Optional[CallSite]) -> str:
    """PG201's fix: the loop on ``site``'s line rewritten to enter the async generator
    provider once, as ``Depends()`` does, so its cleanup runs however the block is
    left. The provider itself stays as it is: making it an ``@asynccontextmanager``
    would break ``Depends()`` on it (the flip-flop this library exists to end)."""
    name = short_name(info)
    line = _logical_line(site.filename, site.lineno, name) if site is not None else ""
    expr, target = _pieces(line, name)
    entered = entered_once(expr)
    if entered is None:
        return render(k.ASYNC_WITH, f"contextlib.asynccontextmanager({name})(...)", target)
    # A loop on one line with its body (`async for db in get_db(): x = db; break`): the
    # header alone, pasted over the line, would leave a block with no body.
    return _with_the_body(render(k.ASYNC_WITH, entered, target), line, name)


def enter_once_note(info: ProviderInfo, site: Optional[CallSite], fix: str) -> str:
    """The note on PG201's fix (see :func:`entered_once_note`): contextlib to import, and
    the loop's own ``break`` and ``continue``, which the block cannot keep."""
    loop = loop_at(site.filename, site.lineno, short_name(info)) if site is not None else None
    return entered_once_note(fix, "", loop)


def in_depends(filename: str) -> bool:
    """Whether ``filename`` is FastAPI's code that resolves ``Depends()`` (FastAPI is
    imported, since it ran there)."""
    path = getattr(sys.modules.get("fastapi"), "__file__", None)
    if not isinstance(path, str):
        return False
    return filename.startswith(os.path.join(os.path.dirname(path), "dependencies", ""))


def open_where_used(
    info: ProviderInfo, takes_arguments: bool, site: Optional[CallSite], attr: str
) -> str:
    """PG203's fix for a session ``Depends()`` gave: the provider entered where the
    late work runs, as its own block (``async with contextlib.asynccontextmanager(
    get_db)() as db:`` for a generator, ``async with get_db() as db:`` for a context
    manager), ``db`` being what ``.attr`` was taken on in ``site``'s line. A method is
    called as a ``Depends()`` in that line's module has it (``repo.session``)."""
    line = _logical_line(site.filename, site.lineno) if site is not None else ""
    target = _attribute_owner(line, attr) if line else None
    arguments = "(...)" if takes_arguments else "()"
    called = _as_depends_has_it(info, site)
    note = ""
    if called == short_name(info) and "." in called and not _bound_by_its_class(info):
        # A method, as no Depends() of the module spells it: `Repo.session` would be
        # the unbound function. Its instance, by a name the user puts theirs in for.
        owner, _, own = called.rpartition(".")
        instance = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", owner.rpartition(".")[2]).lower()
        called = f"{instance}.{own}"
        note = f"  # {instance}: the {owner} instance whose .{own} Depends() was given"
    if info.kind == k.ASYNC_CM:
        return render(k.ASYNC_WITH, f"{called}{arguments}", target) + note
    if info.kind == k.SYNC_CM:
        return render(k.WITH, f"{called}{arguments}", target) + note
    if info.kind == k.ASYNC_GEN:
        opened = f"contextlib.asynccontextmanager({called}){arguments}"
        return render(k.ASYNC_WITH, opened, target) + note
    return render(k.WITH, f"contextlib.contextmanager({called}){arguments}", target) + note


def _bound_by_its_class(info: ProviderInfo) -> bool:
    """Whether the provider, a method, is a classmethod or a staticmethod (read from its
    source; False if it cannot be read): `Repo.session` is then what to call."""
    if info.filename is None or info.lineno is None:
        return False
    found = _defs_by_line("".join(linecache.getlines(info.filename))).get(info.lineno)
    return found is not None and found[3]


def _as_depends_has_it(info: ProviderInfo, site: Optional[CallSite]) -> str:
    """A method provider as the ``Depends()`` of ``site``'s module spells it, bound to
    its instance (``repo.session`` for ``Repo.session``), if they all spell it one way;
    else (and for a function) its short name. A spelling that is another object in that
    module's names (read without running code) does not count: ``Depends(auth.session)``,
    another class's method of the same name, is not it; one that is the provider wins
    over one that cannot be read there (an instance local to a function)."""
    name = short_name(info)
    owner, _, own = name.rpartition(".")
    if not owner or site is None:
        return name
    spellings = _depends_spellings("".join(linecache.getlines(site.filename))).get(own)
    if not spellings:
        return name
    from . import _decorator, _findings, _scan  # the error path only (they import this module)

    try:
        module = sys.modules.get(_findings._module_named(site.filename) or "")
        namespace = vars(module) if module is not None else {}
    except Exception:  # an odd object in sys.modules
        namespace = {}
    provider_is, unknown = set(), set()
    for spelled in spellings:
        try:
            provider = _scan.resolve(spelled.split("."), namespace)
            if provider is None:
                unknown.add(spelled)
            elif _decorator._guarded_info(provider) == info:
                provider_is.add(spelled)
        except Exception:  # an object that breaks getattr_static: not this one
            continue
    found = provider_is or unknown
    return found.pop() if len(found) == 1 else name


@functools.lru_cache(maxsize=8)  # a finding repeats on every request: one walk a module
def _depends_spellings(source: str) -> dict[str, frozenset[str]]:
    """The dotted names given to ``Depends()``/``Security()`` in ``source``, by their last
    part (``{"session": {"repo.session"}}``)."""
    tree = _parsed(source)
    spelled: dict[str, set[str]] = {}
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Call) and _called_name(node) in ("Depends", "Security"):
            given = [*node.args[:1], *(kw.value for kw in node.keywords if kw.arg == "dependency")]
            dotted = _dotted(given[0]) if given else None
            if dotted is not None and "." in dotted:
                spelled.setdefault(dotted.rpartition(".")[2], set()).add(dotted)
    return {own: frozenset(names) for own, names in spelled.items()}


def defined_with_parameters(info: ProviderInfo) -> bool:
    """Whether the provider's def takes parameters, a method's ``self`` or ``cls`` aside
    (read from its source; True if it cannot be read)."""
    if info.filename is None or info.lineno is None:
        return True
    found = _defs_by_line("".join(linecache.getlines(info.filename))).get(info.lineno)
    if found is None:
        return True
    positional, others, static, _ = found
    if "." in short_name(info) and not static:
        positional -= 1  # self or cls
    return positional > 0 or others


@functools.lru_cache(maxsize=8)  # a finding repeats on every request: one walk a module
def _defs_by_line(source: str) -> dict[int, tuple[int, bool, bool, bool]]:
    """Each def in ``source`` by its first line (decorators included): how many positional
    parameters it has, whether it has others, whether it is a staticmethod, and whether
    it is a staticmethod or a classmethod."""
    tree = _parsed(source)
    defs: dict[int, tuple[int, bool, bool, bool]] = {}
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args
            decorators = {_dotted(d) for d in node.decorator_list}
            defs.setdefault(
                _first_line(node),
                (
                    len(arguments.posonlyargs) + len(arguments.args),
                    bool(arguments.kwonlyargs or arguments.vararg or arguments.kwarg),
                    "staticmethod" in decorators,
                    bool(decorators & {"staticmethod", "classmethod"}),
                ),
            )
    return defs


def _spelled(statement: str, name: str, at: Optional[int] = None) -> Optional[str]:
    """The callee of the statement's call of ``name`` as the line writes it (`repo.session`
    for ``Repository.session``), as `check` names it; None if there is no such call."""
    stmt = _parse_line(statement)
    if stmt is None:
        return None
    for node in ast.walk(stmt):
        if isinstance(node, ast.Call) and _is_call_of(node, name, at):
            return _dotted(node.func)
    return None


def _called_as(frame: FrameType, statement: str, info: ProviderInfo, name: str) -> Optional[str]:
    """The name ``statement`` calls the provider by when it is not ``name``: an alias
    (`from app.db import get_db as provide`), found as the call whose callee is the
    guarded provider in the frame's names (read without running any code). None if the
    line calls ``name``, or no call on it is the provider."""
    stmt = _parse_line(statement)
    if stmt is None:
        return None
    calls = [node for node in ast.walk(stmt) if isinstance(node, ast.Call)]
    if not calls or any(_is_call_of(call, name) for call in calls):
        return None
    namespace = _namespace(frame)
    for call in calls:
        if _calls_the_provider(call, namespace, info):
            chain = _dotted(call.func)
            assert chain is not None  # (the provider is called by a name or attributes)
            return chain.rpartition(".")[2]
    return None


def _namespace(frame: FrameType) -> dict[str, object]:
    """The frame's names, read without running code: a class body's namespace may be a
    mapping of the user's (__prepare__), whose methods are not called."""
    names = frame.f_locals
    if type(names) is not dict and type(names).__name__ != "FrameLocalsProxy":
        names = {}
    return {**frame.f_globals, **names}


def _calls_the_provider(call: ast.Call, namespace: dict[str, object], info: ProviderInfo) -> bool:
    """Whether ``call``'s callee is, in ``namespace``, the guarded provider of ``info``
    (or a partial of it), found without running any code."""
    from . import _decorator, _scan  # the error path only (they import this module)

    chain = _scan._chain(call.func)
    if chain is None:
        return False
    try:
        provider = _scan.resolve(chain, namespace)
        if provider is None:
            return False
        guarded = _decorator._guarded_info(provider)
        if guarded is None and isinstance(provider, functools.partial):
            # `q = functools.partial(get_db, "primary")`, then `q()`: the line calls
            # `q`, as `check` says (which takes a partial as what it wraps).
            guarded = _decorator._guarded_info(k._innermost(provider))
        return guarded == info
    except Exception:  # an object that breaks getattr_static: not this one
        return False


def code_start(statement: str, line: str) -> Optional[int]:
    """Where the code of ``statement`` starts in the physical line ``line`` it was read
    from (a UTF-8 byte column), for the columns of :func:`_is_call_of`; None if the
    statement is not written on that line as it is (it spreads over lines)."""
    code = _code_of(statement)
    start = line.find(code) if code else -1
    return len(line[:start].encode("utf-8")) if start >= 0 else None


def _instruction_span(frame: FrameType) -> Optional[tuple[int, int]]:
    """Where the instruction running in ``frame`` (the one that used the provider's
    result) is on the frame's line: its start and end UTF-8 byte columns, the end -1 if
    it goes on to another line; None before Python 3.11, which has no columns."""
    positions = getattr(frame.f_code, "co_positions", None)
    if positions is None or frame.f_lasti < 0:
        return None
    position = next(itertools.islice(positions(), frame.f_lasti // 2, None), None)
    if position is None or position[0] != frame.f_lineno or position[2] is None:
        return None
    end = position[3] if position[1] == position[0] and position[3] is not None else -1
    return position[2], end


def _statement_of(
    frame: FrameType, info: ProviderInfo, name: str, told: Optional[int] = None
) -> str:
    """The statement of the frame's line that made the misuse (see :func:`_logical_line`):
    of statements sharing the line that call ``name`` (`a = await repo.session(); b =
    cache.session()`), the one where the running instruction is (Python 3.11 and later),
    or before, the one with the call at column ``told`` (see :func:`_told_by_its_use`),
    or else the one whose call is the guarded provider in the frame's names."""
    filename, lineno = frame.f_code.co_filename, frame.f_lineno
    span = _instruction_span(frame)
    col = span[0] if span is not None else told
    statement = _logical_line(filename, lineno, name, col)
    line = linecache.getline(filename, lineno)
    if col is not None or _is_whole(line, linecache.getline(filename, lineno - 1)):
        return statement
    tree = _parsed("".join(linecache.getlines(filename)))
    if tree is None:  # pragma: no cover - the line ran, so its file parses
        return statement
    namespace = _namespace(frame)
    node = Statements(tree).at(
        lineno, name, prefer=lambda call: _calls_the_provider(call, namespace, info)
    )
    return _on_one_line(node, linecache.getlines(filename), line) if node is not None else statement


def _misused_at(
    frame: FrameType, statement: str, info: ProviderInfo, name: str, told: Optional[int] = None
) -> Optional[int]:
    """Where the call that was misused starts in ``statement`` (see :func:`_is_call_of`),
    when the statement calls ``name`` more than once; None otherwise.

    The call is the one within the span of the instruction that misused its result
    (``co_positions()``, Python 3.11 and later: `await repo.session()`, not the
    `cache.session()` before it); before 3.11, the one at column ``told`` (see
    :func:`_told_by_its_use`); if that leaves more than one, the first whose callee is
    the guarded provider in the frame's names."""
    stmt = _parse_line(statement)
    if stmt is None:
        return None
    calls = [n for n in ast.walk(stmt) if isinstance(n, ast.Call) and _is_call_of(n, name)]
    if len(calls) < 2:
        return None
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno, frame.f_globals)
    base = code_start(statement, line)
    span = _instruction_span(frame)
    if base is not None and span is not None:
        start, end = span
        within = [
            call
            for call in calls
            if start <= base + call.col_offset - _INDENT
            and (end < 0 or base + (call.end_col_offset or 0) - _INDENT <= end)
        ]
        calls = within or calls
    elif base is not None and told is not None:
        calls = [call for call in calls if base + call.col_offset - _INDENT == told] or calls
    if len(calls) > 1:
        namespace = _namespace(frame)
        calls = [call for call in calls if _calls_the_provider(call, namespace, info)] or calls
    return calls[0].col_offset - _INDENT


# How each protocol is written around a call, to tell calls apart by it.
_WRITTEN = {
    ast.With: k.WITH,
    ast.AsyncWith: k.ASYNC_WITH,
    ast.For: k.FOR,
    ast.AsyncFor: k.ASYNC_FOR,
    ast.Await: k.AWAIT,
}


def _told_by_its_use(
    frame: FrameType, info: ProviderInfo, name: str, used: str, attr: Optional[str]
) -> tuple[Optional[int], int]:
    """Before Python 3.11, which gives no column for the instruction that misused the
    provider's result: of the provider's calls on the frame's line (`a = await
    gen_db(); b = [x async for x in gen_db()]`), the one whose use, as written, is the
    protocol ``used`` (the ``.attr`` taken, for an attribute), or else the one handed
    on to other code (`list(gen_db())`): (its UTF-8 byte column, 1). (None, n) when
    there is no telling: n such calls (`a = await gen_db(); b = await gen_db()`), or
    none (n 0), or one call only of that name on the line, or the column is known."""
    if _instruction_span(frame) is not None or used not in (*_WRITTEN.values(), k.ATTRIBUTE):
        return None, 0
    lineno = frame.f_lineno
    tree = _parsed("".join(linecache.getlines(frame.f_code.co_filename)))
    calls: dict[int, ast.Call] = {}
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Call) and node.lineno == lineno and _is_call_of(node, name):
            calls[id(node)] = node
    if len(calls) < 2:
        return None, 0
    namespace = _namespace(frame)
    mine = {i: c for i, c in calls.items() if _calls_the_provider(c, namespace, info)}
    calls = mine or calls
    # Each call's protocol as written: what is around it (None: handed on to other code).
    protocol: dict[int, Optional[str]] = dict.fromkeys(calls)
    for node in ast.walk(tree) if tree is not None else ():
        around: list[tuple[ast.AST, Optional[str]]] = []
        if isinstance(node, (ast.With, ast.AsyncWith)):
            around = [(item.context_expr, _WRITTEN[type(node)]) for item in node.items]
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            around = [(node.iter, _WRITTEN[type(node)])]
        elif isinstance(node, ast.comprehension):
            around = [(node.iter, k.ASYNC_FOR if node.is_async else k.FOR)]
        elif isinstance(node, ast.Await):
            around = [(node.value, k.AWAIT)]
        elif isinstance(node, ast.Attribute):
            around = [(node.value, k.ATTRIBUTE if node.attr == attr else "")]
        for inner, written in around:
            if id(inner) in protocol:
                protocol[id(inner)] = written
    for wanted in (used, None):  # the protocol as written, or handed on
        found = [calls[i] for i, written in protocol.items() if written == wanted]
        if len(found) == 1:
            return found[0].col_offset, 1
        if found:
            return None, len(found)
    return None, 0


def _assigned_call(frame: FrameType, name: Optional[str]) -> Optional[tuple[str, int]]:
    """The provider call last assigned to ``name`` in the frame's function, as written,
    and the line it is on.

    ``get_db()`` for ``db = get_db()`` a few lines above a misuse of ``db``. Read from
    the function's source; only ever on the error path.
    """
    if name is None:
        return None
    code = frame.f_code
    try:
        lines, first = inspect.getsourcelines(code)
    except (OSError, TypeError):
        return None
    source = textwrap.dedent("".join(lines))
    try:
        tree = parse(source)
    except SyntaxError:
        return None
    found: Optional[tuple[str, int]] = None
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(value, ast.Await):
            value = value.value
        if (
            _dotted(target) == name
            and isinstance(value, ast.Call)
            and max(first, 1) + node.lineno - 1 <= frame.f_lineno
        ):
            # The object came from the provider, so the call that made it is the
            # provider's, whatever name it goes by here (an alias, a partial, p.get_db).
            segment = ast.get_source_segment(source, value)
            found = (segment, max(first, 1) + node.lineno - 1) if segment else None
    return found


# Code that may use 'async with', 'async for' and 'await'.
_ASYNC_CODE = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
# The code of a list, set or dict comprehension, which runs in a frame of its own before
# Python 3.12, called by the function it is in.
_COMPREHENSION_CODE = frozenset({"<listcomp>", "<setcomp>", "<dictcomp>"})
_GENERATOR_EXPRESSION = "<genexpr>"


_WITH_RAISES_ATTRIBUTE_ERROR = sys.version_info < (3, 11)

# A generator provider entered once by a fix (`contextlib.asynccontextmanager(get_db)`),
# and why, said under the why of the misuse.
_ENTERED_ONCE = re.compile(r"\bcontextlib\.(?:async)?contextmanager\([^()]*\)")
_WHY_ENTERED = {
    "PG102": "It is a generator, not a context manager: make it one with '{right}', or let "
    "FastAPI's Depends() drive it.",
}
_LEFT_EARLY = (
    "Its block is left early (a return, break or continue), where an 'async for' would run the "
    "provider's cleanup late (PG201); entered once, as Depends() does, the cleanup runs "
    "however the block is left."
)
_PER_ITEM = (
    "Each item's session is entered on an exit stack, which keeps them all open until its "
    "block ends; a loop over each ('{loop}') would close its session at the loop's next step, "
    "when the provider's cleanup runs."
)


def misuse(
    info: ProviderInfo,
    used: str,
    *,
    depth: int = 1,
    attr: Optional[str] = None,
    obj: object = None,
    result_kind: Optional[Kind] = None,
) -> ProtocolError:
    """Build the ProtocolError for using what ``info`` returned with protocol ``used``.

    ``result_kind`` is the kind of what the provider returned when it is not the
    provider's own (a plain function returning a context manager, say). ``depth`` is
    how many frames above this function the search for the user's frame starts;
    internal frames are skipped anyway.

    The fix is worked out from the user's source. Should that fail in a way nobody
    foresaw, the error is built again from the call alone (the fix then the plain
    statement for the provider): the user's ProtocolError is never replaced by one of
    protoguard's own.
    """
    try:
        return _misuse(info, used, depth + 1, True, attr, obj, result_kind)
    except Exception:
        return _misuse(info, used, depth + 1, False, attr, obj, result_kind)


def _misuse(
    info: ProviderInfo,
    used: str,
    depth: int,
    read_source: bool,
    attr: Optional[str],
    obj: object,
    result_kind: Optional[Kind],
) -> ProtocolError:
    """misuse(); ``read_source``: work the fix out from the user's source."""
    kind = result_kind or info.kind
    code = k.misuse_code(kind, used)
    name = short_name(info)
    call = f"{name}()"
    try:
        frame, by_asyncio = _find_user_frame(sys._getframe(depth))
    except ValueError:  # pragma: no cover - no such frame
        frame, by_asyncio = None, False
    call_site: Optional[CallSite] = None
    line = statement = ""
    injected = False
    depends: Optional[str] = None  # the dependency as Depends() writes it, if injected
    owner: Optional[str] = None
    assigned = f"{name}(...)"
    assigned_at: Optional[int] = None  # the line of the call assigned to `owner`
    plain_def: Optional[str] = None  # the function the misuse is in, if not async
    at: Optional[int] = None  # where the call misused starts in the statement, if known
    # PG107: which item of the statement entered the context manager again, and all of
    # them (see _entered_again), if that can be told.
    again: Optional[tuple[int, list[tuple[str, Optional[str]]]]] = None
    if frame is not None:
        function = frame
        while function.f_code.co_name in _COMPREHENSION_CODE and function.f_back is not None:
            function = function.f_back  # a comprehension's own frame (before Python 3.12)
        code_flags = function.f_code.co_flags
        if function.f_code.co_name == _GENERATOR_EXPRESSION and not read_source:
            plain_def = None  # the def it is written in is read from the source
        elif function.f_code.co_name == _GENERATOR_EXPRESSION:
            # A generator expression's frame, on any Python: the def it is written in
            # (its caller is whatever iterates it), or the lambda.
            plain_def = plain_def_of(
                function.f_code, frame.f_code.co_filename, frame.f_lineno, name
            )
        elif function.f_code.co_name == "<module>":
            plain_def = MODULE_LEVEL
        elif not code_flags & inspect.CO_NEWLOCALS:  # a class body's code
            plain_def = f"{_CLASS_BODY}{function.f_code.co_name}"
        elif not code_flags & _ASYNC_CODE:
            plain_def = function.f_code.co_name
        del function
        call_site = CallSite(frame.f_code.co_filename, frame.f_lineno)
        line = linecache.getline(call_site.filename, call_site.lineno, frame.f_globals).rstrip()
        if not read_source:
            frame = None  # the call alone, from here on
    untold = 0  # calls on the line that cannot be told apart (before Python 3.11)
    if frame is not None and call_site is not None:
        statement = _statement_of(frame, info, name)
        alias = _called_as(frame, statement, info, name)
        if alias is not None:  # `from app.db import get_db as provide`: `provide()`
            name, call, assigned = alias, f"{alias}()", f"{alias}(...)"
            statement = _statement_of(frame, info, name)
        told, untold = _told_by_its_use(frame, info, name, used, attr)
        if told is not None:
            statement = _statement_of(frame, info, name, told)
        at = _misused_at(frame, statement, info, name, told)
        spelled = _spelled(statement, name, at)
        if spelled is not None:  # `repo.session()`, not `Repository.session()`
            call = f"{spelled}()"
        if _continued(call_site.filename, call_site.lineno):
            line = statement  # `db = \` / `await get_db()`: the statement, not a piece
        if used == k.ATTRIBUTE and attr:
            owner = _attribute_owner(line, attr)
            depends = _injected_by_depends(frame, owner)
            injected = depends is not None
        elif used == k.REENTER:
            again = _entered_again(statement, frame, obj)
            owner = again[1][again[0]][0] if again is not None else _pieces(statement, name)[0]
        found = _assigned_call(frame, owner)
        if found is not None:
            assigned, assigned_at = found
            alias = alias or _called_as(frame, assigned, info, name)
            if alias is not None:  # `db = provide()`, then `db.execute(q)`
                name, call = alias, f"{alias}()"
        del frame
    early = False  # whether the block the fix opens may be left before its end
    if used == k.REENTER:
        used = k.ASYNC_WITH if k.is_async(kind) else k.WITH
        what = reentered(used, call)
        fix, note = render(used, assigned, _pieces(statement, name)[1]), ""
        if again is not None and len(again[1]) > 1:
            # The item that entered it again made anew, the statement's others kept
            # (`async with get_db() as z, cm as y:`: `..., get_db() as y:`).
            index, items = again
            made = [
                (assigned if i == index else expr) + (f" as {target}" if target else "")
                for i, (expr, target) in enumerate(items)
            ]
            fix = f"{used} {', '.join(made)}:"
    else:
        # The block the fix opens: the user's, or the lines from the one that made `db`.
        early = (
            read_source
            and call_site is not None
            and kind == k.ASYNC_GEN
            and leaves_early(call_site.filename, assigned_at or call_site.lineno, name)
        )
        fix, note = rewritten(kind, used, assigned, None), ""  # the call alone
        if read_source and untold < 2:  # (more: rewriting one would be a guess)
            with contextlib.suppress(RecursionError):  # an expression nested too deep
                fix, note = _fix(
                    info, kind, used, statement, owner, assigned, attr, early, name, at
                )
    # The note is said in the message, not part of .fix (the line itself).
    if (
        used == k.ATTRIBUTE
        and call_site is not None
        and assigned_at is not None
        and assigned_at != call_site.lineno
        and (
            fix.endswith(f" as {owner}:")
            or fix.startswith((f"for {owner} in ", f"async for {owner} in "))
        )
    ):
        # PG103 on `db.commit()`: the fix is for the line that made `db`.
        source = linecache.getline(call_site.filename, assigned_at).strip()
        note = f"  # replaces line {assigned_at}: {source}" if source else ""
    async_def = async_def_note(fix, plain_def)
    if async_def:
        # It takes the place of the note on the fix, but not of the import that needs.
        imports = (
            "import contextlib; " if "contextlib." in fix and "import contextlib" in note else ""
        )
        note = async_def.replace("  # ", f"  # {imports}", 1)
    elif by_asyncio:
        # asyncio used the object in a task of its own: the fix goes in a coroutine.
        note = "  # in an async def, whose call you pass to asyncio"
    if read_source and call_site is not None and "contextlib.asynccontextmanager(" in fix:
        note = entered_once_note(fix, note, loop_at(call_site.filename, call_site.lineno, name))
    elif read_source and call_site is not None and fix.startswith(("async with ", "with ")):
        # A loop rewritten as a block: what its own break, continue and else become.
        note += loop_rewritten_note(fix, loop_at(call_site.filename, call_site.lineno, name), name)
    if untold > 1:
        shown = f".{attr}" if used == k.ATTRIBUTE else used
        note += (
            f"  # {call} is used with '{shown}' {untold} times on this line; before Python "
            "3.11 protoguard cannot tell which one failed: rewrite that one like this"
        )
    right = _right_protocol(kind, used)
    # A generator's session per item of a comprehension, each entered on an exit stack
    # (not a line of the user's that has an exit stack of its own).
    per_item = kind in (k.ASYNC_GEN, k.SYNC_GEN) and _PER_ITEM_FIX.match(fix) is not None
    entered = _ENTERED_ONCE.search(fix) if (kind == k.ASYNC_GEN and early) or per_item else None
    if entered is not None:
        # The fix enters the generator once, not by a loop: the why says so.
        right = f"{'async with' if k.is_async(kind) else 'with'} {entered.group(0)}(...)"
    if injected:
        # FastAPI before 0.123.5 hands an endpoint what a context-manager provider
        # returns. The endpoint's line cannot be rewritten; the dependency can. It is
        # named as Depends() writes it (an alias: `Depends(get_db)`), as the fix names it.
        called = depends or name
        what = (
            f"'.{attr}' on what Depends({called}) injected: the object {called}() returned, "
            f"which is {_RESULT[kind]}, not the session"
        )
        why = (
            "FastAPI before 0.123.5 injects what a context-manager provider returns; "
            "0.123.5 and later give the endpoint the session of a guarded provider."
        )
        # A definition is more than one line: the code follows the advice, one level
        # in, and is valid Python as it stands (the message indents it under "fix:").
        # A method is called as Depends() has it (`repo.session`), and its generator
        # named by the method's own name.
        defined = called.rpartition(".")[2]
        if k.is_async(kind):
            generator = "an async generator"
            code_lines = (
                f"async def {defined}_dependency():",
                f"    async with {called}() as session:",
                "        yield session",
            )
        else:
            generator = "a generator"
            code_lines = (
                f"def {defined}_dependency():",
                f"    with {called}() as session:",
                "        yield session",
            )
        fix = "\n".join(
            (f"upgrade FastAPI to 0.123.5 or later, or give Depends() {generator}:", *code_lines)
        )
    else:
        if used == k.ATTRIBUTE:
            what = f"'.{attr}' on the object {call} returned, which is {_RESULT[kind]}"
        elif code != "PG107":
            what = misused(used, call, kind)
        if used != k.ATTRIBUTE:
            said = right
        elif entered is not None:
            said = f"enter {call} with '{right}'"
        else:
            said = f"use '{right}' on {call}"
        template = _WHY[code] if entered is None else _WHY_ENTERED.get(code, _WHY[code])
        why = template.format(
            right=said, call=call, side="an async" if k.is_async(kind) else "a sync"
        )
        if entered is not None and per_item:
            why += f"\n  {_PER_ITEM.format(loop=_right_protocol(kind, used))}"
        elif entered is not None:
            why += f"\n  {_LEFT_EARLY}"
    parts = [f"[{code}] {what}"]
    if call_site is not None:
        parts.append(f"  at {call_site}")
        if line:
            parts.append(f"      {line.strip()}")
    elif by_asyncio:
        # No line of the user's did it, and asyncio's own is no use to them.
        parts.append(
            f"  {'awaited' if used == k.AWAIT else 'used'} by asyncio in a task of its own, "
            "as asyncio.ensure_future(), gather(), shield() and wait_for() make for an "
            f"awaitable that is not a coroutine: the line to change is the one that passed "
            f"{call} to asyncio"
        )
    parts.append(f"  {definition_line(info)}")
    parts.append(f"  {why}")
    parts.append(fix_line(fix, note))
    parts.append(f"  docs: {DOCS_URL}#{code.lower()}")
    message = "\n".join(parts)
    fields = {
        "code": code,
        "provider": info,
        "used": used if used != k.ATTRIBUTE else f".{attr}",
        # A plain function's result is used as it is, or with its own protocol.
        "supported": k.SUPPORTED[kind] + ((k.CALL,) if info.kind == k.FUNCTION else ()),
        "call_site": call_site,
        "fix": fix,
    }
    if used == k.ATTRIBUTE:
        return ProtocolAttributeError(message, name=attr or "", obj=obj, **fields)
    if code == "PG107":
        # What Python raises there: contextlib's second entry finds 'args' gone.
        return ProtocolAttributeError(message, name="args", obj=obj, **fields)
    if used in (k.WITH, k.ASYNC_WITH) and _WITH_RAISES_ATTRIBUTE_ERROR:
        # What Python before 3.11 raises for an object that is no (async) context
        # manager: AttributeError: __aenter__ (a TypeError from 3.11 on), with no name
        # or object, as Python's (a name would have 3.10 suggest "Did you mean ...").
        return ProtocolAttributeError(message, name=None, obj=None, **fields)
    return ProtocolError(message, **fields)  # type: ignore[arg-type]
