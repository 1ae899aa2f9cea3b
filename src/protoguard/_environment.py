"""The PROTOGUARD_* environment variables, read once as protoguard is imported.

The values that are not valid are one ConfigurationError, a line each: the import fails
with it, before any provider runs under a setting nobody chose. The exceptions are protoguard's own
command (``python -m protoguard``, the ``protoguard`` script) and its pytest plugin
(``protoguard._pytest_plugin``, which pytest imports as it loads its plugins), which
import the package before they can say anything: there the error is kept (``errors``)
and the defaults apply until the command or the plugin reports it as a usage error,
instead of a traceback at the import (pytest's "Error while loading plugin").
"""

from __future__ import annotations

import os
import sys
from types import FrameType
from typing import Callable, Optional, TypeVar

from .exceptions import ConfigurationError

T = TypeVar("T")

#: The errors of the environment's values, when protoguard's command deferred them.
errors: list[ConfigurationError] = []
# The errors read so far, until report() raises or defers them all: a user fixing the
# environment sees every invalid value at once, not one per attempt.
_read: list[ConfigurationError] = []

# The pytest plugin's module, whose import imports the package first.
_PYTEST_PLUGIN = "protoguard._pytest_plugin"
# The names protoguard's command runs as: the package or its __main__ under -m, or the
# console script pip writes (protoguard, protoguard.exe, protoguard-script.py).
_COMMAND_MODULES = ("protoguard", "protoguard.__main__")
_COMMAND_SCRIPTS = ("protoguard", "protoguard-script")


def shown(value: object) -> str:
    """A rejected setting as its error message shows it: a short text, else its type."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 20 else repr(value[:20] + "...")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # A number set in code ("2 is not a sample rate"): no credential looks like one.
        text = repr(value)
        return (
            text if len(text) <= 20 else f"a {len(text.lstrip('-'))}-digit {type(value).__name__}"
        )
    return f"a value of type {type(value).__name__}"


def read(name: str, check: Callable[[object, str], T], default: T) -> T:
    """The setting in the environment variable ``name`` (unset or blank: ``default``)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return check(raw, f"the environment variable {name}")
    except ConfigurationError as error:
        _read.append(error)
        return default


def report() -> None:
    """Raise the errors of the values read, as one; or keep them in ``errors`` for
    protoguard's command or pytest plugin. Called once every variable has been read."""
    if not _read:
        return
    found = _read[:]
    _read.clear()
    if _imported_by_the_command() or importing(_PYTEST_PLUGIN):
        errors.extend(found)
        return
    if len(found) == 1:
        raise found[0].with_traceback(None)  # not read()'s frames: it returned
    raise ConfigurationError("\n".join(str(error) for error in found))


def _imported_by_the_command() -> bool:
    """Whether protoguard is being imported to run its own command. Read only for an
    invalid value, so the frame walk costs nothing otherwise."""
    frame: Optional[FrameType] = sys._getframe(1)
    outermost = sys._getframe(1)
    while frame is not None:
        # runpy's _run_module_as_main(mod_name, ...) runs ``python -m <mod_name>``; it is
        # on the stack while the package is imported to find its __main__.
        if frame.f_code.co_name == "_run_module_as_main" and (
            frame.f_globals.get("__name__") == "runpy"
        ):
            return frame.f_locals.get("mod_name") in _COMMAND_MODULES
        outermost = frame
        frame = frame.f_back
    script = os.path.splitext(os.path.basename(sys.argv[0] if sys.argv else ""))[0]
    return script in _COMMAND_SCRIPTS and outermost.f_globals.get("__name__") == "__main__"


def importing(name: str) -> bool:
    """Whether the module ``name`` is being imported on this thread: an ``import``
    statement, ``importlib.import_module()`` or ``__import__()`` of it, not a mere look
    for it (``importlib.util.find_spec()``). Each of these runs importlib's
    ``_find_and_load(name, ...)``, whose frame stays on the stack while the module is
    found and runs (the same from 3.9 to 3.13)."""
    frame: Optional[FrameType] = sys._getframe(1)
    while frame is not None:
        if (
            frame.f_code.co_name == "_find_and_load"
            and frame.f_globals.get("__name__") in ("importlib._bootstrap", "_frozen_importlib")
            and frame.f_locals.get("name") == name
        ):
            return True
        frame = frame.f_back
    return False
