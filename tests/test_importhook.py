"""The import-time guard: real modules written to tmp_path, imported under the hook."""

from __future__ import annotations

import ast
import asyncio
import gc
import importlib
import os
import re
import subprocess
import sys
import textwrap
import threading
import traceback
import types
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

import protoguard
from protoguard import _importhook, _index, _scan
from protoguard import _kinds as k

from .conftest import FASTAPI_UNWRAPS

PROVIDERS = """
from contextlib import asynccontextmanager, contextmanager

import protoguard


@asynccontextmanager
async def get_db():
    yield "session"


@contextmanager
def sync_db():
    yield "session"


async def gen_db():
    yield "session"


def sync_gen_db():
    yield "session"


async def make_session():
    return "session"


@protoguard.provider
@asynccontextmanager
async def guarded_db():
    yield "session"


@protoguard.provider
async def guarded_gen():
    yield "session"


class Repo:
    @classmethod
    @asynccontextmanager
    async def session(cls):
        yield "session"

    @staticmethod
    async def gen():
        yield "session"


class Manager:
    @asynccontextmanager
    async def session(self):
        yield "session"


manager = Manager()
"""


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh package ``pgapp_<n>`` on sys.path with a providers module; yields its dir."""
    name = f"pgapp_{abs(hash(str(tmp_path))) % 10**8}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "deps.py").write_text(PROVIDERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PROTOGUARD_CACHE_DIR", str(tmp_path / "cache"))
    yield root
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def write(package: Path, name: str, body: str) -> str:
    """Write module ``name`` into the package; return its dotted name."""
    (package / f"{name}.py").write_text(textwrap.dedent(body))
    importlib.invalidate_caches()
    return f"{package.name}.{name}"


def check(package: Path, name: str, body: str, mode: str = "on") -> list[_scan.SourceFinding]:
    """Import the module under a hook that only collects, and return its findings."""
    module = write(package, name, body)
    hook = _importhook.ImportHook((package.name,), mode, report=False)
    hook.install()
    try:
        importlib.import_module(module)
    finally:
        hook.uninstall()
    return [f for f in hook.findings if f.module == module]


def line_of(package: Path, name: str, text: str) -> int:
    lines = (package / f"{name}.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


class TestForms:
    """Every syntactic form, with the code of each misuse and the line it is on."""

    CASES: ClassVar[list[tuple[str, str, str]]] = [
        ("async for s in get_db():", "PG101", "async with get_db() as s:"),
        ("async with gen_db() as s:", "PG102", "async for s in gen_db():"),
        ("s = await get_db()", "PG104", "async with get_db() as s:"),
        ("with get_db() as s:", "PG105", "async with get_db() as s:"),
        ("async with sync_db() as s:", "PG105", "with sync_db() as s:"),
        ("for s in gen_db():", "PG105", "async for s in gen_db():"),
        ("async with make_session() as s:", "PG106", "async with await make_session() as s:"),
        ("async for s in make_session():", "PG106", "async with await make_session() as s:"),
        ("with make_session() as s:", "PG105", "async with await make_session() as s:"),
        ("for s in make_session():", "PG105", "async with await make_session() as s:"),
        ("for s in sync_db():", "PG101", "with sync_db() as s:"),
        ("with sync_gen_db() as s:", "PG102", "for s in sync_gen_db():"),
        ("s = await sync_db()", "PG104", "with sync_db() as s:"),
    ]

    @pytest.mark.parametrize(("statement", "code", "fix"), CASES)
    def test_misuse(self, package: Path, statement: str, code: str, fix: str) -> None:
        """Each wrong protocol is reported with its code, line, column and fix."""
        body = f"""
        from .deps import *

        async def handler():
            {statement}
                pass
        """
        if not statement.endswith(":"):
            body = body.replace("                pass\n", "")
        found = check(package, "mod", body)
        assert [(f.code, f.fix) for f in found] == [(code, fix)]
        assert found[0].line == line_of(package, "mod", statement)
        line = (package / "mod.py").read_text().splitlines()[found[0].line - 1]
        provider = re.search(r"([\w.]+)\(", statement)
        assert provider is not None
        assert line[found[0].col - 1 :].startswith(provider.group(1) + "(")

    @pytest.mark.parametrize("separator", ["\f", "\v", "\x1c", "\x85", "\u2028", "\u2029"])
    def test_line_separators_python_does_not_count(self, package: Path, separator: str) -> None:
        """A form feed between sections, U+2028 in a comment or a string: str.splitlines
        ends a line there, Python does not; the line, column and fix are Python's."""
        # A form feed may stand alone on a line (a page break); the others may not.
        alone = separator if separator == "\f" else f"# {separator}"
        (package / "mod.py").write_text(
            "from .deps import get_db\n"
            f"{alone}\n"
            f"# section two {separator} in a comment\n"
            "async def handler():\n"
            f"    label = '{separator}'; s = await get_db()\n"
            "    async for s in get_db():\n"
            "        pass\n",
            encoding="utf-8",
        )
        importlib.invalidate_caches()
        hook = _importhook.ImportHook((package.name,), "on", report=False, thorough=True)
        with hook.install():
            importlib.import_module(f"{package.name}.mod")
        assert [(f.line, f.col, f.code, f.fix) for f in hook.findings] == [
            (5, len("    label = '_'; s = await ") + 1, "PG104", "async with get_db() as s:"),
            (6, len("    async for s in ") + 1, "PG101", "async with get_db() as s:"),
        ]

    @pytest.mark.parametrize(("statement", "code", "fix"), CASES)
    def test_says_what_run_time_says(
        self, package: Path, statement: str, code: str, fix: str
    ) -> None:
        """The finding names the misuse as the run-time ProtocolError does (what the
        call returned: 'a coroutine (not awaited yet)', not 'a coroutine function'),
        then what the provider is and where, as the error's definition line does."""
        body = f"""
        import protoguard
        from .deps import get_db, sync_db, gen_db, sync_gen_db, make_session

        get_db, sync_db, gen_db, sync_gen_db, make_session = map(
            protoguard.provider, (get_db, sync_db, gen_db, sync_gen_db, make_session)
        )

        async def handler():
            {statement}
                pass
        """
        if not statement.endswith(":"):
            body = body.replace("                pass\n", "")
        (found,) = check(package, "rt", body)
        module = sys.modules[f"{package.name}.rt"]
        with protoguard.override(mode="on"), pytest.raises(protoguard.ProtocolError) as info:
            asyncio.run(module.handler())
        first, _at, _line, definition = str(info.value).splitlines()[:4]
        assert (found.code, info.value.code) == (code, code)
        assert found.message == f"{first.removeprefix(f'[{code}] ')}; {definition.strip()}"

    def test_call_over_several_lines(self, package: Path) -> None:
        """A call a formatter spread over lines is written on one line in the fix, as
        the run-time fix writes it."""
        body = """
        from .deps import *

        async def handler(settings):
            async with gen_db(
                settings.url,  # a comment
                echo=False,
            ) as s:
                pass
        """
        found = check(package, "mod", body)
        assert [(f.code, f.fix) for f in found] == [
            ("PG102", "async for s in gen_db(settings.url, echo=False):")
        ]

    @pytest.mark.parametrize(
        "statement",
        [
            "async with get_db() as s:",
            "async for s in gen_db():",
            "s = await make_session()",
            "with sync_db() as s:",
            "for s in sync_gen_db():",
            "async with await make_session() as s:",
            "async with guarded_db() as s:",
            "async for s in guarded_gen():",
        ],
    )
    def test_correct_use(self, package: Path, statement: str) -> None:
        """The right protocol is never a finding."""
        body = f"""
        from .deps import *

        async def handler():
            {statement}
                pass
        """
        if not statement.endswith(":"):
            body = body.replace("                pass\n", "")
        assert check(package, "mod", body) == []

    def test_comprehensions(self, package: Path) -> None:
        """Comprehensions iterate too: `[... async for ... in cm()]` is PG101."""
        found = check(
            package,
            "mod",
            """
            from .deps import get_db, sync_db

            async def handler():
                a = [s async for s in get_db()]
                b = {s for s in sync_db()}
                return a, b
            """,
        )
        assert [f.code for f in found] == ["PG101", "PG101"]

    def test_with_several_items(self, package: Path) -> None:
        """Each item of a with statement is a use of its own, on its own line."""
        found = check(
            package,
            "mod",
            """
            from .deps import get_db, gen_db

            async def handler():
                async with (
                    get_db() as a,
                    gen_db() as b,
                ):
                    pass
            """,
        )
        expected = [("PG102", line_of(package, "mod", "gen_db() as b"))]
        assert [(f.code, f.line) for f in found] == expected

    def test_guarded_providers_are_known(self, package: Path) -> None:
        """A guarded provider is classified by its own kind, not as the wrapper."""
        found = check(
            package,
            "mod",
            """
            from .deps import guarded_db, guarded_gen

            async def handler():
                async for s in guarded_db():
                    pass
                async with guarded_gen() as s:
                    pass
            """,
        )
        assert [f.code for f in found] == ["PG101", "PG102"]

    def test_partials_of_guarded_providers(self, package: Path) -> None:
        """A functools.partial of a guarded provider is the provider: a guarded
        @asynccontextmanager is a plain function beneath its mark, so the partial's kind
        is the guard's, as at run time (which raises PG101, PG104, PG105 there)."""
        found = check(
            package,
            "mod",
            """
            import functools

            from .deps import get_db, guarded_db, guarded_gen

            plain_cm = functools.partial(get_db)
            guarded_cm = functools.partial(guarded_db)
            twice = functools.partial(functools.partial(guarded_db))
            guarded_agen = functools.partial(guarded_gen)

            async def handler():
                async for s in plain_cm():
                    pass
                async for s in guarded_cm():
                    pass
                s = await guarded_cm()
                with twice() as s:
                    pass
                async with guarded_agen() as s:
                    pass
                async with guarded_cm() as ok:
                    pass
            """,
        )
        assert [(f.code, f.provider.name, f.fix) for f in found] == [
            ("PG101", "get_db", "async with plain_cm() as s:"),
            ("PG101", "guarded_db", "async with guarded_cm() as s:"),
            ("PG104", "guarded_db", "async with guarded_cm() as s:"),
            ("PG105", "guarded_db", "async with twice() as s:"),
            ("PG102", "guarded_gen", "async for s in guarded_agen():"),
        ]

    def test_a_note_on_the_fix(self, package: Path) -> None:
        """What else the fix needs, as run time says it after the fix: the finding's
        note, said after the fix in the warning; the fix itself is code only."""
        found = check(
            package,
            "mod",
            """
            from .deps import get_db, gen_db

            def handler():
                with get_db() as s:
                    pass

            async def leaves():
                async with gen_db() as s:
                    return s
            """,
        )
        assert [(f.fix, f.note) for f in found] == [
            ("async with get_db() as s:", "needs an async def; handler() is a plain def"),
            ("async with contextlib.asynccontextmanager(gen_db)() as s:", "import contextlib"),
        ]
        assert (
            "  fix: async with get_db() as s:  # needs an async def; handler() is a plain def\n"
            in _importhook.format_finding(found[0])
        )
        assert str(found[1]).endswith(
            "fix: async with contextlib.asynccontextmanager(gen_db)() as s:  # import contextlib"
        )

    def test_session_makers(self, package: Path) -> None:
        """async_sessionmaker instances are providers: `async for` and `await` are wrong."""
        found = check(
            package,
            "mod",
            """
            from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

            Session = async_sessionmaker(create_async_engine("sqlite+aiosqlite://"))

            async def handler():
                async with Session() as ok:
                    pass
                async for s in Session():
                    pass
                s = await Session()
                with Session() as s:
                    pass
            """,
        )
        assert [f.code for f in found] == ["PG101", "PG104", "PG105"]
        # Named as the code names it; a session maker made in code has no place to name.
        assert found[0].message == (
            "'async for' over Session(), which is a session (an async context manager); "
            "Session: an async_sessionmaker"
        )

    def test_a_partial_of_a_session_maker(self, package: Path) -> None:
        """A functools.partial of a session maker (one tenant's sessions) makes sessions
        as the maker does: `await` on its call is PG104 at import time too."""
        found = check(
            package,
            "mod",
            """
            import functools

            from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

            maker = async_sessionmaker(create_async_engine("sqlite+aiosqlite://"))
            TenantSession = functools.partial(maker, info={"tenant": "acme"})

            async def handler():
                async with TenantSession() as ok:
                    pass
                s = await TenantSession()
            """,
        )
        assert [(f.code, f.fix) for f in found] == [("PG104", "async with TenantSession() as s:")]
        assert found[0].message == (
            "'await' on TenantSession(), which is a session (an async context manager); "
            "TenantSession: an async_sessionmaker"
        )


