"""The import-time guard: check each module of the named packages once it has executed.

The hook never changes a module's code or bytecode. A meta-path finder asks the other
finders for the module's spec, and puts a thin loader in front of the real one (in
``_importlib_bootstrap``, whose file name makes ``warnings`` skip its frame); that
loader gives the module its real loader back before any of the module's code runs, runs
the module exactly as the real loader would (its ``exec_module()`` reads and writes the
``.pyc`` as usual), and then looks for wrong protocols (see ``_scan``): the calls the
module's text shows in protocol places are resolved in its globals, and the source is
parsed only if one of them is a provider that may be misused. Both the text index and
the parse are cached per source file, in a cache of its own, so a module imported again
unchanged is neither read nor parsed: its cached names are resolved, nothing more (but
for a finding, whose text is written from its top-level statement, read and parsed).

Nothing the hook does may break an import: a module it cannot read is skipped, and an
internal failure becomes one warning, the module imported as without protoguard. Only a
finding does, when it is reported as an error: in strict mode, or as a warning that the
warning filters make an error (``-W error``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.machinery
import importlib.util
import marshal
import os
import sys
import threading
import types
import warnings
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Optional

from . import _config
from . import _kinds as k
from ._config import Mode
from ._importlib_bootstrap import Loader
from ._messages import DOCS_URL
from .exceptions import CallSite, ProtocolError, ProtocolWarning

if TYPE_CHECKING:  # _scan (and ast) is imported when the first module is checked
    from ._scan import IndexedCall, SourceFinding, Use

#: Where the scan cache lives; the platform's cache directory when unset.
ENV_CACHE_DIR = "PROTOGUARD_CACHE_DIR"

# Bumped whenever what the cache holds changes shape.
_CACHE_FORMAT = 5
# What an entry holds: the uses the parser found, or the calls the text index found.
_USES = "uses"
_CALLS = "calls"


def default_cache_dir() -> str:
    """``$PROTOGUARD_CACHE_DIR`` (a leading ``~`` is the home directory), else
    protoguard's folder in the platform's cache dir."""
    configured = os.environ.get(ENV_CACHE_DIR)
    if configured:
        # Not expanded where it is set in a file (a Dockerfile's ENV, a CI config, pytest's
        # env), which would make a directory named "~" in the working directory.
        return os.path.expanduser(configured)
    home = os.path.expanduser("~")
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
        return os.path.join(base, "protoguard", "Cache")
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Caches", "protoguard")
    return os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"), "protoguard"
    )


def _version() -> str:
    package = sys.modules.get("protoguard")
    return str(getattr(package, "__version__", "unknown"))


class ScanCache:
    """What was found in each source file, keyed by (path, size, mtime, protoguard
    version, Python version): the uses the parser found, or else the calls the text
    index found (see ``_index``).

    One small file per source file, written atomically (a temporary file, then
    ``os.replace``). The hook also keeps one bundle per top-level package (``group``),
    all of its files' entries in one file, so that a package imported again costs one
    read, not one per module; the bundle is rewritten at exit (or when the hook is
    uninstalled) if an entry was missing from it. A cache that cannot be read or
    written is simply not used.
    """

    def __init__(self, directory: Optional[str] = None) -> None:
        self.directory = directory if directory is not None else default_cache_dir()
        self._usable = True
        self._bundles: dict[str, dict[str, Any]] = {}  # group -> path -> entry
        self._missing: dict[str, dict[str, Any]] = {}  # entries a bundle lacks
        self._flush_at_exit = False

    def _file(self, name: str, suffix: str = "") -> str:
        # Two checksums make a 64-bit name; a collision is only a miss (the key holds the
        # path), and zlib, unlike hashlib, costs nothing to import.
        data = os.fsencode(name)
        return os.path.join(
            self.directory, f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}{suffix}.pgscan"
        )

    def _key(self, path: str, stat: os.stat_result) -> tuple[Any, ...]:
        return (
            _CACHE_FORMAT,
            _version(),
            sys.version_info[:2],
            path,
            stat.st_size,
            stat.st_mtime_ns,
        )

    def _read(self, file: str) -> Any:
        """The unmarshalled content of ``file``; raises for a missing or broken one."""
        descriptor = os.open(file, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            chunks = []
            while True:
                chunk = os.read(descriptor, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(descriptor)
        return marshal.loads(b"".join(chunks))

    def _bundle(self, group: str) -> dict[str, Any]:
        bundle = self._bundles.get(group)
        if bundle is None:
            try:
                name, content = self._read(self._file(group, "-bundle"))
                bundle = content if name == (_CACHE_FORMAT, group) else {}
            except Exception:  # missing, truncated, or another format: empty
                bundle = {}
            if not isinstance(bundle, dict):
                bundle = {}
            self._bundles[group] = bundle
        return bundle

    def lookup(
        self, path: str, stat: os.stat_result, group: Optional[str] = None
    ) -> tuple[Optional[list[Use]], Optional[list[IndexedCall]]]:
        """(uses, None) or (None, calls) if ``path`` has an entry matching ``stat``;
        (None, None) otherwise. With ``group``, its bundle is read first."""
        if not self._usable:
            return None, None
        try:
            key = self._key(path, stat)
            entry = self._bundle(group).get(path) if group is not None else None
            if entry is None or entry[0] != key:
                entry = self._read(self._file(path))
                if entry[0] != key:
                    return None, None
                if group is not None:
                    self._remember(group, path, entry)
            _, what, found = entry
            if what == _USES:
                from ._scan import Use

                return [Use(*use) for use in found], None
            if what == _CALLS:
                return None, list(found)
        except Exception:  # missing, stale, truncated, or another format: a miss
            pass
        return None, None

    def get(self, path: str, stat: os.stat_result) -> Optional[list[Use]]:
        """The cached uses of ``path`` if its entry matches ``stat``, else None."""
        return self.lookup(path, stat)[0]

    def put(
        self,
        path: str,
        stat: os.stat_result,
        uses: Sequence[Use],
        group: Optional[str] = None,
    ) -> None:
        """Store the uses of ``path``; failures leave the cache as it was."""
        entry = (self._key(path, stat), _USES, [tuple(use) for use in uses])
        self._write(self._file(path), entry)
        if group is not None:
            self._remember(group, path, entry)

    def put_calls(
        self,
        path: str,
        stat: os.stat_result,
        calls: Sequence[IndexedCall],
        group: Optional[str] = None,
    ) -> None:
        """Store the calls the text index found in ``path``."""
        entry = (self._key(path, stat), _CALLS, list(calls))
        self._write(self._file(path), entry)
        if group is not None:
            self._remember(group, path, entry)

    def _remember(self, group: str, path: str, entry: Any) -> None:
        self._bundle(group)[path] = entry
        self._missing.setdefault(group, {})[path] = entry
        if not self._flush_at_exit:
            self._flush_at_exit = True
            import atexit

            atexit.register(self.flush)

    def flush(self) -> None:
        """Write the entries the bundles lacked into them (merged with what another
        process may have written meanwhile)."""
        missing, self._missing = self._missing, {}
        for group, entries in missing.items():
            file = self._file(group, "-bundle")
            try:
                name, content = self._read(file)
                if name != (_CACHE_FORMAT, group) or not isinstance(content, dict):
                    content = {}
            except Exception:  # none yet, or unreadable: start afresh
                content = {}
            content.update(entries)
            self._write(file, ((_CACHE_FORMAT, group), content))

    def _write(self, file: str, content: Any) -> None:
        if not self._usable:
            return
        import tempfile

        data = marshal.dumps(content)
        temporary = None
        try:
            os.makedirs(self.directory, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(data)
            os.replace(temporary, file)
            temporary = None
        except OSError:
            self._usable = False  # read-only or full: stop trying for this process
        finally:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)


def _read_source(path: str) -> Optional[str]:
    """The decoded source of ``path`` (its coding cookie honoured), or None."""
    try:
        with open(path, "rb") as file:
            data = file.read()
        return _decode_source(data)
    except (OSError, UnicodeDecodeError, SyntaxError, LookupError):
        return None


# Bound as protoguard is imported (importlib.util is imported by then anyway): importing
# it as a module is checked imported it in the middle of a fresh import of importlib
# itself (test.support's import_fresh_module), guarded, before importlib could hold it.
_decode_source = importlib.util.decode_source


def _source_from_loader(module: types.ModuleType) -> Optional[str]:
    """The source of a module with no file of its own on disk (one imported from a zip
    file: a zipapp, an egg), as its loader gives it, or None."""
    spec = getattr(module, "__spec__", None)
    loader = getattr(spec, "loader", None) or getattr(module, "__loader__", None)
    get_source = getattr(loader, "get_source", None)
    if get_source is None:
        return None
    try:
        source = get_source(module.__name__)
    except Exception:  # ImportError, OSError, a loader of its own that breaks: unreadable
        return None
    return source if isinstance(source, str) else None


def scan_module(
    module: types.ModuleType,
    *,
    cache: Optional[ScanCache] = None,
    thorough: bool = False,
) -> list[SourceFinding]:
    """The wrong protocols in an executed module's source.

    Unless ``thorough``, the source is parsed only if a call the text index found may
    be a misuse once resolved in the module's globals; the index, and the parse, are
    cached per file. A module without a ``.py`` source, or whose source cannot be read
    or parsed, has no findings.
    """
    from . import _scan

    spec = getattr(module, "__spec__", None)
    path = getattr(spec, "origin", None) or getattr(module, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return []
    namespace = vars(module)
    read: Callable[[], Optional[str]]
    try:
        stat = os.stat(path)
        read = functools.partial(_read_source, path)
    except OSError:
        # Not a file on disk (inside a zip file): read through its loader, not cached.
        read, cache = functools.partial(_source_from_loader, module), None
    group = module.__name__.partition(".")[0]
    uses, calls = cache.lookup(path, stat, group) if cache is not None else (None, None)
    source: Optional[str] = None
    if uses is None:
        if not thorough:
            if calls is None:
                source = read()
                if source is None:
                    return []
                from . import _index

                calls = _index.index_calls(source)
                if cache is not None:
                    cache.put_calls(path, stat, calls, group)
            if not _scan.needs_parse(calls, namespace):
                return []
        if source is None:
            source = read()
            if source is None:
                return []
        try:
            uses = _scan.parse_uses(source, path)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return []  # changed on disk since it ran, or too deep to walk: skip it
        if cache is not None:
            cache.put(path, stat, uses, group)
    if not uses:
        return []
    if source is None:
        return _scan.findings(uses, namespace, path, None, module.__name__, read_source=read)
    return _scan.findings(uses, namespace, path, source, module.__name__)


# --- reporting -------------------------------------------------------------------------


def format_finding(finding: SourceFinding) -> str:
    """The text of a finding's warning or error."""
    return (
        f"[{finding.code}] {finding.message}\n"
        f"  fix: {finding.fix_with_note()}\n"
        f"  docs: {DOCS_URL}#{finding.code.lower()}"
    )


