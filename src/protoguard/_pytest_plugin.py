"""The pytest plugin, registered through the ``pytest11`` entry point ``protoguard``.

``--protoguard-packages=a,b`` (ini: ``protoguard_packages``) installs the import hook for
those packages before collection, and ``--protoguard-mode=off|on|strict`` (ini:
``protoguard_mode``) sets protoguard's mode for the session: the import hook's, and the
global mode of guarded providers. In a test session strict mode watches every use,
whatever ``PROTOGUARD_SAMPLE_RATE`` says (a test run does not depend on chance). Findings are
listed in the terminal summary; in strict mode they fail the session. Under pytest-xdist
each worker imports the tests, so the workers find them: each sends its findings, and
what became of the named packages, to the controller with its ``workeroutput``, and the
controller lists and judges them (xdist is not a dependency: its hook is optional).
``@pytest.mark.protoguard(mode=...)`` and the ``protoguard_mode`` fixture give one test
another mode.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest

from . import _config, _environment
from ._importhook import ImportHook
from .exceptions import ConfigurationError

_HOOK = pytest.StashKey[Optional[ImportHook]]()
_IMPORTS = pytest.StashKey[Optional["_Imports"]]()
_SAVED_MODE = pytest.StashKey[Optional[_config.Mode]]()
_SAVED_SAMPLE_RATE = pytest.StashKey[float]()
# Under pytest-xdist: the findings' summary lines the workers sent the controller.
_FROM_WORKERS = pytest.StashKey[list[str]]()
# Under pytest-xdist: what became of each named package in the workers (see _status).
_PACKAGES_IN_WORKERS = pytest.StashKey[dict[str, str]]()
# The keys of a worker's findings, and of what became of the packages, in xdist's
# workeroutput.
_WORKER_OUTPUT_KEY = "protoguard_findings"
_WORKER_PACKAGES_KEY = "protoguard_packages"
# What became of a named package in a process, the more telling last: no module of it
# imported and none found (a misspelt name?), found but not imported, an import of it
# that failed, a module of it imported.
_MISSING, _FOUND, _FAILED, _IMPORTED = "missing", "found", "failed", "imported"
_RANK = {_MISSING: 0, _FOUND: 1, _FAILED: 2, _IMPORTED: 3}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("protoguard", "protoguard: wrong protocols of session providers")
    group.addoption(
        "--protoguard-mode",
        choices=_config.MODES,
        type=_lowered,  # as the ini key and PROTOGUARD_MODE: STRICT is strict
        default=None,
        help="protoguard's mode for the session and its import hook (ini: protoguard_mode)",
    )
    group.addoption(
        "--protoguard-packages",
        default=None,
        metavar="PACKAGES",
        help="comma-separated packages to check as they are imported (ini: protoguard_packages)",
    )
    parser.addini("protoguard_mode", "protoguard's mode: off, on or strict", default="")
    parser.addini(
        "protoguard_packages",
        "packages to check as they are imported (comma- or whitespace-separated)",
        default="",
    )


def _lowered(value: str) -> str:
    return value.strip().lower()


def _ini_source(config: pytest.Config, ini: str) -> str:
    """Where the ini key's value came from: ``-o`` on the command line, or the file."""
    overrides = config.getoption("override_ini", None) or []
    if any(str(item).partition("=")[0].strip() == ini for item in overrides):
        return f"-o {ini}=..."
    return f"{ini} in {config.inipath or 'the ini file'}"


def _setting(config: pytest.Config, option: str, ini: str) -> str:
    value = config.getoption(option)
    if value is None:
        value = config.getini(ini)
    return str(value or "").strip()


def pytest_configure(config: pytest.Config) -> None:
    if _environment.errors:
        # protoguard was imported, as pytest loaded this plugin, with an invalid
        # PROTOGUARD_* value, which is reported here (see _environment) rather than as a
        # traceback at the import; the session runs under no setting nobody chose.
        raise pytest.UsageError(*(str(error) for error in _environment.errors))
    config.addinivalue_line(
        "markers",
        "protoguard(mode): run this test with protoguard in the given mode "
        "('off', 'on' or 'strict'), imports included",
    )
    raw_mode = _setting(config, "protoguard_mode", "protoguard_mode")
    mode = None
    if raw_mode:
        # The option's choices are checked by pytest: a bad value is the ini file's.
        where = _ini_source(config, "protoguard_mode")
        try:
            mode = _config.check_mode(raw_mode, where)
        except ConfigurationError as error:
            raise pytest.UsageError(str(error)) from None
    packages = _setting(config, "protoguard_packages", "protoguard_packages")
    names = tuple(p for p in packages.replace(",", " ").split() if p)
    config.stash[_SAVED_MODE] = _config.settings.mode
    config.stash[_SAVED_SAMPLE_RATE] = _config.settings.sample_rate
    # Every use strict mode sees is watched in a test session, whatever set strict mode
    # (the option, PROTOGUARD_MODE, a marker) and PROTOGUARD_SAMPLE_RATE: a test run does
    # not depend on chance. (A test may still configure a rate of its own.)
    _config.configure(sample_rate=1)
    if mode is not None:
        _config.configure(mode=mode)
    hook = None
    imports = None
    if names:
        imports = _Imports(names)
        sys.meta_path.insert(0, imports)
        # Collects only: the summary reports, strict mode fails the session at the end.
        hook = ImportHook(names, mode, report=False).install()
    config.stash[_HOOK] = hook
    config.stash[_IMPORTS] = imports