class TestSessionAttribute:
    """PG103: a session's attribute taken on what the provider returned, found at import
    time as run time finds it: on the call itself, or on the name it was assigned to."""

    INLINE: ClassVar[list[tuple[str, str]]] = [
        ("await get_db().execute(q)", "async with get_db() as session: await session.execute(q)"),
        ("get_db().add(x)", "async with get_db() as session: session.add(x)"),
        (
            "r = await gen_db().commit()",
            "async for session in gen_db(): r = await session.commit()",
        ),
        ("sync_db().close()", "with sync_db() as session: session.close()"),
        (
            "r = await make_session().execute(q)",
            "async with await make_session() as session: r = await session.execute(q)",
        ),
        (
            "await deps.get_db().execute(q)",
            "async with deps.get_db() as session: await session.execute(q)",
        ),
    ]

    @pytest.mark.parametrize(("statement", "fix"), INLINE)
    def test_on_the_call(self, package: Path, statement: str, fix: str) -> None:
        """`get_db().execute(q)`: the line rewritten, as run time rewrites it."""
        body = f"""
        from . import deps
        from .deps import *

        async def handler(q, x):
            {statement}
        """
        found = check(package, "mod", body)
        assert [(f.code, f.fix, f.note) for f in found] == [("PG103", fix, "")]
        assert found[0].line == line_of(package, "mod", statement)
        line = (package / "mod.py").read_text().splitlines()[found[0].line - 1]
        provider = re.search(r"([\w.]+)\(\)\.", statement)
        assert provider is not None
        assert line[found[0].col - 1 :].startswith(provider.group(1) + "().")
        assert found[0].used == "." + statement.split("().")[1].split("(")[0]

    FLOW: ClassVar[list[tuple[str, str, str]]] = [
        ("db = get_db()", "await db.execute(q)", "async with get_db() as db:"),
        ("db = gen_db()", "await db.commit()", "async for db in gen_db():"),
        ("db = sync_gen_db()", "db.add(x)", "for db in sync_gen_db():"),
        ("db = sync_db()", "db.close()", "with sync_db() as db:"),
        ("db = get_db()", "await db.aclose()", "async with get_db() as db:"),
        ("db = make_session()", "await db.execute(q)", "async with await make_session() as db:"),
        ("db: object = deps.get_db()", "db.query(x)", "async with deps.get_db() as db:"),
        ("db = Repo.session()", "await db.commit()", "async with Repo.session() as db:"),
        ("db = manager.session()", "db.add(x)", "async with manager.session() as db:"),
    ]

    @pytest.mark.parametrize(("assignment", "statement", "fix"), FLOW)
    def test_through_a_name(self, package: Path, assignment: str, statement: str, fix: str) -> None:
        """`db = get_db()`, later `db.execute(q)`: found at the attribute's line; the fix
        is for the assignment's line, which the note names, as run time says it."""
        body = f"""
        from . import deps
        from .deps import *

        async def handler(q, x):
            {assignment}
            if x:
                for _ in range(2):
                    {statement}
            {statement}
        """
        found = check(package, "mod", body)
        assigned_at = line_of(package, "mod", assignment)
        assert [(f.code, f.fix, f.note) for f in found] == [
            ("PG103", fix, f"replaces line {assigned_at}: {assignment}")
        ]
        assert found[0].line == line_of(package, "mod", statement)
        line = (package / "mod.py").read_text().splitlines()[found[0].line - 1]
        assert line[found[0].col - 1 :].startswith("db.")
        assert found[0].fix_with_note() == f"{fix}  # replaces line {assigned_at}: {assignment}"

    def test_in_a_plain_def_and_at_module_level(self, package: Path) -> None:
        """Outside an async def the note says the fix needs one, as run time says it."""
        body = """
        from .deps import get_db, sync_db

        def handler(q):
            db = get_db()
            db.execute(q)

        cm = sync_db()
        if False:
            cm.commit()
        """
        found = check(package, "mod", body)
        assert [(f.line, f.fix, f.note) for f in found] == [
            (6, "async with get_db() as db:", "needs an async def; handler() is a plain def"),
            (10, "with sync_db() as cm:", "replaces line 8: cm = sync_db()"),
        ]

    @pytest.mark.parametrize(
        ("assignment", "statement"),
        [
            ("db = get_db()", "result = await db.execute(q)"),
            ("db = gen_db()", "await db.commit()"),
            ("db = make_session()", "await db.execute(q)"),
            ("", "await get_db().execute(q)"),
            ("", "r = await make_session().execute(q)"),
        ],
    )
    # The coroutine of make_session() is never awaited, as in the code under test.
    @pytest.mark.filterwarnings("ignore::RuntimeWarning")
    @pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
    def test_says_what_run_time_says(self, package: Path, assignment: str, statement: str) -> None:
        """Message, fix and note are those of the run-time ProtocolError of the same line."""
        body = f"""
        import protoguard
        from .deps import get_db, gen_db, make_session

        get_db, gen_db, make_session = map(protoguard.provider, (get_db, gen_db, make_session))

        async def handler(q):
            {assignment}
            {statement}
        """
        (found,) = check(package, "rt", body)
        module = sys.modules[f"{package.name}.rt"]
        with protoguard.override(mode="on"), pytest.raises(protoguard.ProtocolError) as info:
            asyncio.run(module.handler("q"))
        lines = str(info.value).splitlines()
        first, at, definition = lines[0], lines[1], lines[3]
        assert (found.code, info.value.code) == ("PG103", "PG103")
        assert at.strip().endswith(f":{found.line}")
        assert found.message == f"{first.removeprefix('[PG103] ')}; {definition.strip()}"
        fix_line = next(line for line in lines if line.startswith("  fix: "))
        assert fix_line == f"  fix: {found.fix_with_note()}"
        assert found.fix == info.value.fix
        assert found.used == info.value.used
        del info
        gc.collect()  # the coroutine, never awaited, warns now, not in another test

    CORRECT: ClassVar[list[str]] = [
        # entered later, with the right protocol
        "db = get_db()\nasync with db as s:\n    await s.execute(q)",
        "db = gen_db()\nasync for s in db:\n    await s.commit()",
        "db = make_session()\ns = await db\nawait s.execute(q)",
        "db = get_db()\ns = await stack.enter_async_context(db)\nawait s.execute(q)",
        # handed to something else, or returned
        "db = get_db()\nawait helper(db)\nawait db.execute(q)",
        "db = get_db()\nawait db.execute(q)\nreturn db",
        "db = get_db()\nif hasattr(db, 'execute'):\n    await db.execute(q)",
        "db = get_db()\nrun = getattr(db, 'execute')",
        "db = get_db()\ndb.execute = helper\nawait db.execute(q)",
        "db = get_db()\ndbs = [db]\nawait db.execute(q)",
        # bound again
        "db = get_db()\ndb = helper()\nawait db.execute(q)",
        "db = get_db()\nif q:\n    db = helper()\nawait db.execute(q)",
        "db = get_db()\nasync with get_db() as db:\n    await db.execute(q)",
        "db = get_db()\ndel db\ndb = helper()\nawait db.execute(q)",
        "for db in helper():\n    pass\ndb = get_db()\nawait db.execute(q)",
        # read by a nested function, or before the assignment
        "db = get_db()\nasync def inner():\n    await db.execute(q)",
        "db = get_db()\nrows = [await db.execute(x) for x in q]",
        "await db.execute(q)\ndb = get_db()",
        # probed on purpose
        "db = get_db()\ntry:\n    await db.execute(q)\nexcept AttributeError:\n    pass",
        "with contextlib.suppress(AttributeError):\n    get_db().commit()",
        # not a session attribute, or one the object has
        "db = gen_db()\nawait db.aclose()",
        "c = make_session()\nc.close()",
        "db = sync_gen_db()\ndb.close()",
        "cm = get_db()\nprint(cm.gen, cm.func)",
        # a session maker's result is the session; a plain function is not followed
        "s = maker()\nawait s.execute(q)",
        "await maker().execute(q)",
        "s = helper()\nawait s.execute(q)",
        # an attribute chain, not a name
        "self.db = get_db()\nawait self.db.execute(q)",
    ]

    @pytest.mark.parametrize("body", CORRECT)
    def test_not_reported(self, package: Path, body: str) -> None:
        """Code that uses the object as what it is, or that the scan cannot be sure of,
        is never a finding."""
        source = (
            "import contextlib\n"
            "from sqlalchemy.ext.asyncio import async_sessionmaker\n"
            "from .deps import *\n\n"
            "maker = async_sessionmaker()\n\n"
            "def helper(*args):\n    return args\n\n"
            "async def handler(self, q, stack):\n" + textwrap.indent(body, "    ") + "\n"
        )
        assert check(package, "mod", source) == []
        assert (
            _scan.findings(
                _scan.parse_uses(source),
                vars(sys.modules[f"{package.name}.mod"]),
                "mod.py",
                source,
            )
            == []
        )

    def test_names_bound_elsewhere(self, package: Path) -> None:
        """A provider's name that is a parameter, a `db` that is a parameter too, or a
        module global another function sets: not the provider's, or not surely its."""
        body = """
        from .deps import get_db

        async def a(get_db, q):
            db = get_db()
            await db.execute(q)

        async def b(db, q):
            if q:
                db = get_db()
            await db.execute(q)

        def set_db(value):
            global db
            db = value

        db = get_db()
        async def c(q):
            await db.execute(q)
        if False:
            db.execute(1)
        """
        assert check(package, "mod", body) == []

    def test_the_first_use_only(self, package: Path) -> None:
        """Several uses of one name: one finding, at the first; the fix is one line."""
        body = """
        from .deps import get_db

        async def handler(q):
            db = get_db()
            await db.execute(q)
            await db.commit()
            other = get_db()
            other.add(q)
        """
        found = check(package, "mod", body)
        assert [(f.line, f.used, f.fix) for f in found] == [
            (6, ".execute", "async with get_db() as db:"),
            (9, ".add", "async with get_db() as other:"),
        ]

    def test_strict_mode_refuses_the_import(self, package: Path) -> None:
        """In strict mode the import fails, listing the PG103, as for the other codes."""
        module = write(
            package,
            "strict",
            """
            from .deps import get_db

            async def handler(q):
                await get_db().execute(q)
            """,
        )
        hook = _importhook.ImportHook((package.name,), "strict")
        with hook.install(), pytest.raises(protoguard.ProtocolError, match="PG103"):
            importlib.import_module(module)

    def test_found_through_the_text_index(self, package: Path) -> None:
        """The hook reads the text first: the calls it indexes include these, so the
        module is parsed and the finding made, the first time and from the cache."""
        body = """
        from .deps import get_db

        async def handler(q):
            db = get_db()  # a comment
            rows = (
                await db  # another
                .execute(q)
            )
        """
        for _ in range(2):
            sys.modules.pop(f"{package.name}.idx", None)
            found = check(package, "idx", body)
            assert [(f.code, f.line) for f in found] == [("PG103", 7)]
        calls = _index.index_calls(textwrap.dedent(body))
        assert (_scan.ATTRIBUTE, ("get_db",), ()) in calls