def _warn(finding: SourceFinding, module: Optional[types.ModuleType]) -> None:
    warnings.warn_explicit(
        format_finding(finding),
        ProtocolWarning,
        finding.path,
        finding.line,
        module=finding.module or None,
        module_globals=vars(module) if module is not None else None,
    )


def _listing(found: Sequence[SourceFinding]) -> str:
    """The findings of one module or more, each with its file, line and column."""
    modules = ", ".join(dict.fromkeys(finding.module or finding.path for finding in found))
    lines = [f"{len(found)} wrong protocol(s) in {modules}:"]
    for finding in found:
        lines.append(f"{finding.path}:{finding.line}:{finding.col}: {format_finding(finding)}")
    return "\n".join(lines)


def _error(found: Sequence[SourceFinding]) -> ProtocolError:
    """One ProtocolError for the findings of one module or more, the first one's facts as
    attributes."""
    first = found[0]
    return ProtocolError(
        _listing(found),
        code=first.code,
        provider=first.provider,
        used=first.used,
        supported=k.SUPPORTED.get(first.provider.kind, ()),
        call_site=CallSite(first.path, first.line),
        fix=first.fix,
    )


def _internal_failure(name: str, exc: BaseException) -> None:
    """One warning; never an exception, even where warnings are errors."""
    with contextlib.suppress(Exception):
        warnings.warn(
            f"protoguard could not check module {name!r} ({type(exc).__name__}: {exc}); "
            "it was imported as it would be without protoguard.",
            ProtocolWarning,
            stacklevel=2,
        )


