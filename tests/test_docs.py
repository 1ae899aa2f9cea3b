"""The examples in the docs run, and the messages the docs show are the ones protoguard
writes, so the docs cannot rot.

**The program of a page.** Every ```python fenced block of ``docs/*.md`` and
``README.md`` is executed. A page's blocks are one program, ``app.py``: its runnable
blocks in order, with one blank line between them, so the first line of the first block
is ``app.py:1``. The program is written to a temporary ``app.py`` (so ``linecache`` and
``inspect`` read it as they read any module) and each block is compiled at its own lines
of that file, then run in one namespace (a later block uses what an earlier one
defined), with ``asyncio`` already imported. A failing block is reported with its line in
the Markdown file.

**Skipping a block.** A block that is an illustration, not a program (a fragment, a
top-level ``async for``), is skipped when the last non-blank line before its opening
fence is the HTML comment ``<!-- no-run -->``. Skipped blocks are not part of
``app.py``.

**Shown output.** A ```text block whose last non-blank line before the fence is
``<!-- output -->`` shows output of the nearest runnable python block above it. What a
block outputs, in order: every ``ProtocolError`` protoguard builds while it runs (raised,
warned, logged or sent to ``sys.unraisablehook``), as the last line of a traceback shows
it (``protoguard.ProtocolError: [PG101] ...``, every line of the message), then,
if the block printed anything, everything it printed, as one piece. The output blocks
after a python block must equal some of its outputs, in the same order. Before the
comparison, the temporary path of ``app.py`` is replaced by ``app.py``, and task names
``Task-<n>`` are numbered by first appearance in each message (the counter behind them
is process-wide), and before Python 3.11 a `with` misuse's ``ProtocolAttributeError`` is
shown as the pages show it, ``ProtocolError``; nothing else is normalised, line numbers
included. Every text block
that shows a code such as ``[PG101]`` must be marked (the comment is invisible in the
built site and on GitHub).

**Regenerating.** ``python tests/test_docs.py [page.md ...]`` runs each page (all
pages by default) as ``app.py`` in a fresh interpreter and rewrites its marked output
blocks with what it produced. An output block is matched to the next output with the same
``[PGxxx]`` code (or the printed output, if it shows no code), so a new marked block
needs only the code on its first line.

Examples that show a misuse catch the ProtocolError and assert its code themselves. After
a page has run, the async and sync engines it left in its namespace are disposed, so no
connection is left for the garbage collector to warn about.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import io
import re
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

import pytest
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

import protoguard

try:
    from .conftest import FASTAPI_UNWRAPS
except ImportError:  # run as a script (python tests/test_docs.py), not as part of tests
    from conftest import FASTAPI_UNWRAPS  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
NO_RUN = "<!-- no-run -->"
OUTPUT = "<!-- output -->"
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_CODE = re.compile(r"\[PG\d{3}\]")
_TASK = re.compile(r"Task-(\d+)")


class Block(NamedTuple):
    """One fenced python block: its first line of code (1-based) and its source."""

    lineno: int
    source: str
    run: bool


class Fence(NamedTuple):
    """Any fenced block: language, first line of content (1-based), end line (the closing
    fence, 1-based), content, and the last non-blank line before the opening fence."""

    info: str
    lineno: int
    end: int
    source: str
    marker: str


def fences(path: Path) -> list[Fence]:
    """Every fenced block of a Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Fence] = []
    previous = ""  # the last non-blank line outside a block
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        fence, info = match.group("fence"), match.group("info").split()
        start = i + 1
        i = start
        while i < len(lines) and not (
            lines[i].strip().startswith(fence) and not lines[i].strip().strip(fence[0])
        ):
            i += 1
        source = "\n".join(lines[start:i]) + "\n"
        found.append(Fence(info[0] if info else "", start + 1, i + 1, source, previous))
        previous = ""
        i += 1
    return found