class TestEnteredTwice:
    """PG107: the context manager a provider returned, kept in a name and entered a
    second time, found at import time as run time finds it: at the second entry."""

    # (the function's body, the fix); `# <- here` marks the line of the finding.
    CLEAR: ClassVar[list[tuple[str, str]]] = [
        # one after the other
        (
            "cm = get_db()\n"
            "async with cm as a:\n    pass\n"
            "async with cm as b:  # <- here\n    pass",
            "async with get_db() as b:",
        ),
        (
            "cm = sync_db()\nwith cm as a:\n    pass\nwith cm as b:  # <- here\n    pass",
            "with sync_db() as b:",
        ),
        # one in the other's block
        (
            "cm = get_db()\nasync with cm as a:\n    async with cm as b:  # <- here\n        pass",
            "async with get_db() as b:",
        ),
        (
            "cm = sync_db()\nwith cm as a:\n    if q:\n        with cm as b:  # <- here\n"
            "            pass",
            "with sync_db() as b:",
        ),
        # in a loop, entered at each turn
        (
            "cm = get_db()\nfor x in q:\n    async with cm as a:  # <- here\n        pass",
            "async with get_db() as a:",
        ),
        (
            "cm = get_db()\nasync for x in q:\n    async with cm:  # <- here\n        pass",
            "async with get_db() as session:",
        ),
        (
            "cm = sync_db()\nwhile q:\n    with cm as a:  # <- here\n        q.pop()",
            "with sync_db() as a:",
        ),
        # the provider as the module has it: dotted, a method, an alias
        (
            "cm = deps.get_db()\n"
            "async with cm as a:\n    pass\n"
            "async with cm as b:  # <- here\n    pass",
            "async with deps.get_db() as b:",
        ),
        (
            "cm: object = manager.session()\n"
            "async with cm as a:\n    pass\n"
            "async with cm as b:  # <- here\n    pass",
            "async with manager.session() as b:",
        ),
        (
            "cm = provide()\n"
            "async with cm as a:\n    pass\n"
            "async with cm as b:  # <- here\n    pass",
            "async with provide() as b:",
        ),
        # a third entry: one finding, at the second
        (
            "cm = guarded_db()\n"
            "async with cm as a:\n    pass\n"
            "async with cm as b:  # <- here\n    pass\n"
            "async with cm as c:\n    pass",
            "async with guarded_db() as b:",
        ),
    ]

    @pytest.mark.parametrize(("body", "fix"), CLEAR)
    def test_found(self, package: Path, body: str, fix: str) -> None:
        """Code PG107 at the second entry's line and the name's column, the run-time
        message, and the with statement rewritten to call the provider again."""
        source = (
            "from . import deps\n"
            "from .deps import *\n"
            "from .deps import get_db as provide\n\n"
            "async def handler(q):\n" + textwrap.indent(body, "    ") + "\n"
        )
        found = check(package, "mod", source)
        assert [(f.code, f.fix, f.note) for f in found] == [("PG107", fix, "")]
        (finding,) = found
        assert finding.line == line_of(package, "mod", "# <- here")
        line = (package / "mod.py").read_text().splitlines()[finding.line - 1]
        assert line[finding.col - 1 :].startswith("cm")
        used = "with" if fix.startswith("with") else "async with"
        assert finding.used == used
        provider = {"deps.get_db": "get_db", "manager.session": "Manager.session"}
        called = fix.split(" ")[-3].partition("(")[0]
        name = provider.get(called, called)
        defined = finding.provider.name.replace(".<locals>", "")
        assert finding.message.startswith(
            f"'{used}' a second time on the context manager {name}() returned; it runs once; "
            f"{defined}: "
        )
        assert finding.provider.kind in (k.ASYNC_CM, k.SYNC_CM)

    RUN_TIME: ClassVar[list[str]] = [
        "cm = get_db()\nasync with cm as a:\n    pass\nasync with cm as b:\n    pass",
        "cm = get_db()\nasync with cm as a:\n    async with cm:\n        pass",
        "cm = get_db()\nfor x in range(2):\n    async with cm as a:\n        pass",
        "cm = provide()\nasync with cm as a:\n    pass\nasync with cm as b:\n    pass",
        "cm = deps.get_db()\nasync with cm as a:\n    pass\nasync with cm as b:\n    pass",
        "cm = manager.session()\nasync with cm as a:\n    pass\nasync with cm as b:\n    pass",
        "cm = sync_db()\nwith cm as a:\n    pass\nwith cm as b:\n    pass",
    ]

    @pytest.mark.parametrize("body", RUN_TIME)
    def test_says_what_run_time_says(self, package: Path, body: str) -> None:
        """Code, line, message, fix and `used` are those of the run-time ProtocolError
        of the same code, providers guarded."""
        source = (
            "import protoguard\n"
            "from . import deps\n"
            "from .deps import get_db, sync_db, manager\n"
            "from .deps import get_db as provide\n\n"
            "get_db, sync_db, provide = map(protoguard.provider, (get_db, sync_db, provide))\n"
            "deps.get_db = get_db\n"
            "deps.Manager.session = protoguard.provider(deps.Manager.session)\n\n"
            "async def handler():\n" + textwrap.indent(body, "    ") + "\n"
        )
        if "sync_db" in body:
            source = source.replace("async def handler", "def handler")
        (found,) = check(package, "rt", source)
        module = sys.modules[f"{package.name}.rt"]

        def run() -> None:
            result = module.handler()
            if asyncio.iscoroutine(result):
                asyncio.run(result)

        with protoguard.override(mode="on"), pytest.raises(protoguard.ProtocolError) as info:
            run()
        error = info.value
        lines = str(error).splitlines()
        first, at, definition = lines[0], lines[1], lines[3]
        assert (found.code, error.code) == ("PG107", "PG107")
        assert at.strip().endswith(f":{found.line}")
        assert found.message == f"{first.removeprefix('[PG107] ')}; {definition.strip()}"
        assert f"  fix: {found.fix_with_note()}" in lines
        assert found.fix == error.fix
        assert found.used == error.used

    CORRECT: ClassVar[list[str]] = [
        # entered once, or called again for each block
        "cm = get_db()\nasync with cm as a:\n    pass",
        "async with get_db() as a:\n    pass\nasync with get_db() as b:\n    pass",
        "for x in q:\n    cm = get_db()\n    async with cm as a:\n        pass",
        # bound again, or deleted
        "cm = get_db()\nasync with cm as a:\n    pass\ncm = get_db()\nasync with cm as b:\n"
        "    pass",
        "cm = get_db()\nasync with cm as a:\n    pass\nif q:\n    cm = get_db()\n"
        "async with cm as b:\n    pass",
        "cm = get_db()\nasync with cm as a:\n    pass\ndel cm\n",
        "cm = get_db()\nfor cm in q:\n    async with cm as a:\n        pass",
        # used in another way: passed, returned, stored, an attribute taken
        "cm = get_db()\nasync with cm as a:\n    pass\nawait helper(cm)\nasync with cm as b:\n"
        "    pass",
        "cm = get_db()\nasync with cm as a:\n    pass\nasync with cm as b:\n    return cm",
        "cm = get_db()\nq.append(cm)\nasync with cm as a:\n    pass\nasync with cm as b:\n    pass",
        "cm = get_db()\nprint(cm.gen)\nasync with cm as a:\n    pass\nasync with cm as b:\n"
        "    pass",
        # read by a nested function
        "cm = get_db()\nasync with cm as a:\n    pass\nasync def inner():\n"
        "    async with cm as b:\n        pass",
        # in branches only one of which runs
        "cm = get_db()\nif q:\n    async with cm as a:\n        pass\nelse:\n"
        "    async with cm as b:\n        pass",
        "cm = get_db()\ntry:\n    async with cm as a:\n        pass\nexcept ValueError:\n"
        "    async with cm as b:\n        pass",
        "cm = get_db()\ntry:\n    pass\nexcept ValueError:\n    async with cm as a:\n"
        "        pass\nexcept KeyError:\n    async with cm as b:\n        pass",
        # the first block leaves the function, or the function is left between them
        "cm = get_db()\nasync with cm as a:\n    return a\nasync with cm as b:\n    pass",
        "cm = get_db()\nif q:\n    async with cm as a:\n        return a\n"
        "async with cm as b:\n    pass",
        "cm = get_db()\nasync with cm as a:\n    pass\nraise ValueError\n"
        "async with cm as b:\n    pass",
        # a loop left at its first turn, or a block in it that may not run at each
        "cm = get_db()\nfor x in q:\n    async with cm as a:\n        pass\n    break",
        "cm = get_db()\nwhile q:\n    async with cm as a:\n        return a",
        "cm = get_db()\nfor x in q:\n    if x:\n        async with cm as a:\n            pass",
        # ... left or skipped from inside an if or a try (the first turn returns, the
        # retry's break ends it once an attempt works, a continue may skip the entry)
        "cm = get_db()\nfor x in q:\n    async with cm as a:\n        if x:\n"
        "            return a\n        else:\n            return None",
        "cm = get_db()\nwhile True:\n    async with cm as a:\n        if q:\n            break",
        "cm = get_db()\nfor x in q:\n    try:\n        async with cm as a:\n            pass\n"
        "        break\n    except ValueError:\n        continue",
        "cm = get_db()\nfor x in q:\n    if not x:\n        continue\n"
        "    async with cm as a:\n        pass",
        "cm = get_db()\nasync with cm as a:\n    pass\nif q:\n    return a\n"
        "async with cm as b:\n    pass",
        "cm = get_db()\nasync with cm as a:\n    try:\n        pass\n    except ValueError:\n"
        "        raise\nasync with cm as b:\n    pass",
        # two items of one statement: not a with statement the fix can rewrite alone
        "cm = get_db()\nasync with cm as a:\n    pass\nasync with get_db() as b, cm as c:\n"
        "    pass",
    ]

    # Entered twice, but not the one-shot context manager of a provider.
    OTHERS: ClassVar[list[str]] = [
        # with on an @asynccontextmanager's: that is PG105, at the first
        "cm = get_db()\nwith cm as a:\n    pass\nwith cm as b:\n    pass",
        # a session, which may be entered again; an object of the user's; a generator
        "s = maker()\nasync with s as a:\n    pass\nasync with s as b:\n    pass",
        "cm = helper()\nasync with cm as a:\n    pass\nasync with cm as b:\n    pass",
        "cm = gen_db()\nasync with cm as a:\n    pass\nasync with cm as b:\n    pass",
    ]

    @pytest.mark.parametrize("body", CORRECT + OTHERS)
    def test_not_reported(self, package: Path, body: str) -> None:
        """Code that enters a new object each time, that the scan cannot be sure enters
        one object twice, or whose object may be entered again, is never a PG107; the
        first kind is not even a use the parser hands on."""
        source = (
            "from sqlalchemy.ext.asyncio import async_sessionmaker\n"
            "from .deps import *\n\n"
            "maker = async_sessionmaker()\n\n"
            "def helper(*args):\n    return args\n\n"
            "async def handler(q):\n" + textwrap.indent(body, "    ") + "\n"
        )
        assert [f for f in check(package, "mod", source) if f.code == "PG107"] == []
        uses = _scan.parse_uses(source)
        reentered = [use for use in uses if use.protocol == _scan.REENTER]
        assert len(reentered) == (body in self.OTHERS)

    def test_names_bound_elsewhere(self, package: Path) -> None:
        """A name that is a parameter, a global, a nonlocal, or a module's name: not
        surely the one object the function made."""
        body = """
        from .deps import get_db

        async def a(cm):
            cm = get_db()
            async with cm as x:
                pass
            async with cm as y:
                pass

        async def b():
            global cm
            cm = get_db()
            async with cm as x:
                pass
            async with cm as y:
                pass

        def c():
            cm = None

            async def inner():
                nonlocal cm
                cm = get_db()
                async with cm as x:
                    pass
                async with cm as y:
                    pass

            return inner

        cm = get_db()
        if False:
            with cm as x:
                pass
            with cm as y:
                pass
        """
        assert check(package, "mod", body) == []

    def test_strict_mode_refuses_the_import(self, package: Path) -> None:
        """In strict mode the import fails, naming PG107, as for the other codes."""
        module = write(
            package,
            "strict",
            """
            from .deps import sync_db

            def handler():
                cm = sync_db()
                with cm:
                    with cm:
                        pass
            """,
        )
        hook = _importhook.ImportHook((package.name,), "strict")
        with hook.install(), pytest.raises(protoguard.ProtocolError, match="PG107"):
            importlib.import_module(module)

    def test_found_through_the_text_index(self, package: Path) -> None:
        """The hook reads the text first: it indexes the call assigned to a name a with
        statement enters, so the module is parsed and the finding made, the first time
        and from the cache; a module whose names entered are no providers' results is
        not parsed."""
        body = """
        from .deps import get_db

        async def handler(q):
            cm = (
                get_db()  # a comment
            )
            async with (cm) as a:
                pass
            async with \\
                    cm as b:
                pass
        """
        for _ in range(2):
            sys.modules.pop(f"{package.name}.idx", None)
            found = check(package, "idx", body)
            assert [(f.code, f.line) for f in found] == [("PG107", 10)]
        calls = _index.index_calls(textwrap.dedent(body))
        assert (_scan.REENTER, ("get_db",), ()) in calls
        lock = "def f():\n    lock = threading.Lock()\n    with lock:\n        pass"
        calls = _index.index_calls(lock)
        assert calls == [(_scan.REENTER, ("threading", "Lock"), ())]
        assert not _scan.needs_parse(calls, {"threading": threading})


