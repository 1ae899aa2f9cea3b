"""Modes: the PROTOGUARD_MODE environment variable, configure(), and override().

Precedence, strongest first: an ``override()`` block in the current context, the
provider's own ``mode=``, then the global mode (``configure()``, else the environment).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar, Token
from typing import Optional

from . import _findings
from .exceptions import ConfigurationError

OFF = "off"
ON = "on"
STRICT = "strict"
MODES = (OFF, ON, STRICT)

ENV_MODE = "PROTOGUARD_MODE"


def check_mode(value: object, where: str) -> str:
    """Return ``value`` as a mode, or raise one clear error naming the accepted values."""
    if isinstance(value, str):
        normalised = value.strip().lower()
        if normalised in MODES:
            return normalised
        shown = repr(value) if len(value) <= 20 else repr(value[:20] + "...")
    else:
        shown = f"a value of type {type(value).__name__}"
    raise ConfigurationError(
        f"{where}: {shown} is not a protoguard mode; use one of: {', '.join(MODES)}."
    )


def _mode_from_environment() -> str:
    raw = os.environ.get(ENV_MODE)
    if raw is None or raw.strip() == "":
        return ON
    return check_mode(raw, f"the environment variable {ENV_MODE}")


class _Settings:
    """The process-wide settings. One instance; read on every guarded call."""

    __slots__ = ("mode", "overridden")

    def __init__(self) -> None:
        self.mode = _mode_from_environment()
        # True once any override() has been set anywhere: until then a guarded call
        # need not read the ContextVar (a service that never overrides pays nothing).
        self.overridden = False


settings = _Settings()

# The context-local override. ``None`` means "no override in this context".
override_mode: ContextVar[Optional[str]] = ContextVar("protoguard_override_mode", default=None)


def set_override(mode: str) -> Token[Optional[str]]:
    """Set the context-local override (reset it with ``override_mode.reset(token)``)."""
    settings.overridden = True
    return override_mode.set(mode)


def mode_for(mode: Optional[str]) -> str:
    """The mode in force for a provider whose own mode is ``mode`` (None: none)."""
    if settings.overridden:
        return override_mode.get() or mode or settings.mode
    return mode or settings.mode


def configure(*, mode: Optional[str] = None, action: Optional[str] = None) -> None:
    """Change protoguard's process-wide settings.

    ``mode`` is ``"off"``, ``"on"`` or ``"strict"``. It applies to every guarded
    provider that has no ``mode=`` of its own. A provider decorated while the mode was
    ``"off"`` was left unguarded and stays so: ``off`` costs nothing because the
    decorator returns the function unchanged.

    ``action`` is what a strict-mode finding does: ``"raise"`` (the default),
    ``"warn"`` (a ProtocolWarning at the user's line) or ``"log"`` (the ``protoguard``
    logger). Every finding is counted whatever the action: see ``findings()``.
    """
    # Check both before changing either, so a bad call changes nothing.
    new_mode = None if mode is None else check_mode(mode, "protoguard.configure(mode=...)")
    new_action = (
        None
        if action is None
        else _findings.check_action(action, "protoguard.configure(action=...)")
    )
    if new_mode is not None:
        settings.mode = new_mode
    if new_action is not None:
        _findings.table.action = new_action


def current_mode() -> str:
    """The mode in force here: the innermost ``override()``, else the global mode."""
    return override_mode.get() or settings.mode


@contextlib.contextmanager
def override(*, mode: str) -> Iterator[None]:
    """Use ``mode`` for every guarded provider called inside this block.

    Context-local (a ``ContextVar``), so concurrent tasks and threads each keep their
    own; meant for tests. It wins over a provider's own ``mode=``. Providers that were
    decorated with mode ``"off"`` are not guarded and cannot be turned on here.
    """
    token = set_override(check_mode(mode, "protoguard.override(mode=...)"))
    try:
        yield
    finally:
        override_mode.reset(token)
