"""``protoguard check TARGET...``: import targets under the hook and list what it finds.

Targets are importable names (``myapp``, ``myapp.api.routes``) or paths (a ``.py`` file,
a package directory, a directory holding modules and packages, or a zip archive holding
them, as Python imports from one). A package is checked with every module beneath it but
its ``__main__`` modules (importing one runs the program), namespace packages included:
the directories without ``__init__.py`` that are named as modules and hold modules. A
path is checked as the file or package it names, and a package path only beneath it:
when the module this process imports under the path's name is another (two targets of
one name, or a name the standard library has taken), the path is reported as not
checked, one line, and never another module checked in its place. A module that cannot
be imported is reported, one line, and the others are still checked. Exit status: 0
nothing found, 1 findings, 2 a usage error, a module that could not be imported, a path
that could not be checked, or a module protoguard itself failed to check (any findings
are printed all the same).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import json
import os
import pkgutil
import shlex
import sys
import sysconfig
import traceback
import types
import zipfile
import zipimport
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
        description="Import each TARGET (a package, a module, or a path to either, to a "
        "directory of them or to a zip archive of them) under "
        "protoguard's import hook and print one line per wrong protocol: "
        "path:line:col: CODE message; fix: ... (a fix of several lines of code follows on "
        "indented lines). A package's __main__ modules are not imported. "
        "Exit 0 if there are none, 1 if there are, 2 on a usage error, if a module "
        "could not be imported, if a path could not be checked because this process "
        "imports another module under its name, or if protoguard itself failed to check "
        "a module (the others are still checked).",
    )
    parser.add_argument("targets", nargs="+", metavar="TARGET", help="package, module or path")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text (default), json, or github (workflow annotations)",
    )


# --- targets ---------------------------------------------------------------------------


class Target(NamedTuple):
    """A module or package to check, as a command-line target names it."""

    #: As given on the command line.
    argument: str
    #: The dotted name it is imported under.
    name: str
    #: For a path: the sys.path entry the name is found under, and the file (a module)
    #: or directory (a package) it must be imported from; None for a module name.
    entry: Optional[str] = None
    path: Optional[str] = None


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


def _file_of(directory: str, name: str, ispkg: bool) -> str:
    """The file (or, for a package, the directory) Python imports ``name`` from, in a
    directory that has it: an extension module first, as Python's finder does. The
    directory may be a zip archive."""
    path = os.path.join(directory, name)
    if ispkg:
        return path
    if os.path.isfile(directory):  # a zip archive
        try:
            spec = zipimport.zipimporter(directory).find_spec(name)
        except (SyntaxError, ValueError):
            # zipimport compiles the source to name its file: it does not compile (a
            # null byte, too, or bad encoding), and importing it reports that.
            return path + ".py"
        return spec.origin if spec is not None and spec.origin is not None else path
    suffixes = (
        importlib.machinery.EXTENSION_SUFFIXES
        + importlib.machinery.SOURCE_SUFFIXES
        + importlib.machinery.BYTECODE_SUFFIXES
    )
    for suffix in suffixes:
        if os.path.isfile(path + suffix):
            return path + suffix
    return path


def _is_archive(path: str) -> bool:
    """Whether ``path`` is a zip archive Python can import modules from."""
    try:
        zipimport.zipimporter(path)
    except (ImportError, OSError):  # not a zip archive, or unreadable
        return False
    return True


def resolve_targets(targets: Sequence[str]) -> list[Target]:
    """The modules to check, with sys.path made to reach the paths given: their entries
    come first, in the order of the targets."""
    resolved: list[Target] = []
    for target in targets:
        # A file or directory that is there is a path, never a module's name (notes.txt
        # is no module 'txt' of a package 'notes').
        if target.endswith(".py") or os.sep in target or os.path.exists(target):
            if not os.path.exists(target):
                raise TargetError(f"{target}: no such file or directory")
            path = os.path.abspath(target)
            if target.endswith(".py") or os.path.isfile(os.path.join(target, "__init__.py")):
                entry, name = _module_for_path(path)
                if not name:
                    raise TargetError(f"{target}: not a module or package")
                if os.path.basename(path) == "__init__.py":
                    path = os.path.dirname(path)  # the package
                resolved.append(Target(target, name, entry, path))
            elif os.path.isdir(target) or _is_archive(path):
                # A plain directory (say, src/), or a zip archive (a zipapp, an egg, a
                # wheel), which Python imports from as from a directory: each module and
                # package in it.
                if sys.version_info < (3, 10) and not os.path.isdir(target):
                    raise TargetError(
                        f"{target}: a zip archive, whose modules protoguard checks on Python "
                        "3.10 and later only"
                    )
                resolved.extend(
                    Target(target, name, path, _file_of(path, name, ispkg))
                    for name, ispkg in _modules_in([path])
                )
            else:
                why = f"{target}: not a .py file, a directory or a zip archive"
                if target.isidentifier():
                    why += (
                        " (a file of that name is here; to check the module "
                        f"{target!r}, run the check from another directory)"
                    )
                raise TargetError(why)
        else:
            if not all(part.isidentifier() for part in target.split(".")):
                raise TargetError(f"{target}: not a module name or a path")
            resolved.append(Target(target, target))
    entries = list(dict.fromkeys(t.entry for t in resolved if t.entry is not None))
    sys.path[:] = entries + [entry for entry in sys.path if entry not in entries]
    return resolved


def _normal(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _is_at(place: str, expected: str) -> bool:
    """Whether ``place`` (a module's file, or a package's directory) is ``expected``."""
    return _normal(place) == _normal(expected)


def _is_beneath(place: str, directory: str) -> bool:
    place, directory = _normal(place), _normal(directory)
    return place == directory or place.startswith(directory.rstrip(os.sep) + os.sep)


def _places(found: Any) -> list[str]:
    """Where a module (or a spec) comes from: a package's directories, a module's file,
    ``built-in`` or ``frozen``; empty if it does not say."""
    if isinstance(found, types.ModuleType):
        directories = getattr(found, "__path__", None)
        file = getattr(found, "__file__", None)
        if directories is None and not isinstance(file, str):
            found = getattr(found, "__spec__", None)  # a built-in module has no __file__
    if not isinstance(found, types.ModuleType):
        directories = getattr(found, "submodule_search_locations", None)
        file = getattr(found, "origin", None)
    if directories is not None:
        with contextlib.suppress(TypeError):
            return [entry for entry in directories if isinstance(entry, str)]
        return []
    return [file] if isinstance(file, str) else []


# What this process had imported before checking anything: the interpreter's own and
# protoguard's modules, which a module of the same name can never replace in it.
_PREIMPORTED = frozenset(sys.modules)
_STDLIB_DIRECTORIES = tuple(sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib"))


def _stdlib(name: str, place: str) -> bool:
    """Whether ``name`` is a standard-library module (found at ``place``)."""
    if name in getattr(sys, "stdlib_module_names", ()) or name in sys.builtin_module_names:
        return True
    # Python 3.9 has no list of them: a module in the standard library's directory,
    # not in site-packages beneath it.
    return "site-packages" not in place and any(
        _is_beneath(place, directory) for directory in _STDLIB_DIRECTORIES
    )


def _mismatch(target: Target) -> Optional[str]:
    """Why ``target``, a path, would not be the module imported under its name in this
    process (another module already has the name, or comes first on sys.path), else
    None. What the name is not found as at all is left to the import to report."""
    if target.path is None or target.entry is None:
        return None
    name, expected = target.name, target.path
    found: Any = sys.modules.get(name)
    if found is None:
        # Nothing is imported to look: the top-level name decides where the rest is.
        name = target.name.partition(".")[0]
        if name != target.name:
            expected = os.path.join(target.entry, name)
        found = sys.modules.get(name)
        if found is None:
            try:
                found = importlib.util.find_spec(name)
            except (ImportError, ValueError, SyntaxError):  # zipimport compiles to look
                return None
            if found is None:
                return None
    places = _places(found)
    if not places or any(_is_at(place, expected) for place in places):
        return None
    place = places[0]
    where = f"the {place} module" if place in ("built-in", "frozen") else _shown(place)
    kind = "package" if os.path.isdir(target.path) else "module"
    shown = _shown(target.path)
    if _stdlib(name, place):
        where = f"the standard library's ({where})"
        fix = f"rename {shown} to check it"
    elif name in _PREIMPORTED:
        where = f"{where}, imported by Python or protoguard before anything was checked"
        fix = f"rename {shown} to check it"
    else:
        fix = f"check it in a run of its own: protoguard check {shlex.quote(shown)}"
    return (
        f"cannot check {shown} as {kind} {target.name!r}: {name!r} in this process is "
        f"{where}, and Python imports a name once per process, so it was not checked; {fix}"
    )


def _namespace_directories(directory: str, known: set[str]) -> Iterator[str]:
    """The subdirectories of ``directory`` Python imports as namespace packages (no
    ``__init__``, named as a module can be) that hold modules, but those in ``known``."""
    for name in _subdirectories(directory):
        if name in known or not name.isidentifier() or name == "__pycache__":
            continue
        if _holds_modules(os.path.join(directory, name), set()):
            yield name


def _holds_modules(directory: str, visited: set[str]) -> bool:
    """Whether a module can be imported from ``directory`` or its namespace packages."""
    real = os.path.realpath(directory)
    if real in visited:  # a symbolic link back up
        return False
    visited.add(real)
    if any(True for _ in pkgutil.iter_modules([directory])):
        return True
    return any(
        name.isidentifier()
        and name != "__pycache__"
        and _holds_modules(os.path.join(directory, name), visited)
        for name in _subdirectories(directory)
    )


def _subdirectories(directory: str) -> list[str]:
    """The names of the subdirectories of ``directory``, sorted; in a zip archive (the
    archive, or a directory in it), those it lists as directories, which are the ones
    zipimport imports namespace packages from."""
    try:
        with os.scandir(directory) as entries:
            return sorted(entry.name for entry in entries if entry.is_dir())
    except OSError:  # not a directory: perhaps a zip archive, or a directory in one
        pass
    try:
        archive = zipimport.zipimporter(directory)
        with zipfile.ZipFile(archive.archive) as zipped:
            listed = zipped.namelist()
    except (ImportError, OSError, zipfile.BadZipFile):
        return []
    prefix = archive.prefix.replace(os.sep, "/")
    return sorted(
        {
            entry[len(prefix) : -1]
            for entry in listed
            if entry.startswith(prefix)
            and len(entry) > len(prefix) + 1
            and entry.endswith("/")
            and "/" not in entry[len(prefix) : -1]
        }
    )


def _modules_in(directories: Sequence[str], prefix: str = "") -> list[tuple[str, bool]]:
    """(name, is a package) for each module Python imports from ``directories`` (a
    package's ``__path__``, or a sys.path entry): modules, packages, and namespace
    packages (directories without ``__init__.py`` that hold modules)."""
    found: dict[str, bool] = {}
    for info in pkgutil.iter_modules(directories):
        if info.name != "__main__":  # importing it runs the program (see _walk)
            found.setdefault(info.name, info.ispkg)
    for directory in directories:
        for name in _namespace_directories(directory, set(found)):
            found[name] = True
    return [(prefix + name, ispkg) for name, ispkg in found.items()]


class Failure(NamedTuple):
    """A module that could not be imported, so was not checked."""

    module: str
    #: ``RuntimeError: no database (at app/db.py:3)``, on one line.
    reason: str
    #: Whether the module's source compiles (a SyntaxError, or a null byte, does not).
    compiles: bool = True


# An exception's message longer than this is cut: the failure stays one readable line.
_REASON_LENGTH = 200


def _uncompiled(name: str, exc: BaseException, raised_by_user: bool) -> Optional[str]:
    """Where a module's source does not compile, ``app/db.py:3``, if that is why
    importing ``name`` failed; else None."""
    if (
        isinstance(exc, SyntaxError)
        and exc.filename
        and (
            os.path.isfile(exc.filename)
            # a module of a zip archive (app.pyz/app/db.py), which zipimport compiled
            or (not os.path.exists(exc.filename) and _is_archive(exc.filename))
        )
    ):
        return f"{_shown(exc.filename)}:{exc.lineno}" if exc.lineno else _shown(exc.filename)
    if raised_by_user or not isinstance(exc, (SyntaxError, ValueError)):
        return None
    # Raised by importlib compiling the module, with no file named: a null byte in the
    # source (a ValueError before Python 3.11.4, a SyntaxError since).
    try:
        spec = importlib.util.find_spec(name)
        path = spec.origin if spec is not None else None
        if not path or not os.path.isfile(path):
            return None
        with open(path, "rb") as file:
            data = file.read()
    except Exception:  # not found again, or unreadable: not known
        return None
    nul = data.find(b"\0")
    if nul < 0:
        return None  # another failure of importlib's: not the source's
    line = data.count(b"\n", 0, nul) + 1
    return f"{_shown(path)}:{line}"


def _installed(file: str) -> bool:
    """Whether ``file`` is the standard library's or an installed distribution's."""
    # The path as given and the one it resolves to: a site-packages may be a link (into a
    # shared store, where the resolved path names none), or be reached through one.
    parts = {
        *os.path.normcase(os.path.abspath(file)).split(os.sep),
        *_normal(file).split(os.sep),
    }
    return (
        "site-packages" in parts
        or "dist-packages" in parts
        or any(_is_beneath(file, directory) for directory in _STDLIB_DIRECTORIES)
    )


def _reason(name: str, exc: BaseException) -> tuple[str, bool]:
    """``ModuleNotFoundError: No module named 'x' (at app/db.py:3)``, on one line; and
    whether the module's source compiles (see _uncompiled)."""
    where = ""
    ours = os.path.dirname(os.path.abspath(__file__))
    # The frames of the code that ran, not of importlib or protoguard importing it.
    ran = [
        (frame.f_code.co_filename, line, frame.f_globals.get("__name__"))
        for frame, line in traceback.walk_tb(exc.__traceback__)
        if not frame.f_code.co_filename.startswith(("<frozen", ours))
        and "importlib" not in frame.f_code.co_filename
    ]
    # Where the user's code raised, or called what raised: a library's line
    # (argparse's, exiting for parse_args()) is not the one to change. An installed
    # package that is checked itself is its own code.
    package = name.partition(".")[0]
    own = [
        (file, line)
        for file, line, module in ran
        if not _installed(file)
        or (isinstance(module, str) and (module + ".").startswith(package + "."))
    ]
    if own or ran:
        file, line = own[-1] if own else ran[-1][:2]
        where = f" (at {_shown(file)}:{line})"
    message = str(exc)
    uncompiled = _uncompiled(name, exc, bool(ran))
    if uncompiled is not None:
        where = f" (at {uncompiled})"
        if isinstance(exc, SyntaxError) and exc.msg:
            message = exc.msg  # without "(syn.py, line 1)", which `where` says
    message = " ".join(message.split())
    if len(message) > _REASON_LENGTH:
        message = message[: _REASON_LENGTH - 3] + "..."
    kind = type(exc).__name__
    reason = f"{kind}: {message}{where}" if message else kind + where
    return reason, uncompiled is None


def _import(name: str, failures: list[Failure]) -> Optional[types.ModuleType]:
    """The module ``name``, imported; None, and a failure listed, if it cannot be."""
    try:
        return importlib.import_module(name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit too: a module's failure is reported
        failures.append(Failure(name, *_reason(name, exc)))
        return None


def _import_tree(
    name: str, failures: list[Failure], seen: set[str], within: Optional[str] = None
) -> None:
    """Import ``name`` and, for a package, every module beneath it (see _walk)."""
    _walk(name, _import(name, failures), failures, seen, within)


def _walk(
    name: str,
    module: Optional[types.ModuleType],
    failures: list[Failure],
    seen: set[str],
    within: Optional[str] = None,
) -> None:
    """For a package, import every module beneath it, except its ``__main__`` modules
    (importing one runs the program), and only from directories beneath ``within`` if
    given. A module that cannot be imported is listed in ``failures`` and the others are
    still imported; a package that cannot be imported is not searched."""
    path = getattr(module, "__path__", None)
    if path is None:
        return
    # As pkgutil.walk_packages: a directory is searched once, even if two packages'
    # __path__ name it.
    directories = [
        entry
        for entry in path
        if entry not in seen and (within is None or _is_beneath(entry, within))
    ]
    seen.update(directories)
    for child, ispkg in _modules_in(directories, prefix=name + "."):
        if child.rpartition(".")[2] == "__main__":
            continue
        if ispkg:
            _import_tree(child, failures, seen, within)
        else:
            _import(child, failures)


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


class Result(NamedTuple):
    """What ``check`` found."""

    findings: list[SourceFinding]
    #: The modules that could not be imported, so were not checked.
    failures: list[Failure]
    #: Why each path target that could not be checked in this process was not (another
    #: module of its name is imported), one line each.
    unchecked: list[str]
    #: The modules protoguard itself failed to check (an internal failure, warned about).
    broken: tuple[str, ...] = ()


def _covers(target: Target, finding: SourceFinding) -> bool:
    """Whether ``finding`` is in ``target``'s module or beneath it, and, for a path, in
    the file or directory it names."""
    if not (finding.module == target.name or finding.module.startswith(target.name + ".")):
        return False
    return target.path is None or (
        _is_at(finding.path, target.path) or _is_beneath(finding.path, target.path)
    )


def check(targets: Sequence[str]) -> Result:
    """Import every target (packages with their modules) under the hook: its findings,
    the modules that could not be imported, and the path targets that could not be
    checked in this process (see ``_mismatch``): a path target is checked as the file or
    package it names, or not at all.

    Raises TargetError for a target that is neither a module name nor a path to one.
    """
    global _started_in
    _started_in = os.getcwd()
    if _started_in not in sys.path:
        sys.path.insert(0, _started_in)  # as `python -m` would
    unchecked: dict[tuple[str, str], str] = {}  # (argument, name) -> why
    usable: list[Target] = []
    for target in resolve_targets(targets):
        why = _mismatch(target)
        if why is None:
            usable.append(target)
        else:
            unchecked.setdefault(target[:2], why)
    # Mode "on" whatever the environment says; nothing is reported but the list.
    names = tuple(dict.fromkeys(target.name for target in usable))
    hook = ImportHook(names, "on", report=False, thorough=True)
    failures: list[Failure] = []
    checked: list[Target] = []
    hook.install()
    try:
        seen: set[str] = set()
        with _printing_to_stderr():
            for target in usable:
                # What an earlier target imported may have taken the name.
                why = _mismatch(target)
                module = None
                if why is None:
                    module = _import(target.name, failures)
                    why = _mismatch(target) if module is not None else None
                if why is not None:
                    unchecked.setdefault(target[:2], why)
                    continue
                checked.append(target)
                _walk(target.name, module, failures, seen, target.path)
    finally:
        hook.uninstall()
    # Only what the checked targets name: not a module imported under a target's name
    # from somewhere else.
    unique = {
        (f.path, f.line, f.col, f.code): f
        for f in hook.findings
        if any(_covers(target, f) for target in checked)
    }
    failed = {failure.module: failure for failure in failures}  # two targets, one module
    broken = tuple(
        dict.fromkeys(
            name
            for name in hook.not_checked
            if any(name == t.name or name.startswith(t.name + ".") for t in checked)
        )
    )
    return Result(
        sorted(unique.values(), key=lambda f: (f.path, f.line, f.col)),
        list(failed.values()),
        list(unchecked.values()),
        broken,
    )


# --- output ----------------------------------------------------------------------------


# The working directory check() started in: a module it imports may call os.chdir(),
# and paths are shown relative to where the user ran the command.
_started_in: Optional[str] = None


def _shown(path: str) -> str:
    """The path relative to the working directory check() started in, when it is
    beneath it."""
    try:
        relative = os.path.relpath(path, _started_in)
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


def _one_line(note: str) -> str:
    """A note as one line, for JSON: the comment lines it has under the fix in text
    (`import contextlib` / `# and delete the 'break' on line 9: ...`) joined by "; ",
    as a note of several parts on one line is."""
    parts = (part.strip().removeprefix("#").strip() for part in note.split("\n"))
    return "; ".join(part for part in parts if part)


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
                    "note": _one_line(f.note),
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
            text = f"{_message(f)}. fix: {f.fix_with_note()}"
            lines.append(f"::error {properties}::{_escape(text)}")
        else:
            # A fix over several lines (a generator to write) goes on indented lines
            # below its finding, which stays one line that starts with file:line:col;
            # its note follows its last line, as in the run-time message.
            fix = f.fix_with_note().replace("\n", "\n    ")
            lines.append(f"{_shown(f.path)}:{f.line}:{f.col}: {f.code} {_message(f)}; fix: {fix}")
    return "\n".join(lines)


def run(targets: Sequence[str], fmt: str = "text", *, out: Optional[Any] = None) -> int:
    """Run ``protoguard check``; returns the exit status."""
    out = out if out is not None else sys.stdout
    err = sys.stderr
    try:
        found, failures, unchecked, broken = check(targets)
    except TargetError as exc:
        print(f"protoguard check: {exc}", file=err)
        return 2
    for why in unchecked:
        print(f"protoguard check: {why}", file=err)
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
        if found:
            summary = f"{len(found)} wrong protocol(s) found."
        elif failures or unchecked or broken:
            summary = "No wrong protocols in the modules that were checked."  # not all were
        else:
            summary = "No wrong protocols."
        print(summary, file=err)
    unimportable = [failure for failure in failures if failure.compiles]
    if unimportable:
        print(
            f"protoguard check: {len(unimportable)} module(s) could not be imported and were "
            "not checked; give this environment what importing them needs (their "
            "dependencies, the environment variables they read).",
            file=err,
        )
    uncompiled = len(failures) - len(unimportable)
    if uncompiled:
        print(
            f"protoguard check: {uncompiled} module(s) do not compile, so they were not "
            "checked: Python cannot import them, with or without protoguard (which changes "
            "no module's code); fix the errors above.",
            file=err,
        )
    if unchecked:
        print(
            f"protoguard check: {len(unchecked)} target(s) were not checked: another "
            "module of the same name is imported in this process (see above).",
            file=err,
        )
    if broken:
        print(
            f"protoguard check: protoguard failed to check {len(broken)} module(s), "
            f"{', '.join(broken)}, and said why in a warning above; they were imported but "
            "not checked. That is a bug in protoguard: please report it, with the warning.",
            file=err,
        )
    if failures or unchecked or broken:
        return 2
    return 1 if found else 0
