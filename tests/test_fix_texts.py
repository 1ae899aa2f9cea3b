"""Fix texts for lines the matrix does not write: a block of several items, a line that
keeps the session, statements sharing a line, a return or a condition on the call, a
method's call inside an expression. Each fix is checked as code, as the user would
paste it over the reported line."""

from __future__ import annotations

import asyncio
import collections.abc
import contextlib
import functools
import itertools
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any, Optional

import pytest
import sqlalchemy

import protoguard
from protoguard import ProtocolError, _messages, _scan

from .conftest import COUNT


@protoguard.provider
@contextlib.asynccontextmanager
async def get_db(*args: Any) -> Any:
    yield "session"


@protoguard.provider
async def get_agen() -> Any:
    yield "session"


@protoguard.provider
async def make_session() -> Any:
    return contextlib.nullcontext("session")


@protoguard.provider
def get_gen() -> Any:
    yield "session"


@contextlib.asynccontextmanager
async def other() -> Any:
    yield "other"


class Repository:
    @protoguard.provider
    @contextlib.asynccontextmanager
    async def session(self) -> Any:
        yield "session"


async def process(session: Any) -> Any:
    return session


primary = functools.partial(get_db, "primary")


class Cache:
    """A method of the same name as Repository's, not a provider."""

    @contextlib.asynccontextmanager
    async def session(self) -> Any:
        yield "cached"


class Feed:
    @protoguard.provider
    async def session(self) -> Any:
        yield "session"


async def process_both(first: Any, second: Any) -> Any:
    return first, second


cache, repo, feed = Cache(), Repository(), Feed()


_FILES = itertools.count()


def _error(tmp_path: Path, source: str) -> ProtocolError:
    """The ProtocolError of ``f()`` defined by ``source`` in a file of its own."""
    path = tmp_path / f"handler_{next(_FILES)}.py"  # a new name: linecache keeps lines
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    namespace: dict[str, Any] = dict(globals())
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)

    def call() -> None:
        result = namespace["f"]()
        if asyncio.iscoroutine(result):
            asyncio.run(result)

    with pytest.raises(ProtocolError) as info:
        call()
    return info.value


def _compiles(fix: str) -> None:
    last = fix.rpartition("\n")[2]
    indent = " " * (len(last) - len(last.lstrip()) + 4)
    body = fix + (f"\n{indent}pass" if fix.endswith(":") else "")
    compile("async def f():\n" + textwrap.indent(body, "    "), "fix", "exec", dont_inherit=True)


@pytest.mark.parametrize(
    ("source", "fix"),
    [
        # The other item kept; the provider's rewritten in place.
        (
            """
            async def f():
                async with other() as a, make_session() as b:
                    pass
            """,
            "async with other() as a, await make_session() as b:",
        ),
        # A loop cannot be an item: the blocks nested, in their order.
        (
            """
            async def f():
                async with other() as a, get_agen() as b:
                    pass
            """,
            "async with other() as a:\n    async for b in get_agen():",
        ),
        (
            """
            def f():
                with contextlib.nullcontext() as a, get_gen() as b:
                    pass
            """,
            "with contextlib.nullcontext() as a:\n    for b in get_gen():",
        ),
        # Spread over lines, in parentheses.
        (
            """
            async def f():
                async with (
                    other() as a,
                    make_session() as b,
                ):
                    pass
            """,
            "async with other() as a, await make_session() as b:",
        ),
        # A block left by its return: a loop would leave the generator's cleanup for
        # later (PG201), so the provider is entered once, as PG201's fix does.
        (
            """
            async def f():
                async with other() as a, get_agen() as b:
                    return b
            """,
            "async with other() as a, contextlib.asynccontextmanager(get_agen)() as b:",
        ),
        (
            """
            async def f():
                async with get_agen() as db:
                    return db
            """,
            "async with contextlib.asynccontextmanager(get_agen)() as db:",
        ),
    ],
)
def test_a_block_of_several_items(tmp_path: Path, source: str, fix: str) -> None:
    error = _error(tmp_path, source)
    assert error.fix == fix
    _compiles(fix)


@pytest.mark.parametrize(
    ("line", "fix"),
    [
        (
            "db, other = await get_db(), 1",
            "async with get_db() as session:\n    db, other = session, 1",
        ),
        (
            "db = await get_db() if True else None",
            "async with get_db() as session:\n    db = session if True else None",
        ),
        ("dbs = [db async for db in get_db()]", "async with get_db() as db:\n    dbs = [db]"),
        ("d = {1: db async for db in get_db()}", "async with get_db() as db:\n    d = {1: db}"),
    ],
)
def test_a_line_that_keeps_the_session(tmp_path: Path, line: str, fix: str) -> None:
    """Not a one-line block: it would end at once, closing the session the line keeps
    for the lines after it; they go in the block, as the note says."""
    error = _error(tmp_path, f"async def f():\n    {line}\n")
    assert error.fix == fix
    _compiles(fix)
    assert (
        "  # the lines that use the session go in this block too: it closes the session at its end"
        in str(error)
    )


@pytest.mark.parametrize(
    ("source", "fix", "shown"),
    [
        ("x = 1; db = await get_db()", "async with get_db() as db:", "x = 1; db = await get_db()"),
        ("db = \\\n        await get_db()", "async with get_db() as db:", "db = await get_db()"),
    ],
)
def test_statements_sharing_or_splitting_a_line(
    tmp_path: Path, source: str, fix: str, shown: str
) -> None:
    """`x = 1; db = await get_db()`: the statement that calls the provider; a backslash
    continuation: the whole statement, shown too."""
    error = _error(tmp_path, f"async def f():\n    {source}\n")
    assert error.fix == fix
    assert f"      {shown}" in str(error).splitlines()


def test_a_return_of_the_call(tmp_path: Path) -> None:
    error = _error(tmp_path, 'async def f():\n    return await get_db("primary")\n')
    assert error.fix == 'async with get_db("primary") as session:'  # not get_db(...)
    assert "in this block too: it closes the session at its end" in str(error)


@pytest.mark.parametrize(
    "source",
    [
        """
        async def f():
            if await get_db("primary"):
                pass
        """,
        """
        async def f():
            async def inner(db=await get_db("primary")):
                pass
        """,
    ],
)
def test_a_statement_of_another_shape(tmp_path: Path, source: str) -> None:
    """A condition, a default argument: the call as the line writes it, not
    `get_db(...)`."""
    error = _error(tmp_path, source)
    assert error.fix == 'async with get_db("primary") as session:'


def test_a_condition_that_binds_the_call(tmp_path: Path) -> None:
    error = _error(
        tmp_path,
        """
        async def f():
            if (db := await get_db("primary")) is not None:
                pass
        """,
    )
    assert error.fix == 'async with get_db("primary") as db:\n    if db is not None:'
    _compiles(error.fix)
    error = _error(
        tmp_path,
        """
        async def f():
            while (db := await get_db("primary")):
                break
        """,
    )
    assert error.fix == 'async with get_db("primary") as db:'


def test_a_method_called_inside_an_expression(tmp_path: Path) -> None:
    """`repo.session()`, not the class's `Repository.session(...)` (which passes ...)."""
    error = _error(
        tmp_path,
        """
        async def f():
            repo = Repository()
            return (await (await repo.session()).execute(1)).scalar_one()
        """,
    )
    assert error.fix == (
        "async with repo.session() as session: return (await session.execute(1)).scalar_one()"
    )
    # Named as the line calls it, as `check` names it; the class's name is in the
    # definition line below.
    assert str(error).startswith("[PG104] 'await' on repo.session(), which is")


def test_an_attribute_holding_the_providers_result(tmp_path: Path) -> None:
    """`h.db = get_db()`, then `h.db.execute(q)`: the fix binds the same attribute and
    keeps the call's arguments (it was `async with get_db(...) as session:`)."""
    error = _error(
        tmp_path,
        """
        class Holder:
            pass

        async def f():
            h = Holder()
            h.db = get_db("primary")
            await h.db.execute(1)
        """,
    )
    assert error.code == "PG103"
    assert error.fix == 'async with get_db("primary") as h.db:'
    assert f'  fix: {error.fix}  # replaces line 7: h.db = get_db("primary")' in str(error)
    _compiles(error.fix)


