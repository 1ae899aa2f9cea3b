"""Strict-mode findings: count every one, then raise, warn or log it.

A finding is a ProtocolError that strict mode made (PG2xx). Whatever the action, it is
counted in a process-wide table keyed by (code, call site), which
``protoguard.findings()`` returns, so a service can watch them without raising and a
test can assert there are none.
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import logging
import sys
import threading
import warnings
from typing import Any, Literal, Optional

from . import _environment
from .exceptions import CallSite, Code, ConfigurationError, ProtocolError, ProtocolWarning

#: What a strict-mode finding does, as type checkers see it.
Action = Literal["raise", "warn", "log"]

RAISE: Action = "raise"
WARN: Action = "warn"
LOG: Action = "log"
ACTIONS: tuple[Action, ...] = (RAISE, WARN, LOG)
ENV_ACTION = "PROTOGUARD_ACTION"

logger = logging.getLogger("protoguard")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One kind of strict-mode finding at one place, and how often it happened."""

    #: The code, e.g. ``"PG201"``.
    code: Code
    #: The user's file and line the finding names (``None`` if none could be found).
    call_site: Optional[CallSite]
    #: How many times it happened.
    count: int
    #: The message of its first occurrence.
    message: str


def check_action(value: object, where: str) -> Action:
    """Return ``value`` as an action, or raise one clear error naming the accepted ones."""
    if isinstance(value, str):
        normalised = value.strip().lower()
        if normalised in ACTIONS:
            return normalised
    raise ConfigurationError(
        f"{where}: {_environment.shown(value)} is not a protoguard action; "
        f"use one of: {', '.join(ACTIONS)}."
    )


class _Table:
    """The counted findings. A lock, because threads report too.

    The garbage collector can report a finding (a provider's result never used, found
    in a finaliser) at any allocation, in the thread that holds the lock too: while it
    counts another finding or copies the table for ``findings()``. Taking the lock again
    there would hang that thread for good, and changing the table there would break
    the loop that is reading it. So a finding goes into ``pending`` (a deque, whose
    append needs no lock) and is counted by whichever thread holds the lock next, the
    thread that is already holding it included, before it lets go.
    """

    def __init__(self) -> None:
        # PROTOGUARD_ACTION is read by _config, with the other variables: an import that
        # fails on an invalid value must not leave this module imported with a default.
        self.action: Action = RAISE
        self.lock = threading.Lock()
        self.holder: Optional[int] = None  # the thread holding the lock
        self.pending: collections.deque[ProtocolError] = collections.deque()
        self.entries: dict[tuple[Code, Optional[CallSite]], Finding] = {}

    def count(self, error: ProtocolError) -> None:
        self.pending.append(error)
        me = threading.get_ident()  # before the lock: nothing allocates once it is held
        if self.holder == me:
            return  # made by a collection while this thread counts or reads: see above
        with self.lock:
            self.holder = me
            try:
                self._count_pending()
            finally:
                self.holder = None

    def _count_pending(self) -> None:
        """Count what is pending (the lock held); a finding the collector makes meanwhile
        is pending too, and counted in the same loop."""
        pending, entries = self.pending, self.entries
        while pending:
            error = pending.popleft()
            key = (error.code, error.call_site)
            seen = entries.get(key)
            if seen is None:
                entries[key] = Finding(error.code, error.call_site, 1, str(error))
            else:
                entries[key] = dataclasses.replace(seen, count=seen.count + 1)

    def snapshot(self, clear: bool = False) -> list[Finding]:
        """The counted findings, oldest first (and forget them, if ``clear``)."""
        me = threading.get_ident()
        with self.lock:
            self.holder = me
            try:
                self._count_pending()
                found = list(self.entries.values())
                if clear:
                    self.entries.clear()
                return found
            finally:
                self.holder = None


table = _Table()


def findings() -> list[Finding]:
    """Every strict-mode finding so far, one entry per (code, call site), oldest first."""
    return table.snapshot()


def clear_findings() -> None:
    """Forget every finding (tests call this between cases)."""
    table.snapshot(clear=True)


def _hook_args_type() -> Any:
    """``sys.UnraisableHookArgs``, which Python does not export: catch one to learn it."""
    captured: list[Any] = []

    class _Probe:
        def __del__(self) -> None:
            raise RuntimeError("protoguard probing sys.unraisablehook's argument type")

    previous = sys.unraisablehook
    sys.unraisablehook = captured.append
    try:
        _Probe()
        gc.collect()
    finally:
        sys.unraisablehook = previous
    return type(captured[0]) if captured else None