def pytest_unconfigure(config: pytest.Config) -> None:
    hook = config.stash.get(_HOOK, None)
    if hook is not None:
        hook.uninstall()
    imports = config.stash.get(_IMPORTS, None)
    if imports is not None:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(imports)
    saved = config.stash.get(_SAVED_MODE, None)
    if saved is not None:
        _config.settings.mode = saved
    rate = config.stash.get(_SAVED_SAMPLE_RATE, None)
    if rate is not None and rate != _config.settings.sample_rate:
        _config.settings.set_sample_rate(rate)


def _strict(config: pytest.Config, hook: ImportHook) -> bool:
    return (hook.mode or _config.settings.mode) == _config.STRICT


def _summary_lines(config: pytest.Config) -> list[str]:
    """One line per finding: this process's and, in pytest-xdist's controller, the
    workers', each once (every worker imports the same modules)."""
    hook = config.stash.get(_HOOK, None)
    if hook is None:
        return []
    lines = [_one_finding(finding) for finding in hook.findings]
    from_workers: list[str] = config.stash.get(_FROM_WORKERS, [])
    lines.extend(from_workers)
    return list(dict.fromkeys(lines))


def _one_finding(finding: Any) -> str:
    """A finding as the summary lists it; a fix of several lines goes on indented lines,
    as ``protoguard check`` writes it, so that the next finding's line stands out."""
    return str(finding).replace("\n", "\n    ")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist, in the controller: a worker is done; keep the findings it sent, and
    what became of the named packages in it."""
    output = getattr(node, "workeroutput", None)
    if not isinstance(output, dict):
        return  # a worker that crashed sends nothing
    config = node.config
    lines = output.get(_WORKER_OUTPUT_KEY)
    if lines:
        config.stash.setdefault(_FROM_WORKERS, []).extend(str(line) for line in lines)
    packages = output.get(_WORKER_PACKAGES_KEY)
    if isinstance(packages, dict):
        _merge(config.stash.setdefault(_PACKAGES_IN_WORKERS, {}), packages)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    hook = config.stash.get(_HOOK, None)
    if hook is None:
        return
    worker_output = getattr(config, "workeroutput", None)
    if isinstance(worker_output, dict):
        # A pytest-xdist worker: its summary is never shown, so hand the findings to the
        # controller, which lists them and fails the session in strict mode, and what
        # became of the named packages here, since the controller imports no test module.
        worker_output[_WORKER_OUTPUT_KEY] = [_one_finding(finding) for finding in hook.findings]
        worker_output[_WORKER_PACKAGES_KEY] = _status(config, hook)
        return
    if (
        _summary_lines(config)
        and _strict(config, hook)
        and session.exitstatus == pytest.ExitCode.OK
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


class _Imports:
    """A meta-path finder that finds nothing: it notes the modules of the named packages,
    and their parent packages, that an import tried to import, so that the summary can
    tell a package that failed to import from a misspelt name."""

    def __init__(self, packages: tuple[str, ...]) -> None:
        self.packages = packages
        self.tried: set[str] = set()

    def __repr__(self) -> str:
        return "<protoguard pytest plugin's import watcher>"

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        # Only an import, not a mere look for it (find_spec(), which the summary itself
        # makes); the frame walk is made for the named packages only.
        if any(_related(fullname, name) for name in self.packages) and (
            _environment.importing(fullname)
        ):
            self.tried.add(fullname)
        return None

    def invalidate_caches(self) -> None:
        """Nothing cached here (importlib calls this on every finder)."""


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _related(module: str, package: str) -> bool:
    """Whether ``module`` is in ``package``, or is a parent package of it."""
    return _within(module, package) or _within(package, module)


def _status(config: pytest.Config, hook: ImportHook) -> dict[str, str]:
    """What became of each named package in this process: imported; missing (no module
    of it imported, and it is not there to import); failed (it is there, and an import
    tried to import a module of it, or a parent package, which is not imported now);
    else found (there to import, but not imported)."""
    imports = config.stash.get(_IMPORTS, None)
    tried = imports.tried if imports is not None else set()
    modules = list(sys.modules)
    status = {}
    for name in hook.packages:
        if any(_within(module, name) for module in modules):
            status[name] = _IMPORTED
        elif not _findable(name):
            status[name] = _MISSING  # an import of it may have failed: as it is not there
        elif any(_related(module, name) and module not in sys.modules for module in tried):
            status[name] = _FAILED
        else:
            status[name] = _FOUND
    return status


def _merge(into: dict[str, str], status: dict[Any, Any]) -> None:
    """Add a worker's status of the packages: the more telling wins."""
    for name, what in status.items():
        if what in _RANK and _RANK[what] > _RANK[into.get(str(name), _MISSING)]:
            into[str(name)] = what


