"""``protoguard check TARGET...``: import targets under the hook and list what it finds.

Targets are importable names (``myapp``, ``myapp.api.routes``) or paths (a ``.py`` file,
a package directory, or a directory holding modules and packages). A package is checked
with every module beneath it but its ``__main__`` modules (importing one runs the
program). A module that cannot be imported is reported, one line, and the others are
still checked. Exit status: 0 nothing found, 1 findings, 2 a usage error or a module that
could not be imported (any findings are printed all the same).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pkgutil
import sys
import traceback
import types
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, Optional

from ._importhook import ImportHook
from ._messages import DOCS_URL
from ._scan import SourceFinding

FORMATS = ("text", "json", "github")


class TargetError(Exception):
    """A target that is neither a module name nor a path to a module or package."""


def add_parser(commands: Any) -> None:
    """Add the ``check`` subcommand to ``protoguard``'s subparsers."""
    parser = commands.add_parser(
        "check",
        help="import packages or modules and report every wrong protocol in their source",
        description="Import each TARGET (a package, a module, or a path to either) under "
        "protoguard's import hook and print one line per wrong protocol: "
        "path:line:col: CODE message. A package's __main__ modules are not imported. "
        "Exit 0 if there are none, 1 if there are, 2 on a usage error or if a module "
        "could not be imported (the others are still checked).",
    )
    parser.add_argument("targets", nargs="+", metavar="TARGET", help="package, module or path")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text (default), json, or github (workflow annotations)",
    )


# --- targets ---------------------------------------------------------------------------


def _module_for_path(path: str) -> tuple[str, str]:
    """(sys.path entry, dotted name) for a .py file or a package directory."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        directory, parts = path, []
    else:
        directory, filename = os.path.split(path)
        stem = filename[: -len(".py")]
        parts = [] if stem == "__init__" else [stem]
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        directory, package = os.path.split(directory)
        parts.insert(0, package)
    return directory, ".".join(parts)


def resolve_targets(targets: Sequence[str]) -> list[str]:
    """The dotted names to check, with sys.path made to reach the paths given."""
    names: list[str] = []
    for target in targets:
        if target.endswith(".py") or os.sep in target or os.path.isdir(target):
            if not os.path.exists(target):
                raise TargetError(f"{target}: no such file or directory")
            if target.endswith(".py") or os.path.isfile(os.path.join(target, "__init__.py")):
                found = [_module_for_path(target)]
            elif os.path.isdir(target):
                # A plain directory (say, src/): each module and package in it.
                found = [
                    (os.path.abspath(target), info.name) for info in pkgutil.iter_modules([target])
                ]
            else:
                raise TargetError(f"{target}: not a .py file or a directory")
            for entry, name in found:
                if not name:
                    raise TargetError(f"{target}: not a module or package")
                if entry not in sys.path:
                    sys.path.insert(0, entry)
                names.append(name)
        else:
            if not all(part.isidentifier() for part in target.split(".")):
                raise TargetError(f"{target}: not a module name or a path")
            names.append(target)
    return names


class Failure(NamedTuple):
    """A module that could not be imported, so was not checked."""

    module: str
    #: ``RuntimeError: no database (at app/db.py:3)``, on one line.
    reason: str


# An exception's message longer than this is cut: the failure stays one readable line.
_REASON_LENGTH = 200


def _reason(exc: BaseException) -> str:
    """``ModuleNotFoundError: No module named 'x' (at app/db.py:3)``, on one line."""
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = os.path.dirname(os.path.abspath(__file__))
    user = [
        f
        for f in frames
        if not f.filename.startswith(("<frozen", ours)) and "importlib" not in f.filename
    ]
    if user:
        where = f" (at {_shown(user[-1].filename)}:{user[-1].lineno})"
    message = " ".join(str(exc).split())
    if len(message) > _REASON_LENGTH:
        message = message[: _REASON_LENGTH - 3] + "..."
    return f"{type(exc).__name__}: {message}{where}" if message else type(exc).__name__ + where


def _import(name: str, failures: list[Failure]) -> Optional[types.ModuleType]:
    """The module ``name``, imported; None, and a failure listed, if it cannot be."""
    try:
        return importlib.import_module(name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit too: a module's failure is reported
        failures.append(Failure(name, _reason(exc)))
        return None


def _import_tree(name: str, failures: list[Failure], seen: set[str]) -> None:
    """Import ``name`` and, for a package, every module beneath it, except its
    ``__main__`` modules (importing one runs the program). A module that cannot be
    imported is listed in ``failures`` and the others are still imported; a package
    that cannot be imported is not searched."""
    module = _import(name, failures)
    path = getattr(module, "__path__", None)
    if path is None:
        return
    # As pkgutil.walk_packages: a directory is searched once, even if two packages'
    # __path__ name it.
    directories = [entry for entry in path if entry not in seen]
    seen.update(directories)
    for info in pkgutil.iter_modules(directories, prefix=name + "."):
        if info.name.rpartition(".")[2] == "__main__":
            continue
        if info.ispkg:
            _import_tree(info.name, failures, seen)
        else:
            _import(info.name, failures)


@contextlib.contextmanager
def _printing_to_stderr() -> Iterator[None]:
    """What the imported modules print goes to stderr, so that stdout holds the findings
    alone (a JSON document, say): ``sys.stdout`` for Python code, and file descriptor 1,
    where it can be redirected, for C code and child processes."""
    real_stdout, real_stderr = sys.__stdout__, sys.__stderr__
    descriptor = saved = -1
    if real_stdout is not None and real_stderr is not None:
        with contextlib.suppress(OSError, ValueError):  # closed, or no file descriptor
            sys.stdout.flush()
            real_stdout.flush()
            descriptor = real_stdout.fileno()
            saved = os.dup(descriptor)
            os.dup2(real_stderr.fileno(), descriptor)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved >= 0 and real_stdout is not None:
            with contextlib.suppress(OSError, ValueError):
                real_stdout.flush()  # to stderr, where it was written
            os.dup2(saved, descriptor)
            os.close(saved)


def check(targets: Sequence[str]) -> tuple[list[SourceFinding], list[Failure]]:
    """Import every target (packages with their modules) under the hook: its findings,
    and the modules that could not be imported.

    Raises TargetError for a target that is neither a module name nor a path to one.
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would
    names = resolve_targets(targets)
    # Mode "on" whatever the environment says; nothing is reported but the list.
    hook = ImportHook(tuple(names), "on", report=False, thorough=True)
    failures: list[Failure] = []
    hook.install()
    try:
        seen: set[str] = set()
        with _printing_to_stderr():
            for name in names:
                _import_tree(name, failures, seen)
    finally:
        hook.uninstall()
    unique = {(f.path, f.line, f.col, f.code): f for f in hook.findings}
    failed = {failure.module: failure for failure in failures}  # two targets, one module
    return sorted(unique.values(), key=lambda f: (f.path, f.line, f.col)), list(failed.values())