# --- the hook --------------------------------------------------------------------------


class ImportHook:
    """An installed import hook: ``.uninstall()`` it, or use it as a context manager.

    ``findings`` lists every wrong protocol it found, in the order it found them, each
    once (a module imported again, or reloaded, is checked again); ``not_checked``, the
    modules protoguard itself failed to check (each also warned about).
    """

    def __init__(
        self,
        packages: Sequence[str],
        mode: Optional[Mode],
        *,
        report: bool = True,
        thorough: bool = False,
        cache: Optional[ScanCache] = None,
    ) -> None:
        self.packages = tuple(packages)
        self.mode: Optional[Mode] = mode
        self.findings: list[SourceFinding] = []
        self.not_checked: list[str] = []
        self.report = report
        self.thorough = thorough
        self.cache = cache if cache is not None else ScanCache()
        self.installed = False
        self._pending: list[types.ModuleType] = []
        self._scanned: set[str] = set()
        self._listed: set[tuple[str, int, int, str]] = set()  # findings' places and codes

    def __repr__(self) -> str:
        state = "installed" if self.installed else "uninstalled"
        return f"<protoguard import hook for {', '.join(self.packages)} ({state})>"

    def __enter__(self) -> ImportHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.uninstall()

    def matches(self, name: str) -> bool:
        """Whether the module ``name`` is in one of the hook's packages."""
        return any(name == p or name.startswith(p + ".") for p in self.packages)

    def current_mode(self) -> Mode:
        """The mode in force: an ``override()`` block, else the hook's, else the global."""
        return _config.override_mode.get() or self.mode or _config.settings.mode

    def install(self) -> ImportHook:
        """Start checking imports (done by install_import_hook)."""
        if not self.installed:
            _registry.add(self)
            self.installed = True
            try:
                self._scan_loaded()
            except BaseException:
                # Strict mode found a misuse in a module imported before the hook: the
                # caller gets the error and no handle, so leave nothing installed.
                self.uninstall()
                raise
        return self

    def uninstall(self) -> None:
        """Stop checking imports. Modules already imported stay as they are."""
        if self.installed:
            _registry.remove(self)
            self.installed = False
            self.cache.flush()

    def _scan_loaded(self) -> None:
        """Check the modules of the packages that were imported before the hook."""
        checked = []
        for name, module in list(sys.modules.items()):
            if isinstance(module, types.ModuleType) and self.matches(name):
                if getattr(getattr(module, "__spec__", None), "_initializing", False):
                    self._pending.append(module)  # still running: check it once it is done
                else:
                    checked.append((self, module, self._scan(module)))
        _report(checked)

    def check(self, module: types.ModuleType) -> None:
        """Scan one executed module and report what it found, as the mode says; a module
        this hook has checked already is skipped (executed() checks it again)."""
        _report([(self, module, self._scan(module))])

    def _scan(
        self,
        module: types.ModuleType,
        shared: Optional[dict[str, Optional[list[SourceFinding]]]] = None,
        thorough: bool = False,
    ) -> list[SourceFinding]:
        """Scan one executed module and add what it found to ``findings``; returns the
        findings to report: none in mode off, or for a module checked already.

        ``shared`` holds the scans of the other hooks checking the same modules now (see
        ``_executed``): a module one of them scanned is not scanned again (None: the scan
        failed, and was warned about once).
        """
        name = module.__name__
        if name in self._scanned:
            return []
        if self.current_mode() == _config.OFF:
            return []
        self._scanned.add(name)
        if shared is not None and name in shared:
            found = shared[name]
        else:
            try:
                found = scan_module(module, cache=self.cache, thorough=self.thorough or thorough)
            except Exception as exc:
                found = None
                _internal_failure(name, exc)
            if shared is not None:
                shared[name] = found
        if found is None:
            self.not_checked.append(name)
            return []
        for finding in found:
            # A module checked again (see executed()) lists what it found before once.
            place = (finding.path, finding.line, finding.col, finding.code)
            if place not in self._listed:
                self._listed.add(place)
                self.findings.append(finding)
        return found

    def executed(self, module: Optional[types.ModuleType]) -> None:
        """Check ``module``, which ran, and the modules waiting that are done; with None
        (runpy took a module's code to run it itself), the modules waiting only."""
        _executed((self,), module)

    def _collect(
        self,
        module: Optional[types.ModuleType],
        shared: dict[str, Optional[list[SourceFinding]]],
        thorough: bool,
    ) -> list[tuple[ImportHook, types.ModuleType, list[SourceFinding]]]:
        """Check the module that ran, and the modules waiting that are done; returns what
        each one found, for ``_report``.

        The modules waiting to be checked (a package's ``__init__`` that was still running
        when the hook was installed) that have finished are checked first, then ``module``;
        all are checked before any finding is reported, so an error for one of them
        (strict mode, -W error) loses none of the others.
        """
        checked = []
        if self._pending:
            pending, self._pending = self._pending, []
            for waiting in pending:
                spec = getattr(waiting, "__spec__", None)
                if getattr(spec, "_initializing", False):
                    self._pending.append(waiting)
                else:
                    checked.append((self, waiting, self._scan(waiting, shared, thorough)))
        # The module ran, so check it even if it was checked before: it runs again after
        # an import that failed (strict mode, or -W error), and on importlib.reload(),
        # with new globals and perhaps a new source. An unchanged source is not read again
        # (the scan cache); a module that ran once is checked once.
        if module is None:
            return checked
        self._scanned.discard(module.__name__)
        checked.append((self, module, self._scan(module, shared, thorough)))
        if "." not in module.__name__:
            # A top-level package has finished importing (and, mostly, its modules with
            # it): write its cache bundle now rather than only at exit, which a process
            # stopped by a signal never reaches.
            self.cache.flush()
        return checked