@pytest.mark.skipif(sys.version_info < (3, 10), reason="the anext() builtin is new in 3.10")
def test_a_first_step_taken_by_hand(tmp_path: Path) -> None:
    """`db = await anext(get_db())`: the block binds `db`, as the line did."""
    error = _error(tmp_path, "async def f():\n    db = await anext(get_db())\n")
    assert error.code == "PG101"
    assert error.fix == "async with get_db() as db:"


def test_a_coroutine_entered_by_its_name(tmp_path: Path) -> None:
    """`async with db:` on a coroutine: the block uses `db`, so the session is `db`."""
    error = _error(
        tmp_path,
        """
        async def f():
            db = make_session()
            async with db:
                pass
        """,
    )
    assert error.fix == "async with await db as db:"


def test_the_import_time_fix_keeps_the_other_items(tmp_path: Path) -> None:
    source = textwrap.dedent(
        """
        async def f():
            async with other() as a, make_session() as b:
                pass
            async with other() as a, get_agen() as b:
                pass
        """
    )
    uses = _scan.parse_uses(source, "m.py")
    found = _scan.findings(uses, globals(), "m.py", source)
    assert [f.fix for f in found] == [
        "async with other() as a, await make_session() as b:",
        "async with other() as a:\n    async for b in get_agen():",
    ]


def test_an_item_calling_the_provider_by_another_name(tmp_path: Path) -> None:
    """`async with lock() as l, alias() as db:`: the alias is found among the names the
    line sees, and the message and the fix say it as the line does."""
    error = _error(
        tmp_path,
        """
        db_provider = get_agen

        async def f():
            async with other() as a, db_provider() as db:
                pass
        """,
    )
    assert error.code == "PG102"
    assert str(error).startswith("[PG102] 'async with' on db_provider(), which is an async")
    assert error.fix == "async with other() as a:\n    async for db in db_provider():"
    _compiles(error.fix)


def test_an_item_calling_the_provider_by_no_name(tmp_path: Path) -> None:
    """Called out of a dict, the item cannot be told: the fix is the provider's own
    statement, never the line as it was."""
    error = _error(
        tmp_path,
        """
        providers = {"db": get_agen}

        async def f():
            async with other() as a, providers["db"]() as db:
                pass
        """,
    )
    assert error.code == "PG102"
    assert error.fix != 'async with other() as a, providers["db"]() as db:'
    assert error.fix.startswith("async for ")
    _compiles(error.fix)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("r = await (await provide()).execute(1)", "PG104"),
        ("r = await provide().execute(1)", "PG103"),
    ],
)
def test_a_provider_imported_under_another_name(tmp_path: Path, line: str, code: str) -> None:
    """`from app.db import get_db as provide`: the call inside the expression is found by
    the alias, and the fix calls it as the line does (`get_db` is no name there)."""
    error = _error(tmp_path, f"provide = get_db\n\nasync def f():\n    {line}\n")
    assert error.code == code
    assert "provide()" in str(error).splitlines()[0]
    assert error.fix == "async with provide() as session: r = await session.execute(1)"
    _compiles(error.fix)


def _found(error: ProtocolError) -> _scan.SourceFinding:
    """`check`'s one finding in the file of ``error``'s line."""
    assert error.call_site is not None
    path = error.call_site.filename
    text = Path(path).read_text(encoding="utf-8")
    (found,) = _scan.findings(_scan.parse_uses(text, path), globals(), path, text)
    return found


@pytest.mark.parametrize(
    ("source", "fix"),
    [
        (
            "async def f():\n    await process_both(cache.session(), await repo.session())\n",
            "async with repo.session() as session:\n"
            "    await process_both(cache.session(), session)",
        ),
        (
            "async def f():\n"
            "    async with cache.session() as c, feed.session() as db:\n"
            "        pass\n",
            "async with cache.session() as c:\n    async for db in feed.session():",
        ),
        (
            "async def f():\n"
            "    if (c := cache.session()) and (db := await repo.session()):\n"
            "        pass\n",
            "async with repo.session() as db:\n    if (c := cache.session()) and db:",
        ),
    ],
    ids=["argument", "with-items", "walrus"],
)
def test_of_two_calls_of_one_name_the_one_misused(tmp_path: Path, source: str, fix: str) -> None:
    """`cache.session()` is no provider; `repo.session()` on the same line is: the message
    and the fix are about `repo.session()`, at run time and in `check` (they were about the
    first call of the name on the line)."""
    error = _error(tmp_path, source)
    assert error.fix == fix
    first = str(error).splitlines()[0]
    assert "cache.session()" not in first
    assert ".session(), which is" in first
    found = _found(error)
    assert found.fix == fix
    _compiles(fix)


def test_of_two_calls_of_the_provider_the_one_misused(tmp_path: Path) -> None:
    """Both calls are the provider's; the misused one is the one awaited, which the
    instruction's position tells at run time (before Python 3.11, the one written with
    'await'; and `check` knows where its use is)."""
    error = _error(
        tmp_path,
        "async def f():\n    await process_both(repo.session(), await repo.session())\n",
    )
    fix = "async with repo.session() as session:\n    await process_both(repo.session(), session)"
    assert error.fix == fix
    assert _found(error).fix == fix


@pytest.mark.parametrize(
    "line",
    [
        "a = await repo.session(); b = cache.session()",
        "b = cache.session(); a = await repo.session()",
        "a = await repo.session(); b = repo.session()",
        "b = repo.session(); a = await repo.session()",
    ],
)
def test_of_statements_sharing_a_line_the_one_misused(tmp_path: Path, line: str) -> None:
    """Of two statements calling `.session()` on one line, the fix rewrites the one whose
    call was misused, at run time and in `check` (it was the last one calling a
    `session`: `async with cache.session() as b:`)."""
    error = _error(tmp_path, f"async def f():\n    {line}\n")
    assert error.fix == "async with repo.session() as a:"
    assert _found(error).fix == "async with repo.session() as a:"


def test_a_long_line_and_a_line_read_again(tmp_path: Path) -> None:
    """A long line of data with the misuse (the line's code, its parse and its pieces
    read once each, not once per use: `check` took seconds on a line of 600 KB), with
    or without a comment; and a second message on one line, whose parse is reused, is
    the first's (the walrus taken out of a copy of the condition, not of the tree)."""
    data = ", ".join(str(i) for i in range(2000))
    for comment in ("", "  # a comment"):
        error = _error(tmp_path, f"async def f():\n    x = [await get_db(1), {data}]{comment}\n")
        assert error.fix == f"async with get_db(1) as session:\n    x = [session, {data}]"
        assert _found(error).fix == error.fix
    source = """
        async def f():
            if (db := await get_db("primary")) is not None:
                pass
        """
    error = _error(tmp_path, source)
    fix = 'async with get_db("primary") as db:\n    if db is not None:'
    assert error.fix == fix
    path = Path(error.call_site.filename)
    namespace: dict[str, Any] = dict(globals())
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    with pytest.raises(ProtocolError) as again:
        asyncio.run(namespace["f"]())
    assert again.value.fix == fix


def test_a_partial_of_the_provider_is_named_as_called(tmp_path: Path) -> None:
    """`primary = functools.partial(get_db, "primary")`, then `await primary()`: the
    message names `primary()`, as the line (and its fix) and `check` do, not `get_db()`."""
    error = _error(tmp_path, "async def f():\n    await primary()\n")
    assert error.fix == "async with primary() as session:"
    assert str(error).startswith("[PG104] 'await' on primary(), which is")
    assert "Only a coroutine can be awaited; primary() must be used with" in str(error)
    path = error.call_site.filename
    text = Path(path).read_text(encoding="utf-8")
    (found,) = _scan.findings(_scan.parse_uses(text, path), globals(), path, text)
    assert found.message.startswith("'await' on primary(), which is")
    assert found.fix == error.fix