class TestDepends:
    """Depends(f): plain, in Annotated[...], and in dependencies=[...]."""

    def test_every_place(self, package: Path) -> None:
        """An unguarded context-manager function given to Depends is PG103 wherever it is."""
        found = check(
            package,
            "mod",
            """
            from typing import Annotated

            from fastapi import APIRouter, Depends, FastAPI
            import fastapi

            from . import deps
            from .deps import get_db, gen_db, guarded_db

            app = FastAPI()
            router = APIRouter(dependencies=[Depends(deps.sync_db)])

            @app.get("/a")
            async def a(db=Depends(get_db)):
                return None

            @app.get("/b")
            async def b(db: Annotated[str, fastapi.Depends(get_db)]):
                return None

            @app.get("/c", dependencies=[Depends(get_db)])
            async def c():
                return None

            @app.get("/ok")
            async def ok(db=Depends(gen_db), g=Depends(guarded_db)):
                return None
            """,
        )
        if FASTAPI_UNWRAPS:
            assert [f.code for f in found] == ["PG103"] * 4
            assert {f.provider.name for f in found} == {"get_db", "sync_db"}
        else:
            # FastAPI 0.123.4 and earlier inject what a guarded context-manager provider
            # returns too: it is PG103 there, with the upgrade as its fix.
            assert [f.code for f in found] == ["PG103"] * 5
            assert {f.provider.name for f in found} == {"get_db", "sync_db", "guarded_db"}
            (guarded,) = [f for f in found if f.provider.name == "guarded_db"]
            assert "FastAPI 0.123.4 does not look beneath @protoguard.provider" in guarded.message
            assert guarded.fix.startswith("upgrade FastAPI to 0.123.5 or later")

    def test_wrapped_generator(self, package: Path) -> None:
        """A functools.wraps wrapper of an async generator copies its annotation (a
        session's iterator), but FastAPI 0.123.5 and later drive it as the generator
        beneath: no finding. Earlier ones inject the generator: PG103."""
        import fastapi

        found = check(
            package,
            "mod",
            """
            import functools
            from collections.abc import AsyncIterator

            from fastapi import Depends, FastAPI
            from sqlalchemy.ext.asyncio import AsyncSession

            def traced(func):
                @functools.wraps(func)
                def wrapper(*args, **kwargs):
                    return func(*args, **kwargs)
                return wrapper

            @traced
            async def get_db() -> AsyncIterator[AsyncSession]:
                yield AsyncSession()

            app = FastAPI()

            @app.get("/")
            async def index(db=Depends(get_db)):
                return None
            """,
        )
        injects = tuple(int(part) for part in fastapi.__version__.split(".")[:3]) <= (0, 123, 4)
        assert [f.code for f in found] == (["PG103"] if injects else [])

    def test_other_depends_is_not_fastapis(self, package: Path) -> None:
        """A function of the user's that happens to be called Depends is not FastAPI's."""
        found = check(
            package,
            "mod",
            """
            from .deps import get_db

            def Depends(dependency):
                return dependency

            x = Depends(get_db)
            """,
        )
        assert found == []


class TestResolution:
    """Names resolve against the module's real globals, through imports and aliases."""

    def test_aliases_and_chains(self, package: Path) -> None:
        """`import ... as`, `from ... import ... as`, module attributes, classes, instances."""
        found = check(
            package,
            "mod",
            f"""
            import {package.name}.deps as get_db_module
            from . import deps as d
            from .deps import get_db as database, Repo, manager

            async def handler():
                async for s in database():
                    pass
                async for s in d.get_db():
                    pass
                async for s in get_db_module.get_db():
                    pass
                async for s in Repo.session():
                    pass
                async with Repo.gen() as s:
                    pass
                async for s in manager.session():
                    pass
                async for s in d.manager.session():
                    pass
            """,
        )
        assert [f.code for f in found] == ["PG101"] * 4 + ["PG102"] + ["PG101"] * 2
        assert "d.get_db()" in found[1].message
        assert found[1].fix == "async with d.get_db() as s:"

    def test_unresolvable_names(self, package: Path) -> None:
        """Locals, parameters, undefined names and computed callables are skipped."""
        found = check(
            package,
            "mod",
            """
            from typing import TYPE_CHECKING
            from .deps import get_db

            if TYPE_CHECKING:
                from .deps import gen_db as hidden

            async def param(get_db):
                async for s in get_db():
                    pass

            async def local():
                get_db = None
                async for s in get_db():
                    pass

            async def others(self, providers):
                async for s in hidden():
                    pass
                async for s in undefined_name():
                    pass
                async for s in providers["db"]():
                    pass
                async for s in self.get_db():
                    pass
                async for s in (lambda: get_db)()():
                    pass

            class Holder:
                get_db = staticmethod(lambda: None)
                async def method(self):
                    async for s in get_db():   # the global: PG101
                        pass
            """,
        )
        assert [(f.code, f.line) for f in found] == [
            ("PG101", line_of(package, "mod", "# the global"))
        ]

    def test_global_declaration(self, package: Path) -> None:
        """`global name` makes the function's name the module's."""
        found = check(
            package,
            "mod",
            """
            from .deps import get_db

            async def handler():
                global get_db
                async for s in get_db():
                    pass
                get_db = get_db
            """,
        )
        assert [f.code for f in found] == ["PG101"]


