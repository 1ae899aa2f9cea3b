"""Test, lint, type-check and build the docs: ``nox`` runs them all.

``tests`` runs on every Python 3.9-3.13 it can find, skipping the missing ones. Besides
PATH it looks in pyenv's versions folder, since pyenv puts only its global version on
PATH.
"""

from __future__ import annotations

import glob
import os

import nox

PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]

nox.options.sessions = ["tests", "fastapi_0123", "wrapt_1", "lint", "typing", "docs"]
nox.options.error_on_missing_interpreters = False
nox.options.reuse_existing_virtualenvs = True


def _add_pyenv_interpreters() -> None:
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = []
    for version in PYTHONS:
        # newest patch release first, e.g. ~/.pyenv/versions/3.9.18/bin
        dirs = sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin")))
        dirs = [d for d in dirs if os.path.exists(os.path.join(d, f"python{version}"))]
        if dirs:
            found.append(dirs[-1])
    if found:
        os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), *found])


_add_pyenv_interpreters()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite, on real SQLAlchemy (aiosqlite) and a real FastAPI app."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def fastapi_0123(session: nox.Session) -> None:
    """The test suite on FastAPI 0.123.4, the last release that injects what a
    context-manager dependency returns instead of unwrapping it."""
    session.install("-e", ".[test]", "fastapi==0.123.4")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def wrapt_1(session: nox.Session) -> None:
    """The test suite on wrapt 1.x (pyproject allows wrapt>=1.14): protoguard's proxies
    make and read wrapt proxies below wrapt's documented surface (see _proxies)."""
    session.install("-e", ".[test]", "wrapt>=1.14,<2")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    paths = ["src", "tests", "typing_tests", "benchmarks", "examples", "noxfile.py"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session(python="3.11")
def typing(session: nox.Session) -> None:
    """mypy --strict on the package and on typing_tests/ (checked, never run), and
    pyright on typing_tests/: the types users see must hold in both checkers."""
    # pytest too: the plugin module is typed against it. pyright's PyPI package fetches
    # pyright itself from the npm registry on its first run.
    session.install("-e", ".[all]", "pytest", "mypy>=1.10", "pyright==1.1.414")
    session.run("mypy", "--strict", "src/protoguard", "typing_tests")
    # typing_tests/pyrightconfig.json: strict, and an ignore that is not needed is an
    # error, so each negative check is one for pyright too.
    python = os.path.join(session.bin, "python")  # the session's packages, not PATH's
    session.run("pyright", "-p", "typing_tests", "--pythonpath", python)


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Build the docs with warnings as errors."""
    session.install("mkdocs>=1.5")
    session.run("mkdocs", "build", "--strict", "--site-dir", "build/site")