def blocks(path: Path) -> list[Block]:
    """The ```python blocks of a Markdown file, each marked run or not."""
    return [
        Block(f.lineno, f.source, f.marker != NO_RUN) for f in fences(path) if f.info == "python"
    ]


DOC_FILES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]


def _dispose_engines(namespace: dict[str, object]) -> None:
    for value in namespace.values():
        if isinstance(value, AsyncEngine):
            asyncio.run(value.dispose())
        elif isinstance(value, Engine):
            value.dispose()


def program(page: Path) -> tuple[str, list[tuple[Fence, int]]]:
    """The page's ``app.py`` and, for each runnable block, where it starts in it."""
    source = ""
    placed: list[tuple[Fence, int]] = []
    for fence in fences(page):
        if fence.info != "python" or fence.marker == NO_RUN:
            continue
        if source:
            source += "\n"
        placed.append((fence, source.count("\n") + 1))
        source += fence.source
    return source, placed


def normalise(text: str, app: str, *, tasks: bool = True) -> str:
    """The path of app.py as ``app.py``; task numbers by first appearance; before Python
    3.11, a `with` misuse's class as the pages show it (it is a ProtocolAttributeError
    there, as Python's own error is an AttributeError)."""
    text = text.replace(app, "app.py")
    if sys.version_info < (3, 11):
        text = _WITH_BEFORE_311.sub(r"protoguard.ProtocolError: [\1]", text)
    if not tasks:
        return text
    numbers: dict[str, str] = {}
    return _TASK.sub(
        lambda m: f"Task-{numbers.setdefault(m.group(1), str(len(numbers) + 1))}", text
    )


_WITH_BEFORE_311 = re.compile(r"protoguard\.ProtocolAttributeError: \[(PG10[256])\]")


class PageRun(NamedTuple):
    """What running a page produced: each runnable block's outputs, keyed by its line."""

    outputs: dict[int, list[str]]
    app: str