@pytest.mark.parametrize(
    ("line", "fix"),
    [
        (
            "async for db in get_db(): await db.execute(1)",
            "async with get_db() as db: await db.execute(1)",
        ),
        (
            "async with get_agen() as db: await db.execute(1); x = 1",
            "async for db in get_agen(): await db.execute(1); x = 1",
        ),
        (  # the body keeps the session: it stays in the block
            "async with get_agen() as db: return db",
            "async with contextlib.asynccontextmanager(get_agen)() as db: return db",
        ),
    ],
)
def test_a_block_on_one_line_keeps_its_body(tmp_path: Path, line: str, fix: str) -> None:
    """The header alone, pasted over the line, would leave a block with no body."""
    error = _error(tmp_path, f"async def f():\n    {line}\n")
    assert error.fix == fix
    _compiles(fix)


@pytest.mark.parametrize(
    ("line", "fix"),
    [
        ("for i in range(1): db = await get_db(i)", "async with get_db(i) as db:"),
        ("async with other() as o: db = await get_db(1)", "async with get_db(1) as db:"),
        ("if True: db = await get_db(1)", "async with get_db(1) as db:"),
        ("x = {}; x[await get_db(1)] = 1", "async with get_db(1) as session:"),
    ],
)
def test_the_call_in_a_one_line_blocks_body(tmp_path: Path, line: str, fix: str) -> None:
    """The provider is called in the body of a block written on one line (or in an
    assignment's target): the statement rewritten is the one that calls it, at run time
    and in `check` alike, not the block's header."""
    error = _error(tmp_path, f"async def f():\n    {line}\n")
    assert error.fix == fix
    path = error.call_site.filename
    text = Path(path).read_text(encoding="utf-8")
    (found,) = _scan.findings(_scan.parse_uses(text, path), globals(), path, text)
    assert found.fix == fix


def test_an_expression_too_deep_to_take_apart(tmp_path: Path) -> None:
    """A line whose expression is nested too deep for the fix's rewriting (ast.unparse
    recurses): the fix of the call alone, at run time and in `check`; no RecursionError,
    and the module's findings are not lost."""
    deep = "+".join(["1"] * 400)
    error = _error(
        tmp_path,
        f"async def f():\n    if (db := await get_db({deep})) is not None:\n        pass\n",
    )
    assert error.code == "PG104"
    assert error.fix.startswith("async with get_db(")
    path = error.call_site.filename
    text = Path(path).read_text(encoding="utf-8")
    (found,) = _scan.findings(_scan.parse_uses(text, path), globals(), path, text)
    assert found.fix.startswith("async with get_db(")


@pytest.mark.parametrize("action", ["error", "always"])
def test_a_line_that_warns_as_it_is_parsed(tmp_path: Path, action: str) -> None:
    """A line with an invalid escape sequence, which warns as it is compiled
    (SyntaxWarning from 3.12, DeprecationWarning before): its fix is read as any other
    line's, where warnings are errors too (-W error), and reading it warns nothing."""
    path = tmp_path / f"escapes_{action}.py"  # a new name: messages cache by file
    path.write_text('async def f():\n    async for s in get_db("\\d+"):\n        pass\n')
    namespace: dict[str, Any] = dict(globals())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the file's own compile warns: that is Python's
        exec(compile(path.read_text(), str(path), "exec"), namespace)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter(action)
        with pytest.raises(ProtocolError) as info:
            asyncio.run(namespace["f"]())
    assert [str(warning.message) for warning in caught] == []
    assert info.value.code == "PG101"
    assert info.value.fix == 'async with get_db("\\d+") as s:'


def test_a_call_on_a_decorators_line(tmp_path: Path) -> None:
    """`@deco(await get_db("primary"))` in an async def: `check` keeps the arguments
    (the statement around the line does not show the call) and adds no note."""
    source = textwrap.dedent(
        """
        def deco(value):
            return lambda function: function

        async def f():
            @deco(await get_db("primary"))
            def g():
                pass
        """
    )
    (found,) = _scan.findings(_scan.parse_uses(source, "m.py"), globals(), "m.py", source)
    assert (found.code, found.fix, found.note) == (
        "PG104",
        'async with get_db("primary") as session:',
        "",
    )


def test_a_class_namespace_of_the_users_is_not_called(tmp_path: Path) -> None:
    """Finding the name a line calls the provider by reads the frame's names without
    running code: a class body's namespace from __prepare__ (a mapping of the user's)
    is not listed or read by protoguard."""
    listed: list[str] = []

    class Namespace(collections.abc.MutableMapping):  # type: ignore[type-arg]
        def __init__(self) -> None:
            self.names: dict[str, Any] = {}

        def __getitem__(self, key: str) -> Any:
            return self.names[key]

        def __setitem__(self, key: str, value: Any) -> None:
            self.names[key] = value

        def __delitem__(self, key: str) -> None:
            del self.names[key]

        def __iter__(self) -> Any:
            listed.append("iter")
            return iter(self.names)

        def __len__(self) -> int:
            return len(self.names)

        def keys(self) -> Any:
            listed.append("keys")
            return self.names.keys()

    class Meta(type):
        @classmethod
        def __prepare__(mcs, name: str, bases: Any, **kwargs: Any) -> Any:
            return Namespace()

        def __new__(mcs, name: str, bases: Any, namespace: Any, **kwargs: Any) -> Any:
            return super().__new__(mcs, name, bases, dict(namespace.names))

    with pytest.raises(ProtocolError) as info:

        class Handler(metaclass=Meta):
            db = get_db()
            db.execute(1)

    assert info.value.code == "PG103"
    assert listed == []


def _per_item_providers(async_maker: Any, sync_maker: Any, closed: list[Any]) -> dict[str, Any]:
    """Providers of a session per tenant over the real database, each noting its close."""

    @protoguard.provider
    @contextlib.asynccontextmanager
    async def get_db(tenant: int) -> Any:
        async with async_maker() as session:
            try:
                yield session
            finally:
                closed.append(tenant)

    @protoguard.provider
    async def get_agen(tenant: int) -> Any:
        async with async_maker() as session:
            try:
                yield session
            finally:
                closed.append(tenant)

    @protoguard.provider
    @contextlib.contextmanager
    def get_sdb(tenant: int) -> Any:
        with sync_maker() as session:
            try:
                yield session
            finally:
                closed.append(tenant)

    return {"get_db": get_db, "get_agen": get_agen, "get_sdb": get_sdb}


_SESSIONS_WORK = "assert [(await s.execute(q)).scalar() for s in dbs] == [1, 1]"
_ASYNC_STACK = "async with contextlib.AsyncExitStack() as stack:"