class TestModes:
    """on: a ProtocolWarning per finding; strict: ProtocolError at import; off: nothing."""

    BODY = """
    from .deps import get_db, gen_db

    async def handler():
        async for s in get_db():
            pass
        async with gen_db() as s:
            pass
    """

    def test_on_warns_at_the_users_line(self, package: Path) -> None:
        """One warning per finding, with the user's file and line."""
        module = write(package, "mod", self.BODY)
        with (
            protoguard.install_import_hook(package.name, mode="on"),
            pytest.warns(protoguard.ProtocolWarning) as record,
        ):
            importlib.import_module(module)
        assert [(Path(w.filename).name, w.lineno) for w in record] == [
            ("mod.py", line_of(package, "mod", "async for")),
            ("mod.py", line_of(package, "mod", "async with")),
        ]
        assert str(record[0].message).startswith("[PG101] 'async for' over get_db()")
        assert "fix: async with get_db() as s:" in str(record[0].message)

    def test_strict_refuses_the_import(self, package: Path) -> None:
        """Strict mode raises ProtocolError from the import statement itself."""
        module = write(package, "mod", self.BODY)
        with (
            protoguard.install_import_hook(package.name, mode="strict"),
            pytest.raises(protoguard.ProtocolError) as info,
        ):
            importlib.import_module(module)
        assert info.value.code == "PG101"
        assert info.value.call_site is not None
        assert info.value.call_site.lineno == line_of(package, "mod", "async for")
        assert "PG102" in str(info.value)
        assert module not in sys.modules

    def test_on_where_warnings_are_errors(self, package: Path) -> None:
        """Mode on under -W error: the finding's warning is raised from the import
        statement and the module is not imported, as with a module imported before the
        hook (install() raises it)."""
        module = write(package, "mod", self.BODY)
        with (
            warnings.catch_warnings(),
            protoguard.install_import_hook(package.name, mode="on") as hook,
        ):
            warnings.simplefilter("error")
            with pytest.raises(protoguard.ProtocolWarning) as info:
                importlib.import_module(module)
        assert module not in sys.modules
        assert [f.code for f in hook.findings] == ["PG101", "PG102"]
        # Both findings, each at its file and line: the error's traceback ends at the
        # import statement, so the message is where the line to change is said.
        lines = str(info.value).splitlines()
        assert lines[0] == f"2 wrong protocol(s) in {module}:"
        path = package / "mod.py"
        for code, text in (("PG101", "async for"), ("PG102", "async with")):
            at = f"{path}:{line_of(package, 'mod', text)}:"
            assert any(line.startswith(at) and f": [{code}] " in line for line in lines), at

    def test_strict_refuses_every_import(self, package: Path) -> None:
        """Importing the module again after the error runs it again: checked again."""
        module = write(package, "mod", self.BODY)
        with protoguard.install_import_hook(package.name, mode="strict") as hook:
            for _ in range(2):
                with pytest.raises(protoguard.ProtocolError, match="PG101"):
                    importlib.import_module(module)
                assert module not in sys.modules
        assert [f.code for f in hook.findings] == ["PG101", "PG102"]  # each listed once

    def test_reload_checks_the_new_source(self, package: Path) -> None:
        """importlib.reload() of a module edited into a misuse: strict mode refuses it."""
        module = write(package, "mod", "from .deps import get_db\n")
        with protoguard.install_import_hook(package.name, mode="strict"):
            imported = importlib.import_module(module)
            edited = package / "mod.py"
            write(package, "mod", self.BODY)
            later = edited.stat().st_mtime_ns + 2 * 10**9  # not a .pyc of the same second
            os.utime(edited, ns=(later, later))
            with pytest.raises(protoguard.ProtocolError, match="PG101"):
                importlib.reload(imported)

    def test_reload_unchanged(self, package: Path) -> None:
        """A reload runs the module again, so mode on warns again; listed once."""
        module = write(package, "mod", self.BODY)
        with protoguard.install_import_hook(package.name, mode="on") as hook:
            with pytest.warns(protoguard.ProtocolWarning):
                imported = importlib.import_module(module)
            with pytest.warns(protoguard.ProtocolWarning) as record:
                importlib.reload(imported)
        assert [str(w.message)[:7] for w in record] == ["[PG101]", "[PG102]"]
        assert [f.code for f in hook.findings] == ["PG101", "PG102"]

    def test_strict_at_install_leaves_nothing_installed(self, package: Path) -> None:
        """A misuse in a module imported before a strict hook: the error, and no hook."""
        importlib.import_module(write(package, "mod", self.BODY))
        with pytest.raises(protoguard.ProtocolError) as info:
            protoguard.install_import_hook(package.name, mode="strict")
        assert info.value.code == "PG101"
        assert _importhook._registry.hooks == []
        assert _importhook._registry.finder not in sys.meta_path

    def test_off_does_nothing(self, package: Path) -> None:
        """Mode off: no warning, no finding."""
        module = write(package, "mod", self.BODY)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with protoguard.install_import_hook(package.name, mode="off") as hook:
                importlib.import_module(module)
        assert hook.findings == []

    def test_override_wins(self, package: Path) -> None:
        """An override() block around the import wins over the hook's mode."""
        module = write(package, "mod", self.BODY)
        with (
            protoguard.install_import_hook(package.name, mode="strict") as hook,
            protoguard.override(mode="off"),
        ):
            importlib.import_module(module)
        assert hook.findings == []

    def test_invalid_arguments(self) -> None:
        """A bad mode or no package at all is a clear error."""
        with pytest.raises(protoguard.ConfigurationError, match="not a protoguard mode"):
            protoguard.install_import_hook("x", mode="loud")
        with pytest.raises(TypeError, match="at least one package"):
            protoguard.install_import_hook()
        with pytest.raises(TypeError, match="package names"):
            protoguard.install_import_hook(".relative")


