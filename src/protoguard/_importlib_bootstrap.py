"""The loader the import hook puts in front of a module's real one (see ``_importhook``).

This file's name is part of what it does. ``Loader.exec_module`` is the one frame of
protoguard's that sits between importlib and a module's code while the module runs. A
library that warns as it is imported, ``warnings.warn(..., stacklevel=2)``, means the
``import`` line that imported it; ``warnings`` walks up the frames to find it, skipping
importlib's own, and it knows them only by their file name: one that contains both
``importlib`` and ``_bootstrap`` (``warnings._is_internal_frame``, and the C version
Python really runs, the same test from 3.9 to 3.13). There is no other way to tell it to
skip a frame: 3.12's ``skip_file_prefixes`` is the warning caller's own argument. So
``exec_module`` lives in a file whose name passes that test, and a warning goes past it
as it goes past importlib. This is a real file: a traceback through ``exec_module`` (a
finding raised as an error) shows its path and its lines as any other file's.
tests/test_importhook.py checks both; do not rename it.

An exception the module's own code raises leaves with this frame taken out of its
traceback (from Python 3.11 on), so that Python hides importlib's frames around it as it
does without protoguard; it is otherwise the exception the module raised.

Nothing here may import ``_importhook`` at import time (it imports this module).
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from collections.abc import Callable
from typing import Any, Optional


class Loader:
    """Stands in for the real loader only until the module's code is about to run."""

    def __init__(
        self,
        real: Any,
        executed: Callable[[Optional[types.ModuleType]], None],
        spec: importlib.machinery.ModuleSpec,
    ) -> None:
        self._real = real
        self._executed = executed  # checks the module with the hooks that matched it
        self._spec: Any = spec  # its loader is this object, which typeshed cannot say

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[types.ModuleType]:
        create = getattr(self._real, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: types.ModuleType) -> None:
        real = self._real
        # Give the module its real loader back before any of its code runs.
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = real
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = real
        try:
            real.exec_module(module)  # reads and writes the .pyc exactly as without us
        except BaseException as exc:
            # The module's exception, with the traceback it has without protoguard: this
            # frame taken out, Python hides importlib's frames above it and below it as
            # it does for any import (it hides a run of them that leads without a break
            # to the one that called the module's code). Only from 3.11 on does a bare
            # raise re-raise exc.__traceback__, not the traceback caught here.
            traceback = exc.__traceback__
            if (
                sys.version_info >= (3, 11)
                and traceback is not None
                and traceback.tb_frame is sys._getframe()
            ):
                exc.__traceback__ = traceback.tb_next
            del traceback  # no cycle through this frame
            raise
        self._executed(module)

    def get_code(self, fullname: str) -> Any:
        """The module's code, for a caller that runs it itself. runpy does (``python -m
        pkg.mod``, ``runpy.run_module()``): it never calls exec_module(), and gives
        ``__main__`` the spec's loader as ``__loader__`` and ``__spec__.loader``. So the
        spec gets its real loader back here, before any of that code runs; the module it
        runs is not checked. The modules waiting to be checked (the package's
        ``__init__``, which runpy imported first) are checked now."""
        spec = self._spec
        if spec.loader is self:
            spec.loader = self._real
        self._executed(None)
        return self._real.get_code(fullname)
