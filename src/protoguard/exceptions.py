"""The exceptions and warnings protoguard raises.

Every error subclasses the builtin that Python itself would have raised for the same
mistake, so ``except TypeError`` / ``except AttributeError`` clauses and ``hasattr``
keep working when a provider is guarded.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Optional

__all__ = [
    "CallSite",
    "ConfigurationError",
    "ProtocolAttributeError",
    "ProtocolError",
    "ProtocolWarning",
    "ProviderInfo",
    "ProviderRuntimeError",
]

#: A provider kind, as type checkers see it: ``ProviderInfo.kind``, one of the values of
#: :data:`protoguard.KINDS`.
Kind = Literal[
    "async context manager",
    "context manager",
    "async generator",
    "generator",
    "coroutine function",
    "async_sessionmaker",
    "sessionmaker",
    "function",
]

#: A misuse code, as type checkers see it: ``ProtocolError.code`` and the ``code`` of
#: every finding, PG101-PG107 for a wrong protocol and PG201-PG206 for strict mode's
#: findings.
Code = Literal[
    "PG101",
    "PG102",
    "PG103",
    "PG104",
    "PG105",
    "PG106",
    "PG107",
    "PG201",
    "PG202",
    "PG203",
    "PG204",
    "PG205",
    "PG206",
]


class CallSite(NamedTuple):
    """Where in the user's code a provider was used: a file and a line number."""

    filename: str
    lineno: int

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno}"


class ProviderInfo(NamedTuple):
    """What a guarded provider is: its qualified name, kind, and where it is defined."""

    #: The provider's qualified name, as the user wrote it (``get_db``, ``Repo.session``).
    name: str
    #: The provider's kind, one of the values of :data:`protoguard.KINDS`.
    kind: Kind
    #: The file that defines the provider (``None`` when it cannot be found).
    filename: Optional[str]
    #: The line of that definition (``None`` when it cannot be found).
    lineno: Optional[int]

    @property
    def location(self) -> str:
        """``file:line`` of the definition, or ``"an unknown location"``."""
        if self.filename is None:
            return "an unknown location"
        if self.lineno is None:
            return self.filename
        return f"{self.filename}:{self.lineno}"


class ProtocolError(TypeError):
    """A session provider was used with a protocol it does not speak.

    Raised at the user's own line. The message names the misuse code, where it
    happened, what the provider is, and the line rewritten to the right protocol.
    The attributes carry the same facts for programs and tests.
    """

    #: The stable misuse code, e.g. ``"PG101"``.
    code: Code
    #: The provider that was misused.
    provider: ProviderInfo
    #: The protocol the user's code used, e.g. ``"async for"``.
    used: str
    #: The protocols the provider speaks, e.g. ``("async with",)``.
    supported: tuple[str, ...]
    #: The user's file and line, or ``None`` when no frame of the user's could be found.
    call_site: Optional[CallSite]
    #: The user's line rewritten to the right protocol.
    fix: str

    def __init__(
        self,
        message: str,
        *,
        code: Code,
        provider: ProviderInfo,
        used: str,
        supported: tuple[str, ...],
        call_site: Optional[CallSite],
        fix: str,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.provider = provider
        self.used = used
        self.supported = supported
        self.call_site = call_site
        self.fix = fix

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ProtocolAttributeError(ProtocolError, AttributeError):
    """PG103: the provider's result was used as if it were the session; PG107: a
    one-shot context manager was entered a second time; before Python 3.11, a ``with``
    or ``async with`` on what is no such context manager (PG102, PG105, PG106).

    Also an :class:`AttributeError`, which is what Python raises for all of them
    (``AttributeError: __aenter__`` before 3.11), so ``hasattr()`` and ``except
    AttributeError`` see exactly what they would see without protoguard.
    """

    def __init__(self, message: str, *, name: Optional[str], obj: object, **kwargs: object) -> None:
        ProtocolError.__init__(self, message, **kwargs)  # type: ignore[arg-type]
        # AttributeError's own fields, so tools that read them (and Python 3.10+'s
        # "Did you mean" machinery) find what they expect.
        self.name = name
        self.obj = obj


class ProviderRuntimeError(ProtocolError, RuntimeError):
    """PG205: a provider broke its own protocol (yielded zero times, twice, or the
    wrong type).

    Also a :class:`RuntimeError`, which is what contextlib raises for the first two.
    """


class ProtocolWarning(UserWarning):
    """A provider misuse reported as a warning rather than raised."""


class ConfigurationError(ValueError):
    """protoguard was given a setting it does not accept (an unknown mode, say)."""


# Shown as protoguard.ProtocolError in tracebacks, even for errors raised while
# protoguard/__init__.py is still importing (an invalid PROTOGUARD_MODE, say).
for _cls in (
    ProtocolError,
    ProtocolAttributeError,
    ProviderRuntimeError,
    ProtocolWarning,
    ConfigurationError,
):
    _cls.__module__ = "protoguard"
del _cls