@pytest.mark.parametrize(
    ("line", "fix", "use"),
    [
        (
            "dbs = [await get_db(t) for t in tenants]",
            "dbs = [await stack.enter_async_context(get_db(t)) for t in tenants]",
            _SESSIONS_WORK,
        ),
        (
            "dbs = {await get_db(t) for t in tenants}",
            "dbs = {await stack.enter_async_context(get_db(t)) for t in tenants}",
            _SESSIONS_WORK,
        ),
        (
            "by_tenant = {t: await get_db(t) for t in tenants}",
            "by_tenant = {t: await stack.enter_async_context(get_db(t)) for t in tenants}",
            f"dbs = list(by_tenant.values())\n{_SESSIONS_WORK}",
        ),
        (
            "dbs = [await get_db(t) async for t in each(tenants)]",
            "dbs = [await stack.enter_async_context(get_db(t)) async for t in each(tenants)]",
            _SESSIONS_WORK,
        ),
        (  # a generator expression that would await: a list comprehension, list() takes
            "rs = list(get_db(t).execute(q) for t in tenants)",
            "rs = list([(await stack.enter_async_context(get_db(t))).execute(q)"
            " for t in tenants])",
            "assert [(await r).scalar() for r in rs] == [1, 1]",
        ),
        (
            "rs = [get_db(t).execute(q) for t in tenants]",
            "rs = [(await stack.enter_async_context(get_db(t))).execute(q) for t in tenants]",
            "assert [(await r).scalar() for r in rs] == [1, 1]",
        ),
        (
            "rs = [await get_db(t).execute(q) for t in tenants]",
            "rs = [await (await stack.enter_async_context(get_db(t))).execute(q)"
            " for t in tenants]",
            "assert [r.scalar() for r in rs] == [1, 1]",
        ),
        (
            "dbs = [db for t in tenants for db in get_db(t)]",
            "dbs = [db for t in tenants for db in [await stack.enter_async_context(get_db(t))]]",
            _SESSIONS_WORK,
        ),
        (
            "dbs = [await get_agen(t) for t in tenants]",
            "dbs = [await stack.enter_async_context(contextlib.asynccontextmanager(get_agen)(t))"
            " for t in tenants]",
            _SESSIONS_WORK,
        ),
        (  # its 'async for' made plain: it iterates a list
            "dbs = [s for t in tenants async for s in get_db(t)]",
            "dbs = [s for t in tenants for s in [await stack.enter_async_context(get_db(t))]]",
            _SESSIONS_WORK,
        ),
        (  # an asynchronous generator expression already: it stays one
            "dbs = [s async for s in (s for t in tenants async for s in get_db(t))]",
            "dbs = [s async for s in (s for t in tenants"
            " for s in [await stack.enter_async_context(get_db(t))])]",
            _SESSIONS_WORK,
        ),
        (  # in a plain def: a sync exit stack
            "rs = [get_sdb(t).execute(q) for t in tenants]",
            "rs = [stack.enter_context(get_sdb(t)).execute(q) for t in tenants]",
            "assert [r.scalar() for r in rs] == [1, 1]",
        ),
    ],
    ids=[
        "list", "set", "dict", "async-comprehension", "generator-expression", "attribute",
        "awaited-attribute", "iterated", "async-generator", "async-iterated",
        "async-generator-expression", "sync",
    ],
)  # fmt: skip
def test_a_provider_called_per_item_of_a_comprehension(
    tmp_path: Path, async_maker: Any, sync_maker: Any, line: str, fix: str, use: str
) -> None:
    """A call per item, with the comprehension's variable: each item's session entered
    on an exit stack whose block holds them all, at run time and in `check` (it was
    `async with get_db(t) as session:`, `t` unbound there, and one session for all). The
    fix pasted over the line, with the lines that use the sessions in its block, runs
    on the database; the sessions are closed at the block's end. (`[s for t in ts async
    for s in get_db(t)]` got that old fix.)"""
    closed: list[Any] = []
    namespace: dict[str, Any] = {
        **globals(),
        **_per_item_providers(async_maker, sync_maker, closed),
        "q": sqlalchemy.text("select 1"),
        "tenants": [1, 2],
    }
    is_sync = "get_sdb" in line
    header = "with contextlib.ExitStack() as stack:" if is_sync else _ASYNC_STACK
    path = tmp_path / f"handler_{next(_FILES)}.py"
    path.write_text(f"{'' if is_sync else 'async '}def f():\n    {line}\n", encoding="utf-8")
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    with pytest.raises(ProtocolError) as info:
        _run(namespace["f"])
    error = info.value
    assert error.fix == f"{header}\n    {fix}"
    assert (
        "  # import contextlib; the lines that use the sessions go in this block too: it closes"
        " them at its end" in str(error)
    )
    if error.code != "PG103":  # (`check` tells no attribute's use)
        text = path.read_text(encoding="utf-8")
        (found,) = _scan.findings(_scan.parse_uses(text, str(path)), namespace, str(path), text)
        assert found.fix == error.fix
    uses = "\n".join(f"        {part}" for part in use.split("\n"))
    fixed = tmp_path / f"fixed_{next(_FILES)}.py"
    fixed.write_text(
        f"async def g():\n    {error.fix.replace(chr(10), chr(10) + '    ')}\n{uses}\n"
        "        assert closed == []\n"
        "    assert sorted(closed) == [1, 2]\n",
        encoding="utf-8",
    )
    exec(compile(fixed.read_text(encoding="utf-8"), str(fixed), "exec"), namespace)
    namespace["closed"] = closed
    asyncio.run(namespace["g"]())


def test_a_call_per_item_without_the_comprehensions_variable(tmp_path: Path) -> None:
    """The same call for every item: one block around the line holds its session."""
    error = _error(tmp_path, "async def f():\n    dbs = [await get_db() for t in [1, 2]]\n")
    assert error.fix == "async with get_db() as session:"


def _run(f: Any) -> None:
    result = f()
    if asyncio.iscoroutine(result):
        asyncio.run(result)


async def each(items: Any) -> Any:
    for item in items:
        yield item


@pytest.mark.parametrize(
    ("source", "note"),
    [
        (
            "def f():\n    class Handler:\n        with get_db() as db:\n            pass\n",
            "  # needs an async def; this is the body of class Handler",
        ),
        (
            "def f():\n    return (lambda: [db for db in get_agen()])()\n",
            # The statement is a return: the block it goes in is left by it.
            "  # needs an async def; a lambda is a plain function; import contextlib",
        ),
        # A generator expression runs in a frame of its own on every Python: the note is
        # about the def (or lambda) it is written in, not "<genexpr>() is a plain def".
        ("async def f():\n    return list(get_db().execute(1) for _ in [1])\n", ""),
        (
            "def f():\n    return list(get_db().execute(1) for _ in [1])\n",
            "  # needs an async def; f() is a plain def",
        ),
        (
            "def f():\n    return (lambda: list(get_db().execute(1) for _ in [1]))()\n",
            "  # needs an async def; a lambda is a plain function",
        ),
        (  # an async generator expression, in a plain def: still the def's note
            "def f():\n"
            "    g = (await get_db() for _ in [1])\n"
            "    async def h():\n"
            "        return [x async for x in g]\n"
            "    return h()\n",
            "  # needs an async def; f() is a plain def",
        ),
    ],
    ids=[
        "class-body",
        "lambda",
        "genexpr-async-def",
        "genexpr-plain-def",
        "genexpr-lambda",
        "async-genexpr-plain-def",
    ],
)
def test_the_async_def_note_says_where_the_line_is(tmp_path: Path, source: str, note: str) -> None:
    """Not "Handler() is a plain def" for a class body, nor "<lambda>() is ..."."""
    error = _error(tmp_path, source)
    assert f"  fix: {error.fix}{note}" in str(error).splitlines()


def test_the_async_def_note_at_module_level(tmp_path: Path) -> None:
    """A misuse in module-level code: the fix needs an async def there too."""
    path = tmp_path / f"handler_{next(_FILES)}.py"
    path.write_text("with get_db() as db:\n    pass\n", encoding="utf-8")
    with pytest.raises(ProtocolError) as info:
        exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), dict(globals()))
    assert "  fix: async with get_db() as db:  # needs an async def; this is module-level code" in (
        str(info.value).splitlines()
    )


_SHAPES = (
    "walrus", "f-string", "conditional", "keyword-argument", "augmented", "comprehension",
    "attribute", "return", "semicolon", "backslash", "call-over-lines", "import-contextlib",
    "plain-def-with", "plain-def-for", "blocks-nest", "await-generator", "one-line-for",
    "one-line-with", "class-body", "lambda-in-def", "lambda-in-async-def", "lambda-default",
)  # fmt: skip