def _executed(hooks: Sequence[ImportHook], module: Optional[types.ModuleType]) -> None:
    """Called by the loader once ``module`` ran, with every hook that matched it (the
    most recently installed first): each checks it, and the modules it has waiting that
    are done, and records what it found; a module is scanned once for all of them. Then
    what they found is reported, once (see ``_report``). With None (runpy took a
    module's code to run it itself), the modules waiting only."""
    try:
        shared: dict[str, Optional[list[SourceFinding]]] = {}
        thorough = any(hook.thorough for hook in hooks)
        checked = []
        for hook in hooks:
            checked.extend(hook._collect(module, shared, thorough))
        _report(checked)
    except (ProtocolError, ProtocolWarning):
        # A finding reported as an error: strict mode, or mode "on" where warnings are
        # errors (-W error). The module must not import, as in install().
        raise
    except Exception as exc:  # pragma: no cover - _scan() catches its own failures
        name = module.__name__ if module is not None else ", ".join(hooks[0].packages)
        _internal_failure(name, exc)


def _collected(name: str) -> bool:
    """Whether an installed hook that only collects (``protoguard check``'s, the pytest
    plugin's: ``report=False``) checks the module ``name``."""
    return any(
        not hook.report and hook.matches(name) and hook.current_mode() != _config.OFF
        for hook in list(_registry.hooks)
    )


