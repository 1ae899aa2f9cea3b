"""Modes: the PROTOGUARD_MODE environment variable, configure(), and override().

Precedence, strongest first: an ``override()`` block in the current context, the
provider's own ``mode=``, then the global mode (``configure()``, else the environment).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import random
import re
from collections.abc import Iterator
from contextvars import ContextVar, Token
from typing import Literal, Optional

from . import _environment, _findings
from ._findings import Action
from .exceptions import ConfigurationError

#: A mode, as type checkers see it: ``configure(mode="strcit")`` is an error there, as
#: it is at run time.
Mode = Literal["off", "on", "strict"]

OFF: Mode = "off"
ON: Mode = "on"
STRICT: Mode = "strict"
MODES: tuple[Mode, ...] = (OFF, ON, STRICT)

ENV_MODE = "PROTOGUARD_MODE"
ENV_SAMPLE_RATE = "PROTOGUARD_SAMPLE_RATE"
# A decimal number in ASCII digits, with an optional sign and exponent.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def check_mode(value: object, where: str) -> Mode:
    """Return ``value`` as a mode, or raise one clear error naming the accepted values.

    Typed callers can pass only a ``Mode``; the check is for the others (untyped code,
    a ``cast`` of a configuration value, the environment)."""
    if isinstance(value, str):
        normalised = value.strip().lower()
        if normalised in MODES:
            return normalised
    raise ConfigurationError(
        f"{where}: {_environment.shown(value)} is not a protoguard mode; "
        f"use one of: {', '.join(MODES)}."
    )


def check_sample_rate(value: object, where: str) -> float:
    """Return ``value`` as a share of provider uses (0 to 1), or raise one clear error."""
    rate: Optional[float] = None
    if isinstance(value, bool):
        pass  # True is a number to Python, but no share of anything
    elif isinstance(value, str):
        # A rate as the docs write one (0.1, 1e-2), not every text float() reads: it also
        # takes other scripts' digits ("\u0661" is 1.0) and underscores ("0.2_5").
        if _DECIMAL.fullmatch(value.strip()):
            rate = float(value)
    elif isinstance(value, numbers.Real):
        with contextlib.suppress(OverflowError):  # an int too large for a float
            rate = float(value)
    if rate is not None and 0.0 <= rate <= 1.0:  # NaN fails both comparisons
        return rate + 0.0  # -0.0 as 0.0
    raise ConfigurationError(
        f"{where}: {_environment.shown(value)} is not a sample rate; use a number from 0 to 1, the "
        f"share of provider uses strict mode watches (0.1: one in ten; 1: every use, the "
        f"default)."
    )


class _Settings:
    """The process-wide settings. One instance; read on every guarded call."""

    __slots__ = ("_random", "left", "mode", "overridden", "sample_rate", "sampling")

    def __init__(self) -> None:
        self.mode: Mode = _environment.read(ENV_MODE, check_mode, ON)
        # True once any override() has been set anywhere: until then a guarded call
        # need not read the ContextVar (a service that never overrides pays nothing).
        self.overridden = False
        self._random = random.Random()
        self.set_sample_rate(_environment.read(ENV_SAMPLE_RATE, check_sample_rate, 1.0))

    def set_sample_rate(self, rate: float) -> None:
        left = self._gap(rate)  # first: if it failed, nothing would have changed
        self.sample_rate = rate
        # False at 1, the default: a strict-mode provider use then reads only this flag.
        self.sampling = rate < 1.0
        self.left = left

    def _gap(self, rate: float) -> float:
        """How many strict-mode uses from here to the next watched one, counting it.

        A random count, distributed as if a coin that comes up heads with probability
        ``rate`` were tossed at each use (a geometric distribution): the uses in between
        then cost a count each, and uses that come in a fixed rhythm (every tenth request
        is of one kind) are not always watched or always missed.
        """
        if rate >= 1.0:
            return 1
        if rate <= 0.0:
            return math.inf  # never: a count that does not run out
        # log1p: exact for rates so small that 1.0 - rate rounds to 1.0.
        gap = math.log(1.0 - self._random.random()) / math.log1p(-rate)
        return 1 + math.floor(gap) if gap < _FAR else math.inf

    def reseed(self) -> None:
        """A forked worker draws its own uses, not its parent's sequence."""
        self._random.seed()
        self.left = self._gap(self.sample_rate)


# Gaps longer than this are "never" (a float cannot count further by ones anyway).
_FAR = 2.0**53