@pytest.mark.parametrize(
    "source",
    [
        # An await or a loop nested in a larger expression: the whole line rewritten.
        """
        async def f():
            if (db := await get_db("primary")) is not None:
                pass
        """,
        """
        async def f():
            print(f"value {await get_db()}")
        """,
        """
        async def f():
            db = await get_db() if True else None
        """,
        """
        async def f():
            await process(session=await get_db())
        """,
        """
        async def f():
            dbs = []
            dbs += [await get_db()]
        """,
        """
        async def f():
            dbs = [db async for db in get_db()]
        """,
        """
        async def f():
            r = await (await get_db()).execute(1)
        """,
        """
        async def f():
            return await get_db("primary")
        """,
        # Statements sharing or splitting lines, a call over lines.
        """
        async def f():
            x = 1; db = await get_db()
        """,
        """
        async def f():
            db = \\
                await get_db()
        """,
        """
        async def f():
            async for db in get_db(
                "primary",
            ):
                pass
        """,
        # The notes: contextlib to import, a plain def to make async, blocks that nest.
        """
        async def f():
            async with get_agen() as db:
                return db
        """,
        """
        def f():
            with get_db() as db:
                pass
        """,
        """
        def f():
            for db in get_agen():
                pass
        """,
        """
        async def f():
            async with other() as a, get_agen() as b:
                pass
        """,
        """
        async def f():
            db = await get_gen()
        """,
        # A block on one line with its body; a class body, which is no function.
        """
        async def f():
            async for db in get_db(): await db.execute(1)
        """,
        """
        async def f():
            async with get_agen() as db: await db.execute(1); x = 1
        """,
        """
        def f():
            class Handler:
                with get_db() as db:
                    pass
        """,
        # In a lambda's body the lambda runs the call: a plain function, whatever the
        # def around it is; its defaults run in that def.
        """
        def f():
            return (lambda: [db for db in get_agen()])()
        """,
        """
        async def f():
            g = lambda: [db for db in get_agen()]
            return g()
        """,
        """
        async def f():
            g = lambda d=[x for x in get_db()]: d
            return g()
        """,
    ],
    ids=_SHAPES,
)
def test_the_import_time_fix_is_the_run_time_fix(tmp_path: Path, source: str) -> None:
    """protoguard check (the import hook, the pytest plugin) gives the line the fix and
    the note run time gives it, not a fix of the call alone with a name of its own."""
    error = _error(tmp_path, source)
    assert error.call_site is not None
    path = error.call_site.filename
    text = Path(path).read_text(encoding="utf-8")
    (found,) = _scan.findings(_scan.parse_uses(text, path), globals(), path, text)
    assert found.code == error.code
    assert found.fix == error.fix
    said = _messages.fix_line(found.fix, f"  # {found.note}" if found.note else "")
    assert f"\n{said}\n  docs: " in str(error)  # the same note, and no other


# A loop left early, rewritten to enter the provider once: its own break and continue.
# Each source is run (strict mode, a real session); `FIX` in the pasted source is where
# the message's fix goes, as the user pastes it over the reported line, the lines the note
# says to delete deleted. The pasted code runs to the same result with no finding.
_LEFT_EARLY = [
    pytest.param(
        """
        async def f(get_db):
            values = []
            async for db in get_db():
                values.append((await db.execute(COUNT)).scalar_one())
                break
            return values
        """,
        """
        async def f(get_db):
            values = []
            FIX
                values.append((await db.execute(COUNT)).scalar_one())
            return values
        """,
        "PG201",
        "  # import contextlib\n# and delete the 'break' on line 6: this block is no loop and"
        " runs its body once",
        "[count]",
        id="pg201-break",
    ),
    pytest.param(  # the break, pasted as it is, would leave the loop around
        """
        async def f(get_db):
            values = []
            for attempt in range(2):
                async for db in get_db():
                    values.append((await db.execute(COUNT)).scalar_one())
                    break
                values.append(attempt)
            return values
        """,
        """
        async def f(get_db):
            values = []
            for attempt in range(2):
                FIX
                    values.append((await db.execute(COUNT)).scalar_one())
                values.append(attempt)
            return values
        """,
        "PG201",
        "  # import contextlib\n# and delete the 'break' on line 7: this block is no loop and"
        " runs its body once",
        "[count, 0, count, 1]",
        id="pg201-break-of-an-inner-loop",
    ),
    pytest.param(
        """
        async def f(get_db):
            for db in get_db():
                return (await db.execute(COUNT)).scalar_one()
        """,
        """
        async def f(get_db):
            FIX
                return (await db.execute(COUNT)).scalar_one()
        """,
        "PG105",
        "  # import contextlib",
        "count",
        id="pg105-return",
    ),
    pytest.param(
        """
        async def f(get_db):
            values = []
            for attempt in range(2):
                for db in get_db():
                    values.append((await db.execute(COUNT)).scalar_one())
                    break
                values.append(attempt)
            return values
        """,
        """
        async def f(get_db):
            values = []
            for attempt in range(2):
                FIX
                    values.append((await db.execute(COUNT)).scalar_one())
                values.append(attempt)
            return values
        """,
        "PG105",
        "  # import contextlib\n# and delete the 'break' on line 7: this block is no loop and"
        " runs its body once",
        "[count, 0, count, 1]",
        id="pg105-break",
    ),
    pytest.param(
        """
        async def f(get_db):
            db = await get_db()
            return (await db.execute(COUNT)).scalar_one()
        """,
        """
        async def f(get_db):
            FIX
                return (await db.execute(COUNT)).scalar_one()
        """,
        "PG104",
        "  # import contextlib",
        "count",
        id="pg104-return",
    ),
    pytest.param(
        """
        async def f(get_db):
            db = get_db()
            return (await db.execute(COUNT)).scalar_one()
        """,
        """
        async def f(get_db):
            FIX
                return (await db.execute(COUNT)).scalar_one()
        """,
        "PG103",
        "  # replaces line 3: db = get_db(); import contextlib",
        "count",
        id="pg103-return",
    ),
]


def _left_early_runner(
    async_maker: Any, path: Path
) -> tuple[Any, collections.abc.Callable[[str], Any], int]:
    """For a loop left early, in strict mode (findings logged): an async generator
    provider over the real database; a function that runs ``f(get_db)`` of the code it
    is given, compiled as ``path``, in a task of its own as a server runs a request, and
    returns its result (or its ProtocolError); and the count of the table's rows."""

    @protoguard.provider
    async def get_db() -> Any:
        async with async_maker() as session:
            yield session

    async def run_f(code_text: str) -> Any:
        namespace: dict[str, Any] = {"COUNT": COUNT, "contextlib": contextlib}
        exec(compile(code_text, str(path), "exec"), namespace)
        try:
            result = await asyncio.create_task(namespace["f"](get_db))
        except ProtocolError as error:
            return error
        await asyncio.sleep(0.05)  # the task ended: its callbacks ran
        return result

    async def count_rows() -> Any:
        async with async_maker() as session:
            return (await session.execute(COUNT)).scalar_one()

    count = asyncio.run(count_rows())
    protoguard.configure(mode="strict", action="log")
    return get_db, lambda code_text: asyncio.run(run_f(code_text)), count


def _message_of(outcome: Any, code: str) -> str:
    """The message of the misuse ``code`` that ``outcome`` (what the runner of
    :func:`_left_early_runner` returned) shows: PG201's is the one finding made (the loop
    ran), another's is the ProtocolError returned."""
    if code == "PG201":
        (finding,) = protoguard.findings()
        assert finding.code == "PG201"
        return finding.message
    assert isinstance(outcome, ProtocolError)
    assert outcome.code == code
    return str(outcome)


def _fix_and_note(message: str) -> tuple[str, str]:
    """A message's fix (its first line) and what follows it on that line and the lines
    under it (the note), as the message shows them."""
    lines = message.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("  fix: "))
    rest = [line[8:] for line in lines[i + 1 :] if line.startswith("        ")]
    fixed, sep, note = lines[i][len("  fix: ") :].partition("  # ")
    return fixed, "\n".join([sep + note, *rest])


@pytest.mark.parametrize(("source", "pasted", "code", "note", "expected"), _LEFT_EARLY)
def test_a_loop_left_early_is_entered_once(
    tmp_path: Path, async_maker: Any, source: str, pasted: str, code: str, note: str, expected: str
) -> None:
    """The fix is the provider entered once (as Depends() does; an `async for` left by
    its return or break leaves its cleanup for later, PG201); the note says what to do
    with the loop's own break, which the block cannot keep. Pasted, it runs to the result
    the loop meant (`expected`, of the table's `count`), with no finding."""

    path = tmp_path / f"handler_{next(_FILES)}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    _, run_f, count = _left_early_runner(async_maker, path)
    outcome = run_f(path.read_text(encoding="utf-8"))
    if code == "PG201":  # the loop ran, to the result meant, and left its cleanup
        assert outcome == eval(expected, {"count": count})
    fix, said = _fix_and_note(_message_of(outcome, code))
    assert fix == "async with contextlib.asynccontextmanager(get_db)() as db:"
    assert said == note
    protoguard.clear_findings()
    assert run_f(textwrap.dedent(pasted).replace("FIX", fix)) == eval(expected, {"count": count})
    assert protoguard.findings() == []