def _report(checked: Sequence[tuple[ImportHook, types.ModuleType, list[SourceFinding]]]) -> None:
    """Report the findings of modules checked together, once all are checked, each
    module's once, however many hooks found them.

    A module is reported by the hooks that report (``report=True``), as the strictest of
    them asks, and by none if a hook that only collects checks it: ``protoguard check``
    and the pytest plugin list every finding themselves, and an error here would stop
    the import of the package they were asked to check, a warning repeat their listing.

    Strict mode: one ProtocolError listing the findings. Mode on: one warning per
    finding, every one of them warned; if the warning filters made any an error (-W
    error), they are listed with strict mode's, each with its file and line (an error's
    traceback ends at the import, not at the line to change), in the ProtocolError, or
    in one ProtocolWarning without strict mode, raised after the last is warned.
    """
    reported: dict[str, tuple[types.ModuleType, list[SourceFinding]]] = {}
    strict: set[str] = set()
    for hook, module, found in checked:
        name = module.__name__
        if not found or not hook.report or _collected(name):
            continue
        reported.setdefault(name, (module, found))
        if hook.current_mode() == _config.STRICT:
            strict.add(name)
    errors: list[SourceFinding] = []
    for name, (module, found) in reported.items():
        if name in strict:
            errors.extend(found)
            continue
        for finding in found:
            try:
                _warn(finding, module)
            except ProtocolWarning:
                errors.append(finding)
    if strict:
        raise _error(errors)
    if errors:
        raise ProtocolWarning(_listing(errors))