def _findable(name: str) -> bool:
    """Whether the module ``name`` is there to import, found without importing anything
    (``importlib.util.find_spec()`` would import a dotted name's parent packages: their
    own specs give the places to look in instead)."""
    try:
        path: Optional[list[str]] = None
        prefix = ""
        for part in name.split("."):
            prefix = f"{prefix}.{part}" if prefix else part
            module = sys.modules.get(prefix)
            if module is not None:
                locations = getattr(module, "__path__", None)
            else:
                spec = _find_spec(prefix, path)
                if spec is None:
                    return False
                locations = spec.submodule_search_locations
            if prefix != name:
                if locations is None:
                    return False  # a module, not a package: it has no submodules
                path = list(locations)
        return True
    except Exception:
        return True  # a finder that fails cannot tell: do not say the name is wrong


def _find_spec(name: str, path: Optional[list[str]]) -> Any:
    """The spec the meta-path finders give ``name``, as importlib asks them, or None."""
    for finder in list(sys.meta_path):
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is not None:
            spec = find_spec(name, path)
            if spec is not None:
                return spec
    return None


def _not_imported(config: pytest.Config, hook: ImportHook) -> dict[str, str]:
    """The named packages of which no module was imported by the run, and what became of
    them: a misspelt name checks nothing, silently. Under pytest-xdist the workers
    import the tests, and tell the controller what became of the packages (a controller
    none of whose workers did, all of them crashed, cannot tell: it names none)."""
    status = _status(config, hook)
    from_workers = config.stash.get(_PACKAGES_IN_WORKERS, None)
    if from_workers is not None:
        _merge(status, from_workers)
    elif getattr(config.option, "numprocesses", None):
        return {}
    return {name: what for name, what in status.items() if what != _IMPORTED}


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    hook = config.stash.get(_HOOK, None)
    if hook is None:
        return
    for name, what in _not_imported(config, hook).items():
        if what == _FAILED:
            # Its own error is shown (a collection error, a test's): the name is right.
            notice = (
                f"protoguard: {name!r} failed to import in this run, so none of it was checked."
            )
        elif what == _FOUND:
            notice = (
                f"protoguard: no module of {name!r} was imported by this run, so none was checked."
            )
        else:
            notice = (
                f"protoguard: no module of {name!r} was imported by this run, so none was "
                "checked: is the name right (--protoguard-packages, protoguard_packages)?"
            )
        terminalreporter.write_line(notice, yellow=True)
    lines = _summary_lines(config)
    if not lines:
        return
    strict = _strict(config, hook)
    title = f"protoguard: {len(lines)} wrong protocol(s)" + (" (strict: failing)" if strict else "")
    terminalreporter.write_sep("=", title, red=strict, yellow=not strict)
    for line in lines:
        terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def _protoguard_marker(request: pytest.FixtureRequest) -> Iterator[None]:
    """Apply @pytest.mark.protoguard(mode=...) to the test, its fixtures' teardown too."""
    marker = request.node.get_closest_marker("protoguard")
    if marker is None:
        yield
        return
    problem = None
    try:
        checked = _marker_mode(marker)
    except ConfigurationError as error:
        problem = str(error)
    if problem is not None:
        # The test's error, not protoguard's: the message, without protoguard's frames
        # (and outside the except block, which pytest would show as well).
        pytest.fail(problem, pytrace=False)
    token = _config.set_override(checked)
    try:
        yield
    finally:
        _config.override_mode.reset(token)


def _marker_mode(marker: pytest.Mark) -> _config.Mode:
    """The mode of a ``@pytest.mark.protoguard(mode=...)`` (or ``("strict")``) marker."""
    how = '@pytest.mark.protoguard(mode="strict"), or "on" or "off".'
    others = [key for key in marker.kwargs if key != "mode"]
    if others:
        wrong = ", ".join(f"{key}=..." for key in others)
        raise ConfigurationError(f"@pytest.mark.protoguard takes mode=..., not {wrong}: {how}")
    modes = [*marker.args, *([marker.kwargs["mode"]] if "mode" in marker.kwargs else [])]
    if not modes:
        raise ConfigurationError(f"@pytest.mark.protoguard needs a mode: {how}")
    if len(modes) > 1:
        raise ConfigurationError(f"@pytest.mark.protoguard takes one mode, not {len(modes)}: {how}")
    return _config.check_mode(modes[0], "@pytest.mark.protoguard(mode=...)")


@pytest.fixture
def protoguard_mode() -> Iterator[Callable[[_config.Mode], None]]:
    """Call it with a mode to run the rest of the test in that mode::

    def test_strict(protoguard_mode):
        protoguard_mode("strict")
    """
    tokens: list[Any] = []

    def set_mode(mode: _config.Mode) -> None:
        checked = _config.check_mode(mode, "protoguard_mode(...)")
        tokens.append(_config.set_override(checked))

    yield set_mode
    for token in reversed(tokens):
        # ValueError: set in another context, an async test's, which its plugin ran in
        # a task of its own. That context ends with the test, and the mode with it.
        with contextlib.suppress(ValueError):
            _config.override_mode.reset(token)