_NO_LOOP = "this block is no loop and runs its body once"


@pytest.mark.parametrize(
    ("body", "note"),
    [
        pytest.param(
            "        await process(db)\n        break\n",
            f"  # import contextlib\n# and delete the 'break' on line 4: {_NO_LOOP}",
            id="the-last-statement",
        ),
        pytest.param(
            "        if await process(db):\n            break\n        return db\n",
            f"  # import contextlib\n# {_NO_LOOP}: the 'break' on line 4 must go; make its "
            "condition an if/else, the lines after it in the else",
            id="on-a-condition",
        ),
        pytest.param(
            "        for x in [1]:\n            break\n        else:\n            continue\n"
            "        try:\n            pass\n        except ValueError:\n            break\n",
            f"  # import contextlib\n# {_NO_LOOP}: the 'continue' on line 6, the 'break' on "
            "line 10 must go; make its condition an if/else, the lines after it in the else",
            id="in-an-inner-loops-else-and-an-except",
        ),
        pytest.param(  # an inner loop's own break, a nested function's return
            "        for x in [1]:\n            break\n        def g():\n            return 1\n",
            "  # import contextlib",
            id="none-of-its-own",
        ),
        pytest.param(  # after a block, the loop's 'else:' is a SyntaxError
            "        if await process(db):\n            break\n    else:\n        print(1)\n",
            f"  # import contextlib\n# {_NO_LOOP}: the 'break' on line 4 must go; make its "
            "condition an if/else, the lines after it in the else\n# and the loop's 'else:' "
            "must go: its lines (from line 6) run only where the 'break' did not happen: put "
            "them in that else",
            id="an-else-and-a-break",
        ),
        pytest.param(
            "        await process(db)\n    else:\n        print(1)\n",
            "  # import contextlib\n# and the loop's 'else:' must go: its lines (from line 5) "
            "follow the block, as they followed the loop",
            id="an-else-without-a-break",
        ),
    ],
)
def test_pg201_says_what_to_do_with_the_loops_own_break(
    tmp_path: Path, body: str, note: str
) -> None:
    """PG201's fix rewrites the loop as a block that runs its body once: a break or
    continue of the loop, pasted as it is, would be a SyntaxError or leave a loop around
    it. The note says to delete it, or to turn its condition into an if/else, on a line
    of its own under the fix (a comment, so the two lines can be pasted as they are)."""
    source = tmp_path / f"handler_{next(_FILES)}.py"
    source.write_text(f"async def handler():\n    async for db in get_agen():\n{body}")
    info = protoguard.ProviderInfo("get_agen", "async generator", None, None)
    site = protoguard.CallSite(str(source), 2)
    fix = _messages.enter_once(info, site)
    assert fix == "async with contextlib.asynccontextmanager(get_agen)() as db:"
    assert _messages.enter_once_note(info, site, fix) == note
    pasted = textwrap.indent(f"{fix}{note}\n    pass", "    ")  # the comment line too
    compile(f"async def f():\n{pasted}", "fix", "exec", dont_inherit=True)


@pytest.mark.parametrize(
    ("source", "fix", "note"),
    [
        pytest.param(
            """
            async def f():
                for db in get_agen():
                    if await process(db):
                        break
                    await process(db)
                    return db
            """,
            "async with contextlib.asynccontextmanager(get_agen)() as db:",
            "  # import contextlib\n"
            "# this block is no loop and runs its body once: the 'break' on line 5 must go; "
            "make its condition an if/else, the lines after it in the else",
            id="a-break-on-a-condition",
        ),
        pytest.param(
            """
            async def f():
                for db in get_agen():
                    for x in [1]:
                        break
                    else:
                        continue
                    return db
            """,
            "async with contextlib.asynccontextmanager(get_agen)() as db:",
            "  # import contextlib\n"
            "# this block is no loop and runs its body once: the 'continue' on line 7 must go; "
            "make its condition an if/else, the lines after it in the else",
            id="a-continue-in-an-inner-loops-else",
        ),
        pytest.param(
            """
            async def f():
                async for db in get_db():
                    await process(db)
                    break
            """,
            "async with get_db() as db:",
            "\n# and delete the 'break' on line 5: this block is no loop and runs its body once",
            id="a-context-managers-loop-and-its-break",
        ),
        pytest.param(
            """
            async def f():
                for db in get_db():
                    if await process(db):
                        continue
                    await process(db)
                else:
                    await process(None)
            """,
            "async with get_db() as db:",
            "\n# this block is no loop and runs its body once: the 'continue' on line 5 must go; "
            "make its condition an if/else, the lines after it in the else"
            "\n# and the loop's 'else:' must go: its lines (from line 8) follow the block, as "
            "they followed the loop",
            id="a-context-managers-loop-its-continue-and-else",
        ),
        pytest.param(  # the loop is not over the provider: nothing to say of it
            """
            async def f():
                for x in [1]:
                    db = await get_db()
                    break
            """,
            "async with get_db() as db:",
            "",
            id="a-context-manager-in-another-loop",
        ),
        pytest.param(  # the return inside an if: left early all the same
            """
            async def f():
                for db in get_agen():
                    if db:
                        return db
            """,
            "async with contextlib.asynccontextmanager(get_agen)() as db:",
            "  # import contextlib",
            id="a-return-inside-an-if",
        ),
        pytest.param(  # not left early: an 'async for' keeps its continue
            """
            async def f():
                for db in get_agen():
                    if not await process(db):
                        continue
                    await process(db)
            """,
            "async for db in get_agen():",
            "",
            id="a-continue-only",
        ),
        pytest.param(  # the return does not use the session: it stays after the block
            """
            async def f():
                db = await get_agen()
                x = await process(db)
                return 1
            """,
            "async for db in get_agen():",
            "",
            id="a-return-after-the-session",
        ),
    ],
)
def test_what_the_loops_own_break_and_continue_need(
    tmp_path: Path, source: str, fix: str, note: str
) -> None:
    """A loop that enters the provider once is no loop: its own break and continue (not an
    inner loop's) must go, as the note says, on a line of its own under the fix. `check`
    says the same."""
    error = _error(tmp_path, source)
    assert error.fix == fix
    _compiles(fix)
    said = _messages.fix_line(fix, note)
    assert f"\n{said}\n  docs: " in str(error)
    found = _found(error)
    assert (found.fix, found.note) == (fix, note.strip().removeprefix("#").strip())


def test_the_session_used_in_a_long_expression_after_an_early_step(tmp_path: Path) -> None:
    """`db = await get_agen()` then a long expression using `db`: whether those lines
    leave early is read statement by statement, never down the expression (it raised
    RecursionError from 400 terms, replacing the user's ProtocolError)."""
    long = " + ".join(["1"] * 2000)
    error = _error(
        tmp_path, f"async def f():\n    db = await get_agen()\n    x = db + {long}\n    return x\n"
    )
    assert error.code == "PG104"
    assert error.fix == "async for db in get_agen():"


def test_a_comprehension_whose_line_names_every_stack(tmp_path: Path) -> None:
    """The per-item fix names its exit stack with a name the line does not use, even when
    the line uses all the usual ones (it raised StopIteration, which the coroutine turned
    into a RuntimeError)."""
    error = _error(
        tmp_path,
        "async def f():\n"
        "    stack = exit_stack = _stack = ['a']\n"
        "    return [await get_db(t) for t in stack + exit_stack + _stack]\n",
    )
    assert error.code == "PG104"
    header, line = error.fix.splitlines()
    name = header.rpartition(" as ")[2].rstrip(":")
    assert name not in ("stack", "exit_stack", "_stack")
    assert header == f"async with contextlib.AsyncExitStack() as {name}:"
    assert f"await {name}.enter_async_context(get_db(t))" in line