class _Registry:
    """The installed hooks, and the one finder they share at the front of sys.meta_path."""

    def __init__(self) -> None:
        self.hooks: list[ImportHook] = []
        self.lock = threading.Lock()
        self.finder = _Finder(self)

    def add(self, hook: ImportHook) -> None:
        with self.lock:
            self.hooks.insert(0, hook)
            if self.finder not in sys.meta_path:
                sys.meta_path.insert(0, self.finder)

    def remove(self, hook: ImportHook) -> None:
        with self.lock:
            if hook in self.hooks:
                self.hooks.remove(hook)
            if not self.hooks:
                with contextlib.suppress(ValueError):
                    sys.meta_path.remove(self.finder)

    def matching(self, name: str) -> tuple[ImportHook, ...]:
        """The hooks that check the module ``name``, the most recently installed first."""
        return tuple(hook for hook in list(self.hooks) if hook.matches(name))


class _Finder:
    """Finds nothing itself: asks the finders after it, and wraps the loader they give."""

    def __init__(self, registry: _Registry) -> None:
        self.registry = registry

    def __repr__(self) -> str:
        return "<protoguard import hook finder>"

    def find_spec(
        self,
        fullname: str,
        path: Optional[Sequence[str]] = None,
        target: Optional[types.ModuleType] = None,
    ) -> Optional[importlib.machinery.ModuleSpec]:
        hooks = self.registry.matching(fullname)
        if not hooks:
            return None
        spec: Optional[importlib.machinery.ModuleSpec] = None
        for finder in list(sys.meta_path):
            if finder is self:
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                break
        if spec is None:
            return None
        loader = spec.loader
        origin = spec.origin
        if (
            loader is None
            or isinstance(loader, Loader)
            or not hasattr(loader, "exec_module")
            or not isinstance(origin, str)
            or not origin.endswith(".py")
        ):
            return spec
        executed = functools.partial(_executed, hooks)
        spec.loader = Loader(loader, executed, spec)  # type: ignore[assignment]
        return spec

    def invalidate_caches(self) -> None:
        """Nothing cached here (importlib calls this on every finder)."""


_registry = _Registry()


# --- the public functions --------------------------------------------------------------


def _check_packages(packages: Iterable[object]) -> tuple[str, ...]:
    names = tuple(packages)
    if not names:
        raise TypeError(
            "protoguard.install_import_hook() needs at least one package name, "
            'e.g. install_import_hook("myapp").'
        )
    for name in names:
        if not isinstance(name, str) or not name or name.startswith(".") or " " in name:
            shown = repr(name) if isinstance(name, str) else f"a {type(name).__name__}"
            raise TypeError(
                f"protoguard.install_import_hook() takes package names such as 'myapp' or "
                f"'myapp.api', not {shown}."
            )
    return names  # type: ignore[return-value]


def install_import_hook(*packages: str, mode: Optional[Mode] = None) -> ImportHook:
    """Check every module of ``packages`` for wrong protocols as it is imported.

    Each module is checked once it has executed, by reading its source: ``async for``,
    ``async with``, ``with``, ``for`` and ``await`` on a call of a provider, and
    ``Depends(provider)``, with the provider resolved in the module's real globals.
    Modules of the packages that are already imported are checked at once.

    ``mode`` (``"off"``, ``"on"``, ``"strict"``; the global mode when None): ``on``
    gives one :class:`ProtocolWarning` per finding at its file and line, ``strict``
    raises :class:`ProtocolError` from the import, ``off`` does nothing. An
    ``override()`` block around an import wins over ``mode``.

    Returns the hook: call ``.uninstall()``, or use it as a context manager.
    """
    names = _check_packages(packages)
    if mode is not None:
        mode = _config.check_mode(mode, "protoguard.install_import_hook(mode=...)")
    return ImportHook(names, mode).install()


def guard_this_package(mode: Optional[Mode] = None) -> ImportHook:
    """Check the calling package: put ``protoguard.guard_this_package()`` in its
    ``__init__.py``, before it imports its submodules.

    The ``__init__.py`` itself is checked once it has finished running, when the next
    module of the package has been imported.
    """
    frame = sys._getframe(1)
    namespace = frame.f_globals
    del frame
    name = namespace.get("__package__") or namespace.get("__name__")
    if not isinstance(name, str) or not name or name == "__main__":
        raise TypeError(
            "protoguard.guard_this_package() is called from a package's __init__.py; "
            'elsewhere use protoguard.install_import_hook("mypackage").'
        )
    if mode is not None:
        mode = _config.check_mode(mode, "protoguard.guard_this_package(mode=...)")
    for hook in _registry.hooks:
        if hook.packages == (name,) and hook.mode == mode:
            return hook  # the package imported twice (a reload): one hook is enough
    return ImportHook((name,), mode).install()