class TestHandle:
    """The handle: uninstall(), the context manager, modules imported before."""

    def test_uninstall(self, package: Path) -> None:
        """After uninstall() the finder is gone and imports are not checked."""
        # Identity, not the class name: virtualenv puts a `_Finder` of its own there.
        finder = _importhook._registry.finder
        hook = protoguard.install_import_hook(package.name)
        assert sys.meta_path[0] is finder
        hook.uninstall()
        hook.uninstall()  # harmless twice
        assert finder not in sys.meta_path
        module = write(package, "mod", TestModes.BODY)
        importlib.import_module(module)
        assert hook.findings == []

    def test_already_imported_modules_are_checked(self, package: Path) -> None:
        """Installing the hook checks the package's modules that are already imported."""
        module = write(package, "mod", TestModes.BODY)
        importlib.import_module(module)
        with (
            pytest.warns(protoguard.ProtocolWarning),
            protoguard.install_import_hook(package.name) as hook,
        ):
            pass
        assert [f.code for f in hook.findings] == ["PG101", "PG102"]

    def test_module_keeps_its_real_loader(self, package: Path) -> None:
        """The module's __loader__ and __spec__.loader are the real loader, during and after."""
        module = write(
            package,
            "mod",
            """
            LOADER_WHILE_RUNNING = type(__loader__).__name__
            """,
        )
        with protoguard.install_import_hook(package.name):
            imported = importlib.import_module(module)
        assert imported.LOADER_WHILE_RUNNING == "SourceFileLoader"
        assert type(imported.__loader__).__name__ == "SourceFileLoader"
        assert imported.__spec__.loader is imported.__loader__

    def test_import_time_warnings_point_at_the_import(self, package: Path) -> None:
        """A module that warns as it is imported, with stacklevel=2, means the line that
        imported it: under the hook too, the warning is that line's, not protoguard's."""
        write(
            package,
            "noisy",
            """
            import warnings

            warnings.warn("noisy.old_api is deprecated", DeprecationWarning, stacklevel=2)
            """,
        )
        module = write(package, "importer", "x = 1\nfrom . import noisy  # imports noisy\n")
        with (
            warnings.catch_warnings(record=True) as caught,
            protoguard.install_import_hook(package.name),
        ):
            warnings.simplefilter("always")
            importlib.import_module(module)
        assert [(w.filename, w.lineno, str(w.message)) for w in caught] == [
            (str(package / "importer.py"), 2, "noisy.old_api is deprecated")
        ]

    def test_tracebacks_show_the_loaders_lines(self, package: Path) -> None:
        """The loader's frame, which warnings skip, is a real file: a traceback through it
        (strict mode's error, raised as the module is checked) names the file and quotes
        its line."""
        module = write(package, "mod", TestModes.BODY)
        with (
            protoguard.install_import_hook(package.name, mode="strict"),
            pytest.raises(protoguard.ProtocolError) as info,
        ):
            importlib.import_module(module)
        frames = [
            frame
            for frame in traceback.extract_tb(info.value.__traceback__)
            if Path(frame.filename).name == "_importlib_bootstrap.py"
        ]
        assert [(frame.name, frame.line) for frame in frames] == [
            ("exec_module", "self._executed(module)")
        ]

    @pytest.mark.skipif(
        sys.version_info < (3, 11),
        reason="before 3.11 a bare raise re-raises the traceback its except clause caught",
    )
    def test_a_modules_exception_has_its_traceback_as_without_the_hook(self, package: Path) -> None:
        """An exception a module raises as it is imported, under the hook, is the one it
        raised, with the traceback it has without protoguard: neither the loader's frame
        nor the importlib frames Python hides (an import statement hides them all)."""
        module = write(
            package,
            "mod",
            """
            try:
                {}["missing"]
            except KeyError as error:
                raise ValueError("boom", 2) from error
            """,
        )

        def raised() -> BaseException:
            with pytest.raises(ValueError, match="boom") as info:
                exec(f"import {module}", {})
            return info.value

        plain = raised()
        with protoguard.install_import_hook(package.name):
            hooked = raised()
        assert hooked.args == ("boom", 2)
        assert type(hooked.__cause__) is KeyError
        assert hooked.__context__ is hooked.__cause__
        frames = [
            (f.filename, f.lineno, f.name) for f in traceback.extract_tb(hooked.__traceback__)
        ]
        assert frames == [
            (f.filename, f.lineno, f.name) for f in traceback.extract_tb(plain.__traceback__)
        ]
        assert frames[-1] == (str(package / "mod.py"), 5, "<module>")

    def test_guard_this_package(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """guard_this_package() in __init__.py checks the submodules and __init__ itself."""
        root = tmp_path / "pgguarded"
        root.mkdir()
        (root / "deps.py").write_text(PROVIDERS)
        (root / "__init__.py").write_text(
            textwrap.dedent(
                """
                import protoguard
                HOOK = protoguard.guard_this_package(mode="on")
                from .deps import get_db
                from . import handlers

                async def in_init():
                    async for s in get_db():
                        pass
                """
            )
        )
        (root / "handlers.py").write_text(
            "from .deps import gen_db\n\n"
            "async def h():\n    async with gen_db() as s:\n        pass\n"
        )
        (root / "later.py").write_text("")
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setenv("PROTOGUARD_CACHE_DIR", str(tmp_path / "cache"))
        try:

            def import_package_then_a_module() -> types.ModuleType:
                package = importlib.import_module("pgguarded")
                importlib.import_module("pgguarded.later")
                return package

            with pytest.warns(protoguard.ProtocolWarning):
                package = import_package_then_a_module()
            assert sorted((Path(f.path).name, f.code) for f in package.HOOK.findings) == [
                ("__init__.py", "PG101"),
                ("handlers.py", "PG102"),
            ]
        finally:
            package.HOOK.uninstall()
            for name in [m for m in sys.modules if m.startswith("pgguarded")]:
                del sys.modules[name]

    @pytest.mark.parametrize("as_error", ["strict", "-W error"])
    def test_every_waiting_module_is_checked(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_error: str
    ) -> None:
        """Two packages still running when the hook was installed (a package and its
        subpackage, which installs the hook) wait to be checked. A finding reported as an
        error in the first must not lose the second: both are checked, and the error
        raised from the next import lists both; hook.findings has both."""
        root = tmp_path / "pgnested"
        (root / "inner").mkdir(parents=True)
        (root / "deps.py").write_text(PROVIDERS)
        (root / "__init__.py").write_text(
            textwrap.dedent(
                """
                from .deps import get_db
                from . import inner

                async def in_outer():
                    async for s in get_db():
                        pass
                """
            )
        )
        mode = "strict" if as_error == "strict" else "on"
        (root / "inner" / "__init__.py").write_text(
            textwrap.dedent(
                f"""
                import protoguard
                HOOK = protoguard.install_import_hook("pgnested", mode={mode!r})
                from ..deps import gen_db

                async def in_inner():
                    async with gen_db() as s:
                        pass
                """
            )
        )
        (root / "later.py").write_text("")
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setenv("PROTOGUARD_CACHE_DIR", str(tmp_path / "cache"))
        expected = pytest.raises(
            protoguard.ProtocolError if mode == "strict" else protoguard.ProtocolWarning
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                importlib.import_module("pgnested")  # both wait: nothing is reported yet
                hook = sys.modules["pgnested.inner"].HOOK
                assert hook.findings == []
                with expected as info:
                    importlib.import_module("pgnested.later")
            assert sorted((Path(f.path).parent.name, f.code) for f in hook.findings) == [
                ("inner", "PG102"),
                ("pgnested", "PG101"),
            ]
            # Strict mode's error, or the warning that lists the findings -W error made
            # errors: both, each at its file and line.
            message = str(info.value)
            assert message.startswith("2 wrong protocol(s) in pgnested, pgnested.inner:")
            assert f"{root / '__init__.py'}:6:20: [PG101] 'async for' over get_db()" in message
            assert f"{root / 'inner' / '__init__.py'}:7:16: [PG102]" in message
        finally:
            for hook in list(_importhook._registry.hooks):
                hook.uninstall()
            for name in [m for m in sys.modules if m.startswith("pgnested")]:
                del sys.modules[name]

    @pytest.mark.parametrize("target", ["pgrun.main", "pgrun"])
    def test_python_dash_m(self, tmp_path: Path, target: str) -> None:
        """`python -m pkg.mod` (or `-m pkg`, its __main__.py) in a package that guards
        itself: runpy imports the package, then takes the module's code from the loader
        and runs it as __main__ itself. __main__ gets the real loader (not protoguard's),
        and the package's __init__, done by then, is checked."""
        root = tmp_path / "pgrun"
        root.mkdir()
        (root / "__init__.py").write_text(
            textwrap.dedent(
                """
                import protoguard
                protoguard.guard_this_package(mode="on")
                from contextlib import asynccontextmanager

                @asynccontextmanager
                async def get_db():
                    yield "session"

                async def in_init():
                    async for s in get_db():  # the misuse
                        pass
                """
            )
        )
        main = (
            "import sys\n"
            "loaders = (__loader__, __spec__.loader, sys.modules['__main__'].__loader__)\n"
            "print(*(type(loader).__name__ for loader in loaders))\n"
        )
        (root / "main.py").write_text(main)
        (root / "__main__.py").write_text(main)
        env = dict(os.environ, PROTOGUARD_CACHE_DIR=str(tmp_path / "cache"))
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
        result = subprocess.run(
            [sys.executable, "-m", target], env=env, capture_output=True, text=True, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["SourceFileLoader"] * 3
        init = root / "__init__.py"
        line = line_of(root, "__init__", "# the misuse")
        assert result.stderr.startswith(f"{init}:{line}: ProtocolWarning: [PG101] 'async for'")

    def test_guard_this_package_outside_a_package(self) -> None:
        """Called from a script's __main__, it says what to use instead."""
        namespace = {"__name__": "__main__"}
        with pytest.raises(TypeError, match="install_import_hook"):
            exec("import protoguard; protoguard.guard_this_package()", namespace)


class TestHooksThatMatchOneModule:
    """A module two hooks check (the application's, and the one its package installs
    itself; protoguard check's or the pytest plugin's, and the package's): every hook
    records its findings, from one scan; the findings are reported once, as the
    strictest of the hooks that report asks; and not at all where a hook that only
    collects (``report=False``, protoguard check's and the pytest plugin's) checks the
    module, which lists them itself."""

    HANDLERS = """
        from .deps import get_db

        async def handler():
            async for db in get_db():
                pass
        """

    def guarded(self, package: Path, call: str) -> str:
        """The package installs a hook of its own, ``protoguard.<call>``, then imports
        its module ``handlers`` and its misuse."""
        (package / "__init__.py").write_text(
            f"import protoguard\nHOOK = protoguard.{call}\nfrom . import handlers\n"
        )
        write(package, "handlers", self.HANDLERS)
        return package.name

    def places(self, hook: _importhook.ImportHook) -> list[tuple[str, int, int, str]]:
        return [(Path(f.path).name, f.line, f.col, f.code) for f in hook.findings]

    @pytest.mark.parametrize(
        "call",
        [
            'guard_this_package(mode="strict")',
            "guard_this_package()",
            'install_import_hook(__name__, mode="strict")',
        ],
    )
    def test_a_collecting_hook_is_never_preempted(self, package: Path, call: str) -> None:
        """Under a hook that only collects, the package's own hook neither raises (strict
        mode, -W error) nor warns: the import succeeds, and both hooks hold the finding."""
        collector = _importhook.ImportHook((package.name,), "on", report=False).install()
        try:
            with warnings.catch_warnings(record=True) as warned:
                warnings.simplefilter("error")
                importlib.import_module(self.guarded(package, call))
            assert warned == []
            own = sys.modules[package.name].HOOK
            line = line_of(package, "handlers", "async for")
            assert self.places(collector) == [("handlers.py", line, 21, "PG101")]
            assert self.places(own) == self.places(collector)
            assert collector.findings[0].fix == "async with get_db() as db:"
        finally:
            for hook in list(_importhook._registry.hooks):
                hook.uninstall()

    def test_a_collecting_hook_in_mode_off_collects_nothing(self, package: Path) -> None:
        """A hook that only collects, in mode off, checks nothing: the package's own hook
        reports as without it."""
        collector = _importhook.ImportHook((package.name,), "off", report=False).install()
        try:
            with pytest.raises(protoguard.ProtocolError, match=r"\[PG101\] 'async for'"):
                importlib.import_module(self.guarded(package, 'guard_this_package(mode="strict")'))
            assert collector.findings == []
        finally:
            for hook in list(_importhook._registry.hooks):
                hook.uninstall()

    def test_the_strictest_reporting_hook_decides(self, package: Path) -> None:
        """The application's strict hook and the package's hook in mode on: the import
        raises one ProtocolError listing the finding, which is not warned too; each
        hook holds it."""
        outer = protoguard.install_import_hook(package.name, mode="strict")
        try:
            with warnings.catch_warnings(record=True) as warned:
                warnings.simplefilter("always")
                with pytest.raises(protoguard.ProtocolError) as info:
                    importlib.import_module(self.guarded(package, 'guard_this_package(mode="on")'))
            assert warned == []
            line = line_of(package, "handlers", "async for")
            assert str(info.value).startswith(
                f"1 wrong protocol(s) in {package.name}.handlers:\n"
                f"{package / 'handlers.py'}:{line}:21: [PG101] 'async for' over get_db()"
            )
            assert info.value.fix == "async with get_db() as db:"
            assert self.places(outer) == [("handlers.py", line, 21, "PG101")]
            (own,) = [hook for hook in _importhook._registry.hooks if hook is not outer]
            assert self.places(own) == self.places(outer)
        finally:
            for hook in list(_importhook._registry.hooks):
                hook.uninstall()

    def test_warned_once(self, package: Path) -> None:
        """Two hooks in mode on: one warning per finding, not one per hook."""
        outer = protoguard.install_import_hook(package.name, mode="on")
        try:
            with warnings.catch_warnings(record=True) as warned:
                warnings.simplefilter("always")
                importlib.import_module(self.guarded(package, "guard_this_package()"))
            line = line_of(package, "handlers", "async for")
            assert [(Path(w.filename).name, w.lineno, w.category) for w in warned] == [
                ("handlers.py", line, protoguard.ProtocolWarning)
            ]
            assert str(warned[0].message).startswith("[PG101] 'async for' over get_db()")
            own = sys.modules[package.name].HOOK
            assert self.places(outer) == self.places(own) == [("handlers.py", line, 21, "PG101")]
        finally:
            for hook in list(_importhook._registry.hooks):
                hook.uninstall()


class TestRobustness:
    """It never breaks an import."""

    def test_source_that_cannot_be_read(self, package: Path) -> None:
        """A module whose source vanished or cannot be decoded after it ran: no finding."""
        module = write(package, "mod", TestModes.BODY)
        imported = importlib.import_module(module)
        Path(imported.__file__).write_bytes(b"\xff\xfe not utf-8 \x00")
        assert _importhook.scan_module(imported, thorough=True) == []
        Path(imported.__file__).unlink()
        assert _importhook.scan_module(imported, thorough=True) == []

    @pytest.mark.skipif(
        sys.version_info < (3, 10), reason="3.9's zipimport has no exec_module to stand before"
    )
    def test_a_package_imported_from_a_zip_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A zipapp's or an egg's modules have no file on disk: their source is read
        through their loader (zipimport's), and checked as any other's, not skipped."""
        name = f"zipped_{abs(hash(str(tmp_path))) % 10**8}"
        archive = tmp_path / "app.zip"
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr(f"{name}/__init__.py", "")
            zipped.writestr(f"{name}/deps.py", PROVIDERS)
            zipped.writestr(f"{name}/mod.py", textwrap.dedent(TestModes.BODY))
        monkeypatch.syspath_prepend(str(archive))
        monkeypatch.setenv("PROTOGUARD_CACHE_DIR", str(tmp_path / "cache"))
        hook = _importhook.ImportHook((name,), "on", report=False)
        hook.install()
        try:
            module = importlib.import_module(f"{name}.mod")
        finally:
            hook.uninstall()
            for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[loaded]
        assert type(module.__loader__).__name__ == "zipimporter"
        assert [(f.code, f.line, f.path) for f in hook.findings] == [
            ("PG101", 5, str(archive / name / "mod.py")),
            ("PG102", 7, str(archive / name / "mod.py")),
        ]

    def test_a_fresh_import_of_importlib(self, tmp_path: Path) -> None:
        """importlib guarded and imported afresh (test.support's import_fresh_module,
        which unittest's own tests use): the check imports nothing in the middle of it,
        and warns of no internal failure."""
        code = textwrap.dedent(
            """
            import sys, warnings
            import protoguard

            warnings.simplefilter("error")
            hook = protoguard.install_import_hook("importlib", mode="on")
            saved = {k: sys.modules.pop(k) for k in list(sys.modules)
                     if k == "importlib" or k.startswith("importlib.")}
            blocked = ("_frozen_importlib", "_frozen_importlib_external")
            saved.update({k: sys.modules[k] for k in blocked})
            sys.modules.update(dict.fromkeys(blocked))  # as import_fresh_module(blocked=)
            try:
                fresh = __import__("importlib")
                print(hasattr(fresh, "util"))
            finally:
                for k in [k for k in sys.modules if k == "importlib" or k.startswith("importlib.")]:
                    del sys.modules[k]
                sys.modules.update(saved)
            """
        )
        env = dict(os.environ, PROTOGUARD_CACHE_DIR=str(tmp_path / "cache"))
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "False"  # what it is without protoguard
        assert result.stderr == ""

    def test_source_that_does_not_parse_any_more(self, package: Path) -> None:
        """Source changed on disk into something that does not parse: skipped."""
        module = write(package, "mod", TestModes.BODY)
        imported = importlib.import_module(module)
        Path(imported.__file__).write_text("def broken(:\n")
        assert _importhook.scan_module(imported, thorough=True) == []

    ESCAPES = r"""
    import re
    from .deps import get_db

    PATTERN = re.compile("\d+")

    async def handler():
        async for s in get_db():
            pass
        async for s in get_db(pattern="\d"):
            pass
    """

    def test_source_that_warns_as_it_parses(self, package: Path, tmp_path: Path) -> None:
        """An invalid escape sequence warns as it is compiled (SyntaxWarning from 3.12,
        DeprecationWarning before). That warning is the user's import's to give:
        protoguard's own parses give none, and where warnings are errors (-W error,
        filterwarnings = error) they lose no finding, parsed or from the scan cache."""
        module = write(package, "mod", self.ESCAPES)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imported = importlib.import_module(module)
        expected = [
            ("PG101", line_of(package, "mod", "in get_db():"), "async with get_db() as s:"),
            (
                "PG101",
                line_of(package, "mod", "get_db(pattern="),
                r'async with get_db(pattern="\d") as s:',
            ),
        ]
        directory = str(tmp_path / "scan-cache")
        # No cache (parsed), a new one (parsed, then cached), one that has the entry.
        for cache in (None, _importhook.ScanCache(directory), _importhook.ScanCache(directory)):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                found = _importhook.scan_module(imported, cache=cache)
            assert [(f.code, f.line, f.fix) for f in found] == expected
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                found = _importhook.scan_module(imported, cache=cache)
            assert [str(w.message) for w in caught] == []
            assert [(f.code, f.line, f.fix) for f in found] == expected

    def test_module_that_raises(self, package: Path) -> None:
        """A module whose own code fails fails as it would without protoguard."""
        module = write(package, "mod", "raise ValueError('boom')\n")
        with protoguard.install_import_hook(package.name), pytest.raises(ValueError, match="boom"):
            importlib.import_module(module)

    @staticmethod
    def _with_a_broken_scanner(package: Path, monkeypatch: pytest.MonkeyPatch) -> str:
        """A module to import, with the hook's scanner made to fail (a fault injected)."""

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("scanner bug")

        module = write(package, "mod", TestModes.BODY)
        importlib.import_module(f"{package.name}.deps")
        monkeypatch.setattr(_importhook, "scan_module", broken)
        return module

    def test_internal_failure_is_one_warning(
        self, package: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If the scanner itself fails, one warning, and the module is imported."""
        module = self._with_a_broken_scanner(package, monkeypatch)
        with (
            protoguard.install_import_hook(module),
            pytest.warns(protoguard.ProtocolWarning, match="could not check module") as record,
        ):
            imported = importlib.import_module(module)
        assert len(record) == 1
        assert repr(module) in str(record[0].message)
        assert imported.handler

    def test_internal_failure_where_warnings_are_errors(
        self, package: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Under -W error an internal failure still does not break the import."""
        module = self._with_a_broken_scanner(package, monkeypatch)
        with warnings.catch_warnings(), protoguard.install_import_hook(module):
            warnings.simplefilter("error")
            imported = importlib.import_module(module)
        assert imported.handler

    def test_internal_failure_under_check_is_exit_2(
        self, package: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`protoguard check` does not call a module it failed to check clean: the warning,
        a line naming it, and exit status 2 (it said "No wrong protocols.", exit 0)."""
        from protoguard import _cli

        module = self._with_a_broken_scanner(package, monkeypatch)
        with pytest.warns(protoguard.ProtocolWarning, match="could not check module"):
            status = _cli.run([module])
        assert status == 2
        err = capsys.readouterr().err
        assert (
            f"protoguard check: protoguard failed to check 1 module(s), {module}, and said why "
            "in a warning above; they were imported but not checked. That is a bug in "
            "protoguard: please report it, with the warning."
        ) in err

    def test_sqlalchemy_fastapi_and_friends(self, tmp_path: Path) -> None:
        """The hook on sqlalchemy, fastapi, starlette, pydantic, httpx and anyio at once, in
        strict mode: no crash, no finding and no warning of ours (an internal failure of
        the hook would be one)."""
        code = textwrap.dedent(
            """
            import warnings
            import protoguard
            with warnings.catch_warnings(record=True) as caught:
                # Record, not raise: the libraries' own deprecation warnings (Starlette's
                # about httpx on Python < 3.11, say) are not what this test is about.
                warnings.simplefilter("always")
                hook = protoguard.install_import_hook(
                    "sqlalchemy", "fastapi", "starlette", "pydantic", "httpx", "anyio",
                    mode="strict",
                )
                import sqlalchemy, sqlalchemy.orm, sqlalchemy.ext.asyncio
                import fastapi, fastapi.testclient, starlette.applications
                import pydantic, httpx, anyio
            ours = [w for w in caught if issubclass(w.category, protoguard.ProtocolWarning)]
            print(len(hook.findings), len(ours))
            """
        )
        env = dict(os.environ, PROTOGUARD_CACHE_DIR=str(tmp_path / "cache"))
        env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pyc")
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for _ in range(2):  # cold, then from the caches
            result = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() == "0 0"
            assert result.stderr == ""


class TestBytecode:
    """The .pyc files are byte for byte what Python alone writes."""

    def test_pyc_identical(self, tmp_path: Path) -> None:
        """Import a package with and without the hook into two pycache trees; compare."""
        package = tmp_path / "pgbytes"
        package.mkdir()
        (package / "__init__.py").write_text("from . import deps, mod\n")
        (package / "deps.py").write_text(PROVIDERS)
        (package / "mod.py").write_text(textwrap.dedent(TestModes.BODY))
        trees = {}
        for side in ("plain", "hook"):
            prefix = tmp_path / f"pyc-{side}"
            # Both sides import the same modules first: before Python 3.11, marshal's
            # output depends on reference counts, so the two processes must be alike.
            install = "protoguard.install_import_hook('pgbytes')" if side == "hook" else ""
            code = (
                "import protoguard, sqlalchemy, warnings\n"
                "warnings.simplefilter('ignore')\n"
                f"{install}\n"
                "import pgbytes"
            )
            env = dict(os.environ, PYTHONPYCACHEPREFIX=str(prefix))
            env["PROTOGUARD_CACHE_DIR"] = str(tmp_path / "cache")
            env["PYTHONPATH"] = str(tmp_path)
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            trees[side] = {
                path.relative_to(prefix): path.read_bytes()
                for path in prefix.rglob("*.pyc")
                if "pgbytes" in str(path)
            }
        assert len(trees["plain"]) == 3
        assert trees["plain"] == trees["hook"]

    def test_no_pyc_of_our_own(self, package: Path, tmp_path: Path) -> None:
        """The hook writes into its cache directory only, never next to the sources."""
        module = write(package, "mod", TestModes.BODY)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with protoguard.install_import_hook(package.name):
                importlib.import_module(module)
        written = sorted(p.name for p in (tmp_path / "cache").iterdir())
        assert written
        assert all(name.endswith(".pgscan") for name in written)
        pycache = package / "__pycache__"
        if pycache.exists():
            tags = {p.name.split(".")[1] for p in pycache.iterdir()}
            assert tags == {sys.implementation.cache_tag}


def covered(use: _scan.Use, calls: list[_scan.IndexedCall]) -> bool:
    """Whether the text index has the parser's use (or something that makes it parse)."""
    if (_scan.UNSURE, (), ()) in calls:
        return True
    if use.protocol == _scan.DEPENDS:
        return (_scan.DEPENDS, use.chain, use.via) in calls or (
            _scan.DEPENDS_UNSURE,
            (),
            use.via,
        ) in calls
    return (use.protocol, use.chain, ()) in calls or (_scan.UNSURE, use.chain, ()) in calls


class TestIndex:
    """The text index the hook reads first finds every use the parser finds."""

    LAYOUTS: ClassVar[list[str]] = [
        "async for s in get_db():\n    pass",
        "async for (a,\n           b) in get_db():\n    pass",
        "async for (\n    a,\n    b,\n) in get_db():\n    pass",
        "for s in \\\n        sync_db():\n    pass",
        "async \\\n    for s in sync_gen_db():\n    pass",
        "x = [s\n     async\n     for s in sync_gen_db()]",
        "x = [s async for s in gen_db() for t in sync_gen_db()]",
        "x = {s: t for s in sync_db() for t in (get_db)()}",
        "async with get_db() as a, gen_db() as b:\n    pass",
        "async with (\n    get_db() as a,  # a comment, with (\n    gen_db() as b,\n):\n    pass",
        "async with open('a:b', 'r') as f, gen_db() as b:\n    pass",
        "async \\\n    with sync_db() as s:\n    pass",
        "with (sync_db)() as s, (deps.get_db)() as t:\n    pass",
        "async with await make_session() as s:\n    pass",
        "s = await (get_db)()",
        "s = await (\n    deps .\n    get_db\n)()",
        "s = await ((deps).get_db)()",
        "s = await deps.Repo.session()",
        "s = await d.manager.session()",
        'async with conn("""\n  long: SQL ( with\n""") as r, get_db() as s:\n    pass',
        "f(Depends(get_db), Depends(\n    deps.sync_db\n))",
        "f(fastapi.Depends(dependency=get_db), x=Depends(use_cache=False, dependency=sync_db))",
        "f(Depends((get_db)), Security(get_db, scopes=['a']))",
        "f(Depends(lambda: 1, dependency=get_db))",
        "async for s in get_db(): pass  # with a comment: for x in y",
        "if x in get_db():\n    pass",
        "await get_db().execute(q)",
        "r = await (\n    get_db()  # a comment (with a paren\n    .execute(q)\n)",
        "r = (await (get_db)().execute(q))",
        "r = (deps.get_db)(\"a(\", ')').scalars()",
        "db = get_db()\nawait db.execute(q)",
        "db: Annotated[T, F(a=1)] = deps.get_db()\n# c\ndb  .  commit()",
        "if q: db = get_db()\nawait (db).commit()",
        "x = 1; db = \\\n    get_db()\nawait db\\\n    .add(q)",
        "cm = get_db()\nasync with cm as a:\n    pass\nasync with cm as b:\n    pass",
        "cm: T = (deps\n    .get_db)()\nfor x in y:\n"
        "    async with (\n        cm as a\n    ):\n        pass",
        "cm = \\\n    sync_db()  # with cm\nwith cm:\n"
        "    with \\\n            cm as b:\n        pass",
    ]

    @pytest.mark.parametrize("body", LAYOUTS)
    def test_layouts(self, body: str) -> None:
        """Each layout's parsed uses are all in the index."""
        source = "async def handler():\n" + textwrap.indent(body, "    ") + "\n"
        uses = _scan.parse_uses(source)
        assert uses or "x in get_db" in body
        calls = _index.index_calls(source)
        assert [use for use in uses if not covered(use, calls)] == []
        # A session attribute on a call the text reads back: told, not parsed always
        # (but for a parenthesized callable, `(get_db)().execute`).
        assert (_scan.UNSURE, (), ()) not in calls or "get_db)(" in body

    @pytest.mark.parametrize("body", LAYOUTS)
    def test_layouts_after_line_separators(self, body: str) -> None:
        """A page break, and separators str.splitlines would end a line at (in a comment,
        in a string), do not hide a use from the index."""
        source = (
            "\f\n# \v \x1c \x85 \u2028 \u2029\nx = '\u2028'\nasync def handler():\n"
            + textwrap.indent(body, "    ")
            + "\n"
        )
        uses = _scan.parse_uses(source)
        assert uses or "x in get_db" in body
        calls = _index.index_calls(source)
        assert [use for use in uses if not covered(use, calls)] == []

    @pytest.mark.parametrize("package_name", ["fastapi", "starlette", "asyncio", "sqlalchemy"])
    def test_real_packages(self, package_name: str) -> None:
        """Every use the parser finds in a real package's files is in the index."""
        package_path = Path(importlib.import_module(package_name).__file__).parent
        missed = []
        for path in sorted(package_path.rglob("*.py")):
            source = _importhook._read_source(str(path))
            try:
                uses = _scan.parse_uses(source or "", str(path))
            except SyntaxError:
                continue
            calls = _index.index_calls(source or "")
            missed.extend((path.name, use) for use in uses if not covered(use, calls))
        assert missed == []

    def test_a_long_line_is_read_back_a_bounded_way(self) -> None:
        """A module of data on one line, many `in f(` on it: each `for` is looked for
        a bounded way back, not from the line's start (which took time in the square of
        the line's length: seconds for a line of 80 KB). The uses are all still in the
        index; a `for` whose line starts farther back than that is not told, UNSURE
        (the module is parsed if `f` is a provider)."""
        items = ", ".join(["[x for x in get_db()]", *(["[y async for y in f(1)]"] * 2000)])
        source = f"async def handler():\n    return [{items}]\n"
        calls = _index.index_calls(source)
        uses = _scan.parse_uses(source)
        assert len(uses) == 2001
        assert [use for use in uses if not covered(use, calls)] == []
        assert (_scan.UNSURE, ("f",), ()) in calls  # the line's start: too far back
        assert (k.FOR, ("get_db",), ()) in calls  # near it: told as before
        # Near the line's start in a module of several lines: told as before.
        short = "async def handler():\n    return [[y async for y in f(1)]]\n"
        assert _index.index_calls(short) == [(k.ASYNC_FOR, ("f",), ())]

    def test_long_chain_alone(self, package: Path) -> None:
        """A three-part chain is found even when nothing else in the module is a use."""
        found = check(
            package,
            "mod",
            """
            from . import deps as d

            async def handler():
                async for s in d.manager.session():
                    pass
            """,
        )
        assert [f.code for f in found] == ["PG101"]

    def test_cached_index_then_parse(self, package: Path) -> None:
        """A module imported again with its index cached, after its provider changed kind,
        is parsed then, and the misuse found."""
        module = write(
            package,
            "mod",
            """
            from .prov import get_db

            async def handler():
                async with get_db() as s:
                    pass
            """,
        )
        providers = (
            "from contextlib import asynccontextmanager\n\n"
            "@asynccontextmanager\nasync def get_db():\n    yield 1\n",
            "async def get_db():\n    yield 1\n",
        )
        codes = []
        for provider in providers:  # an async context manager, then an async generator
            write(package, "prov", provider)
            for name in (module, f"{package.name}.prov"):
                sys.modules.pop(name, None)
            hook = _importhook.ImportHook((package.name,), "on", report=False)
            with hook.install():
                importlib.import_module(module)
            codes.append([f.code for f in hook.findings if f.module == module])
        assert codes == [[], ["PG102"]]

    def test_no_parse_without_a_provider(
        self, package: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A module whose indexed calls resolve to no provider is not parsed at all."""

        def no_parse(*args: object, **kwargs: object) -> None:
            raise AssertionError("parsed")

        monkeypatch.setattr(_scan, "parse_uses", no_parse)
        found = check(
            package,
            "mod",
            """
            from .deps import get_db

            def helper():
                return []

            async def handler():
                async with get_db() as s:
                    for x in helper():
                        await other()
            """,
        )
        assert found == []


class TestCache:
    """Per source file, keyed by path, size, mtime and protoguard's version."""

    def test_round_trip_and_invalidation(self, tmp_path: Path) -> None:
        """A stored entry comes back; a changed file or version misses."""
        source = tmp_path / "m.py"
        source.write_text("x = 1\n")
        cache = _importhook.ScanCache(str(tmp_path / "cache"))
        use = _scan.Use("async for", ("get_db",), (1, 2, 1, 10), (1, 0, 1, 1))
        stat = os.stat(source)
        assert cache.get(str(source), stat) is None
        cache.put(str(source), stat, [use])
        assert cache.get(str(source), stat) == [use]
        source.write_text("x = 22\n")
        assert cache.get(str(source), os.stat(source)) is None

    def test_corrupt_entry_is_a_miss(self, tmp_path: Path) -> None:
        """A truncated or foreign cache file is ignored, not an error."""
        source = tmp_path / "m.py"
        source.write_text("x = 1\n")
        cache = _importhook.ScanCache(str(tmp_path / "cache"))
        stat = os.stat(source)
        cache.put(str(source), stat, [])
        (entry,) = (tmp_path / "cache").iterdir()
        entry.write_bytes(b"\x00garbage")
        assert cache.get(str(source), stat) is None

    def test_unwritable_cache_is_not_used(self, tmp_path: Path) -> None:
        """A cache directory that cannot be created leaves scanning working."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        cache = _importhook.ScanCache(str(blocker / "cache"))
        source = tmp_path / "m.py"
        source.write_text("x = 1\n")
        cache.put(str(source), os.stat(source), [])
        assert cache.get(str(source), os.stat(source)) is None

    def test_bundle(self, tmp_path: Path) -> None:
        """With a group, entries also go to the group's bundle (written by flush()), which
        answers later lookups in one read, and a stale bundle entry is not used."""
        source = tmp_path / "m.py"
        source.write_text("x = 1\n")
        use = _scan.Use("async for", ("get_db",), (1, 2, 1, 10), (1, 0, 1, 1))
        cache = _importhook.ScanCache(str(tmp_path / "cache"))
        cache.put(str(source), os.stat(source), [use], "pkg")
        cache.flush()
        for entry in (tmp_path / "cache").iterdir():
            if "bundle" not in entry.name:
                entry.unlink()  # only the bundle is left
        later = _importhook.ScanCache(str(tmp_path / "cache"))
        assert later.lookup(str(source), os.stat(source), "pkg") == ([use], None)
        assert later.get(str(source), os.stat(source)) is None  # no group: no bundle
        source.write_text("x = 22\n")
        assert later.lookup(str(source), os.stat(source), "pkg") == (None, None)

    def test_a_directory_under_home(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """PROTOGUARD_CACHE_DIR="~/pgcache" is in the home directory, as a shell would have
        it, not a directory named "~" in the working directory."""
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        monkeypatch.setenv("USERPROFILE", str(tmp_path / "home"))  # Windows' home
        monkeypatch.setenv("PROTOGUARD_CACHE_DIR", os.path.join("~", "pgcache"))
        monkeypatch.chdir(tmp_path)
        assert _importhook.default_cache_dir() == str(tmp_path / "home" / "pgcache")
        source = tmp_path / "m.py"
        source.write_text("x = 1\n")
        _importhook.ScanCache().put(str(source), os.stat(source), [])
        assert (tmp_path / "home" / "pgcache").is_dir()
        assert not (tmp_path / "~").exists()

    def test_a_finding_parses_its_statement_alone(
        self, package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A finding in a large module is written from its top-level statement alone: the
        module is parsed once, for its uses (and not at all when they are cached), and
        what the fix is read from is that statement's tree, not the module's."""
        filler = "".join(
            f"\n\ndef filler_{i}(a, b):\n    x = [a + i for i in range(b)]\n"
            f"    return lambda y: {{'k': x, 'v': (a, y)}}\n"
            for i in range(500)
        )
        body = textwrap.dedent(TestModes.BODY)
        module = write(package, "mod", body + filler)
        imported = importlib.import_module(module)
        size = len(body.strip().splitlines())
        module_lines = len((package / "mod.py").read_text().strip().splitlines())
        parsed: list[int] = []  # the lines of each source parsed, blank lines left out
        walked = [0]
        parse, walk = ast.parse, ast.walk

        def counting_parse(source: str, *args: object, **kwargs: object) -> ast.AST:
            parsed.append(len(source.strip().splitlines()))
            return parse(source, *args, **kwargs)  # type: ignore[call-overload,no-any-return]

        def counting_walk(node: ast.AST) -> Iterator[ast.AST]:
            for child in walk(node):
                walked[0] += 1
                yield child

        monkeypatch.setattr(ast, "parse", counting_parse)
        monkeypatch.setattr(ast, "walk", counting_walk)
        cache = _importhook.ScanCache(str(tmp_path / "scan-cache"))
        expected = [("PG101", "async with get_db() as s:"), ("PG102", "async for s in gen_db():")]
        for cached in (False, True):
            parsed.clear()
            walked[0] = 0
            found = _importhook.scan_module(imported, cache=cache)
            assert [(f.code, f.fix) for f in found] == expected
            whole = [lines for lines in parsed if lines > size]
            assert whole == ([] if cached else [module_lines])
            assert walked[0] < 200  # of the module's 18,000 nodes

    def test_default_directory(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """PROTOGUARD_CACHE_DIR wins; otherwise the platform's cache directory."""
        monkeypatch.setenv("PROTOGUARD_CACHE_DIR", "/somewhere")
        assert _importhook.default_cache_dir() == "/somewhere"
        monkeypatch.delenv("PROTOGUARD_CACHE_DIR")
        monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
        if sys.platform.startswith("linux"):
            assert _importhook.default_cache_dir() == os.path.join("/xdg", "protoguard")