def test_a_failure_of_the_fixs_reading_never_replaces_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should working the fix out from the source fail in a way nobody foresaw, the
    user still gets the ProtocolError, at the same line, with the provider's plain fix."""

    def broken(*args: Any) -> Any:
        raise RuntimeError("a fault in reading the statement")

    source = "async def f():\n    db = await get_db('primary')\n"
    monkeypatch.setattr(_messages, "_statement_of", broken)
    error = _error(tmp_path, source)
    assert error.code == "PG104"
    assert error.call_site.lineno == 2
    assert error.fix == "async with get_db(...) as session:"
    assert "a fault" not in str(error)


def test_no_place_claimed_where_the_source_cannot_be_read() -> None:
    """Code compiled from a string has no source to read: the note says nothing of where
    the line is (it said "this is module-level code" of a generator expression in a def)."""
    namespace: dict[str, Any] = dict(globals())
    exec(
        compile("def f(ts):\n    return list(get_db(t).execute for t in ts)\n", "<string>", "exec"),
        namespace,
    )
    with pytest.raises(ProtocolError) as info:
        namespace["f"](["a"])
    assert info.value.code == "PG103"
    assert "module-level" not in str(info.value)


def test_a_plain_def_keeps_the_import_the_fix_needs(tmp_path: Path) -> None:
    """The note that the fix needs an async def does not drop the 'import contextlib'
    that the exit stack of a per-item fix needs."""
    error = _error(tmp_path, "def f():\n    return [get_db(t).bind for t in ['a', 'b']]\n")
    assert error.code == "PG103"
    assert error.fix.startswith("async with contextlib.AsyncExitStack() as stack:")
    assert "# import contextlib; needs an async def; f() is a plain def" in str(error)


@pytest.mark.parametrize(
    ("source", "code", "why"),
    [
        pytest.param(
            "async def f():\n    db = await get_agen()\n    return db\n",
            "PG104",
            "  Only a coroutine can be awaited; get_agen() must be used with 'async with "
            "contextlib.asynccontextmanager(get_agen)(...)'.",
            id="pg104",
        ),
        pytest.param(
            "async def f():\n    for db in get_agen():\n        return db\n",
            "PG105",
            "  get_agen() is an async provider, so it needs 'async with "
            "contextlib.asynccontextmanager(get_agen)(...)'.",
            id="pg105",
        ),
        pytest.param(
            "async def f():\n    db = get_agen()\n    return await db.execute(1)\n",
            "PG103",
            "  This is the object the provider returned, not the session: enter get_agen() with "
            "'async with contextlib.asynccontextmanager(get_agen)(...)' first and use the "
            "session it gives you.",
            id="pg103",
        ),
        pytest.param(
            "async def f():\n    async with get_agen() as db:\n        return db\n",
            "PG102",
            "  It is a generator, not a context manager: make it one with 'async with "
            "contextlib.asynccontextmanager(get_agen)(...)', or let FastAPI's Depends() drive "
            "it.",
            id="pg102",
        ),
    ],
)
def test_the_why_of_a_provider_entered_once_names_what_the_fix_does(
    tmp_path: Path, source: str, code: str, why: str
) -> None:
    """Where the fix enters an async generator provider once (its block is left early),
    the line that says why names that, and why not 'async for' (it said "needs 'async
    for'" above a fix with no 'async for' in it)."""
    error = _error(tmp_path, source)
    assert error.code == code
    assert error.fix == "async with contextlib.asynccontextmanager(get_agen)() as db:"
    lines = str(error).splitlines()
    i = lines.index(why)
    assert lines[i + 1] == (
        "  Its block is left early (a return, break or continue), where an 'async for' would "
        "run the provider's cleanup late (PG201); entered once, as Depends() does, the cleanup "
        "runs however the block is left."
    )
    assert "'async for'." not in str(error)
    assert "'async for', or" not in str(error)


_PER_ITEM_PROVIDERS = """
@protoguard.provider
async def agen_of(tenant):
    yield tenant

@protoguard.provider
def gen_of(tenant):
    yield tenant

"""


@pytest.mark.parametrize(
    ("line", "code", "why"),
    [
        pytest.param(
            "async def f():\n    dbs = [await agen_of(t) for t in 'ab']\n",
            "PG104",
            "  Only a coroutine can be awaited; agen_of() must be used with 'async with "
            "contextlib.asynccontextmanager(agen_of)(...)'.",
            id="pg104",
        ),
        pytest.param(
            "async def f():\n    dbs = [s for t in 'ab' for s in agen_of(t)]\n",
            "PG105",
            "  agen_of() is an async provider, so it needs 'async with "
            "contextlib.asynccontextmanager(agen_of)(...)'.",
            id="pg105",
        ),
        pytest.param(
            "async def f():\n    infos = [agen_of(t).info for t in 'ab']\n",
            "PG103",
            "  This is the object the provider returned, not the session: enter agen_of() with "
            "'async with contextlib.asynccontextmanager(agen_of)(...)' first and use the "
            "session it gives you.",
            id="pg103",
        ),
        pytest.param(
            "async def f():\n    dbs = [await gen_of(t) for t in 'ab']\n",
            "PG104",
            "  Only a coroutine can be awaited; gen_of() must be used with 'with "
            "contextlib.contextmanager(gen_of)(...)'.",
            id="pg104-sync",
        ),
        pytest.param(
            "async def f():\n    dbs = [s for t in 'ab' async for s in gen_of(t)]\n",
            "PG105",
            "  gen_of() is a sync provider, so it needs 'with "
            "contextlib.contextmanager(gen_of)(...)'.",
            id="pg105-sync",
        ),
    ],
)
def test_the_why_of_a_generator_entered_per_item_names_what_the_fix_does(
    tmp_path: Path, line: str, code: str, why: str
) -> None:
    """A generator provider called per item of a comprehension: the fix enters each
    item's session once, on an exit stack, and the line that says why names that, and
    why not a loop over each (it said "must be used with 'async for'" above a fix with no
    'async for' in it)."""
    error = _error(tmp_path, _PER_ITEM_PROVIDERS + line)
    assert error.code == code
    assert error.fix.startswith(("async with contextlib.AsyncExitStack() as stack:\n", "with "))
    assert "contextmanager(" in error.fix
    lines = str(error).splitlines()
    i = lines.index(why)
    loop = "'async for'" if "agen_of" in line else "'for'"
    assert lines[i + 1] == (
        "  Each item's session is entered on an exit stack, which keeps them all open until "
        f"its block ends; a loop over each ({loop}) would close its session at the loop's next "
        "step, when the provider's cleanup runs."
    )
    assert "'async for'." not in str(error)
    assert "needs 'for'" not in str(error)


def test_the_why_of_an_exit_stack_the_line_has_is_not_the_per_item_one(tmp_path: Path) -> None:
    """A generator entered once, beside an exit stack the user's own line has
    (`async with contextlib.AsyncExitStack() as stack, get_agen() as db: return db`):
    the fix keeps the stack and no item is entered on it, so the why is the one of a
    block left early, not that each item of a comprehension is entered on the stack."""
    error = _error(
        tmp_path,
        "async def f():\n"
        "    async with contextlib.AsyncExitStack() as stack, get_agen() as db:\n"
        "        return db\n",
    )
    assert error.code == "PG102"
    assert error.fix == (
        "async with contextlib.AsyncExitStack() as stack, "
        "contextlib.asynccontextmanager(get_agen)() as db:"
    )
    assert "Each item's session" not in str(error)
    assert f"  {_messages._LEFT_EARLY}" in str(error).splitlines()


_LEFT_OUT = "# its 'break' is left out: this block is no loop and runs its body once"