# --- output ----------------------------------------------------------------------------


def _shown(path: str) -> str:
    """The path relative to the working directory when it is beneath it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if relative.startswith(os.pardir) else relative


def _location(f: SourceFinding) -> str:
    """Where the provider is defined, shown as the finding's path is."""
    location = f.provider.location
    return location if f.provider.filename is None else _shown(location)


def _message(f: SourceFinding) -> str:
    return f.message.replace(f.provider.location, _location(f))


def _escape(text: str, *, property_value: bool = False) -> str:
    """Escape text for a GitHub workflow command."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def render(found: Sequence[SourceFinding], fmt: str) -> str:
    """The findings as text, json or GitHub annotations."""
    if fmt == "json":
        return json.dumps(
            [
                {
                    "path": _shown(f.path),
                    "line": f.line,
                    "col": f.col,
                    "code": f.code,
                    "message": _message(f),
                    "fix": f.fix,
                    "module": f.module,
                    "provider": {
                        "name": f.provider.name,
                        "kind": f.provider.kind,
                        "location": _location(f),
                    },
                    "docs": f"{DOCS_URL}#{f.code.lower()}",
                }
                for f in found
            ],
            indent=2,
        )
    lines = []
    for f in found:
        if fmt == "github":
            properties = (
                f"file={_escape(_shown(f.path), property_value=True)},line={f.line},"
                f"col={f.col},title={_escape(f.code, property_value=True)}"
            )
            lines.append(f"::error {properties}::{_escape(f'{_message(f)}. fix: {f.fix}')}")
        else:
            # A fix over several lines (a generator to write) goes on indented lines
            # below its finding, which stays one line that starts with file:line:col.
            fix = f.fix.replace("\n", "\n    ")
            lines.append(f"{_shown(f.path)}:{f.line}:{f.col}: {f.code} {_message(f)}; fix: {fix}")
    return "\n".join(lines)


def run(targets: Sequence[str], fmt: str = "text", *, out: Optional[Any] = None) -> int:
    """Run ``protoguard check``; returns the exit status."""
    out = out if out is not None else sys.stdout
    err = sys.stderr
    try:
        found, failures = check(targets)
    except TargetError as exc:
        print(f"protoguard check: {exc}", file=err)
        return 2
    for failure in failures:
        print(
            f"protoguard check: cannot import {failure.module!r}, so it was not checked: "
            f"{failure.reason}",
            file=err,
        )
    text = render(found, fmt)
    if text:
        print(text, file=out)
    if fmt == "text":
        summary = f"{len(found)} wrong protocol(s) found." if found else "No wrong protocols."
        print(summary, file=err)
    if failures:
        print(
            f"protoguard check: {len(failures)} module(s) could not be imported and were not "
            "checked; give this environment what importing them needs (their dependencies, "
            "the environment variables they read).",
            file=err,
        )
        return 2
    return 1 if found else 0