# Every PROTOGUARD_* variable is read here, in the order protoguard's command reports them,
# then their errors raised as one (see _environment.report). Read in this module, whose
# import fails with them: a module imported before it (_findings) stays imported, and an
# import tried again would find the action read already, with its default.
_findings.table.action = _environment.read(
    _findings.ENV_ACTION, _findings.check_action, _findings.RAISE
)
settings = _Settings()
_environment.report()
if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=settings.reseed)


def unwatched() -> bool:
    """Whether this strict-mode provider use is left out of the sample and runs as mode
    ``"on"``. Called only while the sample rate is below 1 (``settings.sampling``).
    Inside an ``override(mode="strict")`` block every use is watched: it is meant for
    tests, which must not depend on chance."""
    if settings.overridden and override_mode.get() is not None:
        return False
    settings.left -= 1
    if settings.left > 0:
        return True
    settings.left = settings._gap(settings.sample_rate)
    return False


# The context-local override. ``None`` means "no override in this context".
override_mode: ContextVar[Optional[Mode]] = ContextVar("protoguard_override_mode", default=None)


def set_override(mode: Mode) -> Token[Optional[Mode]]:
    """Set the context-local override (reset it with ``override_mode.reset(token)``)."""
    settings.overridden = True
    return override_mode.set(mode)


def mode_for(mode: Optional[Mode]) -> Mode:
    """The mode in force for a provider whose own mode is ``mode`` (None: none)."""
    if settings.overridden:
        return override_mode.get() or mode or settings.mode
    return mode or settings.mode


def configure(
    *,
    mode: Optional[Mode] = None,
    action: Optional[Action] = None,
    sample_rate: Optional[float] = None,
) -> None:
    """Change protoguard's process-wide settings.

    ``mode`` is ``"off"``, ``"on"`` or ``"strict"``. It applies to every guarded
    provider that has no ``mode=`` of its own. A provider decorated while the mode was
    ``"off"`` was left unguarded and stays so: ``off`` costs nothing because the
    decorator returns the function unchanged. The exception is an
    ``@asynccontextmanager``/``@contextmanager`` function, which keeps a guard that
    checks nothing (so that FastAPI's ``Depends()`` still drives it) and stays off.

    ``action`` is what a strict-mode finding does: ``"raise"`` (the default),
    ``"warn"`` (a ProtocolWarning at the user's line) or ``"log"`` (the ``protoguard``
    logger). Every finding is counted whatever the action: see ``findings()``.

    ``sample_rate``, from 0 to 1, is the share of provider uses strict mode watches
    (1, every use, unless ``PROTOGUARD_SAMPLE_RATE`` says otherwise): at 0.1 a random
    one in ten gets strict mode's checks and the others run as in mode ``"on"``, the
    uses of providers decorated with ``mode="strict"`` included; inside an
    ``override(mode="strict")`` block every use is watched. Pair a rate below 1 with
    ``action="log"`` or ``"warn"``: with ``"raise"``, a misuse fails only the uses that
    happen to be watched.
    """
    # Check all before changing any, so a bad call changes nothing.
    new_mode = None if mode is None else check_mode(mode, "protoguard.configure(mode=...)")
    new_action = (
        None
        if action is None
        else _findings.check_action(action, "protoguard.configure(action=...)")
    )
    new_rate = (
        None
        if sample_rate is None
        else check_sample_rate(sample_rate, "protoguard.configure(sample_rate=...)")
    )
    if new_mode is not None:
        settings.mode = new_mode
    if new_action is not None:
        _findings.table.action = new_action
    if new_rate is not None:
        settings.set_sample_rate(new_rate)


def current_mode() -> Mode:
    """The mode in force here: the innermost ``override()``, else the global mode."""
    return override_mode.get() or settings.mode


def current_action() -> Action:
    """What a strict-mode finding does: ``"raise"``, ``"warn"`` or ``"log"``
    (``configure(action=...)``, else ``PROTOGUARD_ACTION``, else ``"raise"``)."""
    return _findings.table.action


def current_sample_rate() -> float:
    """The share of provider uses strict mode watches here, from 0 to 1: 1.0 inside an
    ``override()`` block, where the rate does not apply (``override(mode="strict")``
    watches every use), else the process-wide rate (``configure(sample_rate=...)``, else
    ``PROTOGUARD_SAMPLE_RATE``, else 1.0).

    A service that counts findings while watching a share of uses can divide by it
    to estimate how many uses were wrong in all."""
    if settings.overridden and override_mode.get() is not None:
        return 1.0
    return settings.sample_rate


@contextlib.contextmanager
def override(*, mode: Mode) -> Iterator[None]:
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