@pytest.mark.parametrize(
    ("line", "code", "fix", "note", "expected"),
    [
        pytest.param(
            "async for db in get_db(): values.append((await db.execute(COUNT)).scalar_one()); "
            "break",
            "PG201",
            "async with contextlib.asynccontextmanager(get_db)() as db: "
            "values.append((await db.execute(COUNT)).scalar_one())",
            f"  # import contextlib\n{_LEFT_OUT}",
            "[count]",
            id="pg201",
        ),
        pytest.param(
            "async for db in get_db(): break",
            "PG201",
            "async with contextlib.asynccontextmanager(get_db)() as db: pass",
            f"  # import contextlib\n{_LEFT_OUT}",
            "[]",
            id="pg201-break-only",
        ),
        pytest.param(
            "for db in get_db(): values.append((await db.execute(COUNT)).scalar_one()); break",
            "PG105",
            "async with contextlib.asynccontextmanager(get_db)() as db: "
            "values.append((await db.execute(COUNT)).scalar_one())",
            f"  # import contextlib\n{_LEFT_OUT}",
            "[count]",
            id="pg105",
        ),
    ],
)
def test_a_loop_on_one_line_left_by_its_break(
    tmp_path: Path, async_maker: Any, line: str, code: str, fix: str, note: str, expected: str
) -> None:
    """A loop written on one line with its body and its `break`: the fix keeps the body
    without the `break` (the header alone, pasted over the line, left a block with no
    body, a SyntaxError, and lost the body; the body with its `break` is one too), and
    the note says the `break` is left out. Pasted over the line, it runs to the result
    the loop meant, with no finding."""

    source = "async def f(get_db):\n    values = []\n    {}\n    return values\n"
    path = tmp_path / f"handler_{next(_FILES)}.py"
    path.write_text(source.format(line), encoding="utf-8")
    get_db, run_f, count = _left_early_runner(async_maker, path)
    outcome = run_f(path.read_text(encoding="utf-8"))
    message = _message_of(outcome, code)
    if code != "PG201":
        assert outcome.fix == fix
        # `check`, with the provider a global (the parameter is a name of f's own).
        text = source.format(line).replace("f(get_db)", "f()")
        found = _scan.findings(_scan.parse_uses(text, str(path)), {"get_db": get_db}, "", text)
        assert [(f.fix, f.note) for f in found] == [(fix, note.strip().removeprefix("#").strip())]
    assert _fix_and_note(message) == (fix, note)
    protoguard.clear_findings()
    assert run_f(source.format(fix)) == eval(expected, {"count": count})
    assert protoguard.findings() == []


def test_a_loop_on_one_line_of_a_context_manager(tmp_path: Path) -> None:
    """The same for a context-manager provider: the body kept, its `break` left out."""
    error = _error(tmp_path, "async def f():\n    for db in get_db(): x = db; break\n")
    assert error.code == "PG105"
    assert error.fix == "async with get_db() as db: x = db"
    assert _found(error).fix == error.fix


def test_a_block_on_one_line_keeps_a_break_of_the_loop_around(tmp_path: Path) -> None:
    """A `break` in a one-line block's body is the loop's around it: kept, at run time and
    in `check` (the body was dropped, the fix compiled with no loop around it)."""
    error = _error(
        tmp_path,
        "async def f():\n    for i in [1]:\n        async with get_agen() as db: x = db; break\n",
    )
    assert error.code == "PG102"
    assert error.fix == (
        "async with contextlib.asynccontextmanager(get_agen)() as db: x = db; break"
    )
    assert _found(error).fix == error.fix


@pytest.mark.parametrize(
    ("line", "fix"),
    [
        (
            "async with cache.session() as a: b = await repo.session()",
            "async with repo.session() as b:",
        ),
        (
            "async with cache.session() as a: x = 1; b = await repo.session()",
            "async with repo.session() as b:",
        ),
        (  # the header's call misused, the body's another's: the header rewritten
            "async for a in repo.session(): b = cache.session()",
            "async with repo.session() as a: b = cache.session()",
        ),
        (  # PG103 on a name the body made: its assignment rewritten, not the header
            "async with get_db() as a: b = get_db(); b.info",
            "async with get_db() as b:",
        ),
        (
            "async with cache.session() as a: b = repo.session(); b.info",
            "async with repo.session() as b:",
        ),
    ],
)
def test_a_header_and_its_body_calling_one_name(tmp_path: Path, line: str, fix: str) -> None:
    """A block on one line whose header and body both call a name: the statement
    rewritten is the one where the misused call is, told by its column (before Python
    3.11, by how the line uses each call; the fix was the line as it was, the header
    "rewritten"), at run time and in `check`."""
    error = _error(tmp_path, f"async def f():\n    {line}\n")
    assert error.fix == fix
    assert _found(error).fix == fix


@pytest.mark.parametrize(
    ("line", "fix"),
    [
        ("a = await get_agen(); b = [x async for x in get_agen()]", "async for a in get_agen():"),
        ("b = [x async for x in get_agen()]; a = await get_agen()", "async for a in get_agen():"),
        ("b = [x async for x in get_agen()]; a = get_agen().bind", None),
    ],
)
def test_of_the_providers_calls_on_a_line_the_one_used_so(
    tmp_path: Path, line: str, fix: Optional[str]
) -> None:
    """Two calls of the provider on one line, one of them used rightly: the fix rewrites
    the misused one, told by its column from Python 3.11, before it by how the line uses
    each call (it rewrote the right `async for` on Python 3.9 and 3.10)."""
    error = _error(tmp_path, f"async def f():\n    {line}\n")
    found = _found(error)
    if fix is None:  # PG103: `check` and run time rewrite the attribute's line
        assert error.code == "PG103"
        assert error.fix == found.fix
        assert "[x for x in" not in error.fix
        assert error.fix.startswith("async for session in get_agen():")
        return
    assert error.fix == fix
    assert found.fix == fix


def test_two_calls_of_the_provider_used_alike_on_a_line(tmp_path: Path) -> None:
    """Both calls awaited: from Python 3.11 the column tells the one that failed; before,
    nothing does, and the message says so, with the fix for the call alone, rather than
    rewrite one of the statements on a guess."""
    error = _error(tmp_path, "async def f():\n    a = await get_agen(); b = await get_agen()\n")
    assert error.code == "PG104"
    path = error.call_site.filename
    text = Path(path).read_text(encoding="utf-8")
    found = _scan.findings(_scan.parse_uses(text, path), globals(), path, text)
    assert [f.fix for f in found] == ["async for a in get_agen():", "async for b in get_agen():"]
    fix_line = next(line for line in str(error).splitlines() if line.startswith("  fix: "))
    if sys.version_info >= (3, 11):
        assert error.fix == "async for a in get_agen():"
        assert fix_line == "  fix: async for a in get_agen():"
    else:
        assert error.fix == "async for session in get_agen(...):"
        assert fix_line == (
            "  fix: async for session in get_agen(...):  # get_agen() is used with 'await' 2 "
            "times on this line; before Python 3.11 protoguard cannot tell which one failed: "
            "rewrite that one like this"
        )


_SPREAD = 'get_db(\n        "primary",\n        "replica",\n    )'


@pytest.mark.parametrize(
    ("source", "code", "fix"),
    [
        pytest.param(
            """
            async def f():
                cm = get_db(
                    "primary",
                    "replica",
                )
                async with cm as a:
                    pass
                async with cm as b:
                    pass
            """,
            "PG107",
            f"async with {_SPREAD} as b:",
            id="pg107",
        ),
        pytest.param(
            """
            async def f():
                db = get_db(
                    "primary",
                    "replica",
                )
                return db.info
            """,
            "PG103",
            f"async with {_SPREAD} as db:",
            id="pg103",
        ),
        pytest.param(  # a method: its lines as the def's source, dedented, has them
            """
            class Handler:
                async def run(self):
                    cm = get_db(
                        "primary",
                        "replica",
                    )
                    async with cm as a:
                        async with cm as b:
                            pass

            def f():
                return Handler().run()
            """,
            "PG107",
            f"async with {_SPREAD} as b:",
            id="pg107-method",
        ),
    ],
)
def test_an_assignment_over_lines_kept_as_written(
    tmp_path: Path, source: str, code: str, fix: str
) -> None:
    """The fix made from an assignment a formatter spread over lines, at another line
    (`cm = get_db(...)` entered again, `db = get_db(...)` then `db.info`): `check` keeps
    its lines as run time does (it wrote them on one line, its quotes changed)."""
    error = _error(tmp_path, source)
    assert (error.code, error.fix) == (code, fix)
    found = _found(error)
    assert (found.code, found.fix) == (code, fix)