_HOOK_ARGS: Any = None


class _Subject:
    """What an unraisable finding is about, as the hook prints it after its message
    (``...: get_db() at app.py:7``; pytest prints it whatever it is, None included)."""

    def __init__(self, finding: ProtocolError) -> None:
        from ._messages import short_name  # (it imports nothing of protoguard's state)

        name, site = short_name(finding.provider), finding.call_site
        self._text = f"{name}()" if site is None else f"{name}() at {site}"

    def __repr__(self) -> str:
        return self._text


def _unraisable(error: BaseException, finding: ProtocolError, when: str) -> None:
    """Hand ``error`` (the ``finding``, or what the warning filters made of it) to
    ``sys.unraisablehook``, as Python does for errors in ``__del__``."""
    global _HOOK_ARGS
    if _HOOK_ARGS is None:
        _HOOK_ARGS = _hook_args_type() or False
    if _HOOK_ARGS:
        message = f"protoguard strict-mode finding {finding.code}, made {when}"
        subject = _Subject(finding)
        sys.unraisablehook(_HOOK_ARGS((type(error), error, error.__traceback__, message, subject)))
        return

    class _Reporter:  # pragma: no cover - only if the probe above found nothing
        def __del__(self) -> None:
            raise error

    _Reporter()


def report(error: ProtocolError, *, can_raise: bool, when: str = "at garbage collection") -> None:
    """Count ``error``, then act on it as configured.

    ``can_raise`` is False where there is no user call to raise into (a garbage
    collector callback, a task's done callback): ``raise`` then goes to
    ``sys.unraisablehook``, as Python does with exceptions in ``__del__``, with ``when``
    (when the finding was made) in the hook's message; so does a warning that the
    warning filters made an error (``-W error``), or a logging handler's failure.
    """
    table.count(error)
    action = table.action
    if action == RAISE:
        if can_raise:
            raise error
        _unraisable(error, error, when)
        return
    try:
        if action == WARN:
            _warn(error)
        else:
            logger.warning("%s", error)
    except Exception as exc:
        if can_raise:
            raise
        _unraisable(exc, error, when)


# filename -> the name of the module run from it, for the warnings of findings there.
_MODULE_NAMES: dict[str, str] = {}


def _module_named(filename: str) -> Optional[str]:
    """The name of the module whose file is ``filename`` (None if there is none)."""
    name = _MODULE_NAMES.get(filename)
    if name is None:
        for module_name, module in list(sys.modules.items()):  # list(): threads import too
            if getattr(module, "__file__", None) == filename:
                name = _MODULE_NAMES[filename] = module_name
                break
    return name


def _warn(error: ProtocolError) -> None:
    """A ProtocolWarning at the finding's line, as ``warnings.warn`` would make it there:
    with the module's name (for ``-W`` and ``filterwarnings(module=...)``) and its
    warning registry (so the default filters show it once per line)."""
    site = error.call_site
    if site is None:
        warnings.warn(str(error), ProtocolWarning, stacklevel=4)
        return
    name: Optional[str] = None
    registry: Optional[dict[Any, Any]] = None
    try:
        name = _module_named(site.filename)
        if name is not None:
            registry = vars(sys.modules[name]).setdefault("__warningregistry__", {})
    except Exception:  # an odd object in sys.modules: the warning still goes out
        name = None
    if name is None or registry is None:
        # No module ran from that file (code compiled from a string): the warning is
        # made as before. (Not module=None: warn_explicit in C then shows nothing.)
        warnings.warn_explicit(str(error), ProtocolWarning, site.filename, site.lineno)
        return
    text = str(error)
    # The default filters show a warning once per text and line. A PG202 or PG206 names
    # the tasks involved, a new text each time the same line runs in a new task (every
    # request, under a server); so protoguard keeps a key of its own in the registry,
    # per code and line, noted when the filters recorded the text there, together with
    # the filters in force: while they are the same list, unchanged, the same code at the
    # same line is the same warning. (catch_warnings() installs a new list, and Python
    # clears the registry when the filters change, on its next warning there; filters
    # that show every occurrence record nothing.)
    ours = (f"protoguard {error.code}", ProtocolWarning, site.lineno)
    filters = warnings.filters
    seen = registry.get(ours)
    if seen is not None and seen[0] is filters and seen[1] == tuple(filters):
        return
    warnings.warn_explicit(
        text, ProtocolWarning, site.filename, site.lineno, module=name, registry=registry
    )
    if registry.get((text, ProtocolWarning, site.lineno)):  # "default" or "module"
        registry[ours] = (filters, tuple(filters))