def run_page(page: Path, directory: Path) -> PageRun:
    """Run the page as ``directory/app.py``; collect each block's outputs (raw)."""
    source, placed = program(page)
    app = directory / "app.py"
    app.write_text(source, encoding="utf-8")
    built: list[protoguard.ProtocolError] = []
    original: Callable[..., None] = protoguard.ProtocolError.__init__

    def recording_init(self: protoguard.ProtocolError, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        built.append(self)

    namespace: dict[str, object] = {"__name__": "__docs__", "asyncio": asyncio}
    outputs: dict[int, list[str]] = {}
    protoguard.ProtocolError.__init__ = recording_init  # type: ignore[method-assign]
    try:
        for fence, start in placed:
            code = compile("\n" * (start - 1) + fence.source, str(app), "exec", dont_inherit=True)
            printed = io.StringIO()
            try:
                with contextlib.redirect_stdout(printed):
                    exec(code, namespace)
            except Exception as exc:
                raise AssertionError(
                    f"{page.name}: the block at line {fence.lineno} (app.py:{start}) failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            produced = [
                "".join(traceback.format_exception_only(type(e), e)).rstrip("\n") for e in built
            ]
            built.clear()
            if printed.getvalue():
                produced.append(printed.getvalue().rstrip("\n"))
            outputs[fence.lineno] = produced
    finally:
        protoguard.ProtocolError.__init__ = original  # type: ignore[method-assign]
        _dispose_engines(namespace)
    return PageRun(outputs, str(app))


def shown_outputs(page: Path) -> list[tuple[Fence, Optional[int]]]:
    """Each marked output block and the line of the runnable python block above it."""
    found: list[tuple[Fence, Optional[int]]] = []
    last: Optional[int] = None
    for fence in fences(page):
        if fence.info == "python" and fence.marker != NO_RUN:
            last = fence.lineno
        elif fence.marker == OUTPUT:
            found.append((fence, last))
    return found


def _code_of(text: str) -> Optional[str]:
    match = _CODE.search(text.split("\n", 1)[0])
    return match.group(0) if match else None


def check_page(page: Path, result: PageRun) -> list[str]:
    """The differences between the page's shown outputs and what it produced."""
    problems: list[str] = []
    remaining = {
        line: [normalise(text, result.app) for text in texts]
        for line, texts in result.outputs.items()
    }
    for fence, line in shown_outputs(page):
        where = f"{page.name}:{fence.lineno}"
        if fence.info != "text":
            problems.append(f"{where}: {OUTPUT} marks a ```{fence.info} block, not ```text")
            continue
        if line is None:
            problems.append(f"{where}: {OUTPUT} with no runnable python block above it")
            continue
        shown = normalise(fence.source.rstrip("\n"), result.app)
        candidates = remaining[line]
        if shown in candidates:
            del candidates[: candidates.index(shown) + 1]
            continue
        same_code = [c for c in candidates if _code_of(c) == _code_of(shown)] or candidates
        if not same_code:
            problems.append(f"{where}: the block at line {line} produced nothing (left) to show")
            continue
        closest = max(same_code, key=lambda c: difflib.SequenceMatcher(None, c, shown).ratio())
        diff = "\n".join(
            difflib.unified_diff(
                shown.splitlines(), closest.splitlines(), "shown", "produced", lineterm=""
            )
        )
        problems.append(f"{where}: not what the block at line {line} produced:\n{diff}")
    return problems


def update_page(page: Path, result: PageRun) -> int:
    """Rewrite the page's marked output blocks with what it produced; how many changed."""
    lines = page.read_text(encoding="utf-8").splitlines(keepends=True)
    remaining = {  # task names as they are: the page ran in a fresh interpreter
        line: [normalise(text, result.app, tasks=False) for text in texts]
        for line, texts in result.outputs.items()
    }
    pairs: list[tuple[Fence, str]] = []
    for fence, line in shown_outputs(page):
        candidates = remaining.get(line, []) if line is not None else []
        code = _code_of(fence.source)
        index = next((i for i, c in enumerate(candidates) if _code_of(c) == code), None)
        if index is not None:
            pairs.append((fence, candidates[index]))
            del candidates[: index + 1]
    changed = 0
    for fence, new in reversed(pairs):  # from the end: earlier line numbers stay valid
        if fence.source.rstrip("\n") != new:
            lines[fence.lineno - 1 : fence.end - 1] = [new + "\n"]
            changed += 1
    page.write_text("".join(lines), encoding="utf-8")
    return changed


# Pages whose examples run and show what FastAPI 0.123.5 and later do; they say what
# 0.123.4 and earlier do instead in words (nox runs the suite on 0.123.4 too).
_NEWEST_FASTAPI_PAGES = ("fastapi.md", "fastapi-check.md")


class TestDocs:
    """The pages' examples, and the messages the pages show."""

    @pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
    def test_examples_run_and_show_their_output(self, path: Path, tmp_path: Path) -> None:
        """Every python block runs, in order, as app.py; every shown output is produced."""
        if path.name in _NEWEST_FASTAPI_PAGES and not FASTAPI_UNWRAPS:
            pytest.skip("the page shows what FastAPI 0.123.5 and later do (it says so)")
        problems = check_page(path, run_page(path, tmp_path))
        assert not problems, (
            "\n\n".join(problems) + "\n\n(python tests/test_docs.py rewrites the shown output)"
        )

    def test_the_changelog_page_is_the_changelog(self) -> None:
        """docs/changelog.md is a link to CHANGELOG.md (it was once a file holding the
        link's text, which the site showed as its page)."""
        page = ROOT / "docs" / "changelog.md"
        assert page.read_text(encoding="utf-8") == (ROOT / "CHANGELOG.md").read_text(
            encoding="utf-8"
        )

    @pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
    def test_every_shown_message_is_marked(self, path: Path) -> None:
        """A text block showing a protoguard code is marked as output, so it is checked."""
        unmarked = [
            fence.lineno
            for fence in fences(path)
            if fence.info == "text" and fence.marker != OUTPUT and _CODE.search(fence.source)
        ]
        assert unmarked == []

    def test_every_page_has_examples_or_none_marked(self) -> None:
        """The block finder sees the blocks: the quickstart has runnable ones."""
        assert any(block.run for block in blocks(ROOT / "docs" / "index.md"))

    def test_no_run_marks_only_the_next_block(self, tmp_path: Path) -> None:
        """The marker skips exactly the block after it; other languages are ignored."""
        page = tmp_path / "page.md"
        page.write_text(
            "text\n\n<!-- no-run -->\n```python\nskipped\n```\n\n"
            "```console\n$ not python\n```\n\n```python\nrun = 1\n```\n",
            encoding="utf-8",
        )
        assert blocks(page) == [Block(5, "skipped\n", False), Block(13, "run = 1\n", True)]

    def test_a_changed_message_fails(self, tmp_path: Path) -> None:
        """Shown output is compared with the real message, its app.py lines included."""
        page = tmp_path / "page.md"
        code = (
            "```python\nimport contextlib\n\nimport protoguard\n\n\n@protoguard.provider\n"
            "@contextlib.asynccontextmanager\nasync def get_db():\n    yield None\n```\n\n"
            "<!-- no-run -->\n```python\nskipped\n```\n\n"
            "```python\nasync def main():\n    async for db in get_db():\n        pass\n\n\n"
            "try:\n    asyncio.run(main())\nexcept protoguard.ProtocolError:\n    pass\n```\n\n"
        )
        page.write_text(code + f"{OUTPUT}\n```text\n[PG101]\n```\n", encoding="utf-8")
        assert update_page(page, run_page(page, tmp_path)) == 1
        shown = shown_outputs(page)[0][0].source
        assert "  at app.py:12\n      async for db in get_db():\n" in shown
        assert "  get_db: an @asynccontextmanager function, defined at app.py:6\n" in shown
        assert check_page(page, run_page(page, tmp_path)) == []

        page.write_text(
            code.replace("```\n\n", "```\n\n\n", 1)
            + f"{OUTPUT}\n```text\n"
            + shown.replace("app.py:12", "app.py:13")
            + "```\n",
            encoding="utf-8",
        )
        (problem,) = check_page(page, run_page(page, tmp_path))
        assert problem.startswith("page.md:33: not what the block at line 20 produced:")
        assert "-  at app.py:13\n+  at app.py:12" in problem


class TestErrorAnchors:
    """The error messages link to errors/#pg101 ...; the page has those anchors."""

    @pytest.mark.parametrize(
        "code", [f"PG10{i}" for i in range(1, 8)] + [f"PG20{i}" for i in range(1, 7)]
    )
    def test_section_exists(self, code: str) -> None:
        """errors.md has a heading with the id the message links to."""
        text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
        assert re.search(rf"^##+ {code}\b.*\{{ *#{code.lower()} *\}}$", text, re.MULTILINE)


def _main(argv: list[str]) -> int:
    """Rewrite the shown output of the given pages (all by default), each page run in a
    fresh interpreter, so its task names are those of a program run on its own."""
    if argv[:1] == ["--one"]:
        page = Path(argv[1]).resolve()
        with tempfile.TemporaryDirectory() as directory:
            result = run_page(page, Path(directory))
            changed = update_page(page, result)
            left = check_page(page, run_page(page, Path(directory)))
        print(f"{page.relative_to(ROOT)}: {changed} output block(s) rewritten")
        for problem in left:
            print(problem)
        return 1 if left else 0
    pages = [Path(arg) for arg in argv] or DOC_FILES
    status = 0
    for page in pages:
        status |= subprocess.run([sys.executable, __file__, "--one", str(page)]).returncode
    return status


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
