"""FastAPI integration: find, at startup, the dependencies that cannot give a session.

Call :func:`check_app` once the app's routes are declared, for example in its lifespan,
and log or raise on what it returns::

    problems = protoguard.fastapi.check_app(app)
    if problems:
        raise RuntimeError("\\n\\n".join(map(str, problems)))

Needs FastAPI: ``pip install 'protoguard[fastapi]'``.
"""

from __future__ import annotations

try:
    import fastapi as _fastapi
except ImportError as exc:
    if exc.name != "fastapi":
        raise  # FastAPI is there but broken: its own error says more
    raise ImportError(
        "protoguard.fastapi needs FastAPI, which is not installed: "
        "pip install 'protoguard[fastapi]'"
    ) from exc

from ._fastapi_check import DependencyProblem as DependencyProblem
from ._fastapi_check import check_app as check_app

__all__ = ["DependencyProblem", "check_app"]

DependencyProblem.__module__ = __name__
check_app.__module__ = __name__

del _fastapi
