"""The public surface: every export once, documented, and nothing private leaking."""

from __future__ import annotations

import inspect
import pathlib
import re
import typing

import protoguard
import protoguard.exceptions


def test_all_is_exact() -> None:
    """__all__ lists each public name once, and every public module attribute is in it."""
    assert len(set(protoguard.__all__)) == len(protoguard.__all__)
    public = {
        name
        for name, value in vars(protoguard).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(protoguard.__all__)


def test_exports_claim_the_package() -> None:
    """Classes and functions show up as protoguard.X in tracebacks and reprs."""
    for name in protoguard.__all__:
        value = getattr(protoguard, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__ == "protoguard", name


def test_exports_are_documented() -> None:
    """Every exported class and function has a docstring."""
    for name in protoguard.__all__:
        value = getattr(protoguard, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name


def test_literal_aliases_match_the_accepted_values() -> None:
    """protoguard.Mode and protoguard.Action, the types of mode= and action=, allow
    exactly the values MODES and ACTIONS list, the ones the run-time check accepts."""
    assert typing.get_args(protoguard.Mode) == protoguard.MODES == ("off", "on", "strict")
    assert typing.get_args(protoguard.Action) == protoguard.ACTIONS == ("raise", "warn", "log")


def test_kind_alias_matches_the_kinds() -> None:
    """protoguard.Kind, the type of ProviderInfo.kind, allows exactly the kinds KINDS
    lists; the values are plain strings."""
    assert typing.get_args(protoguard.Kind) == protoguard.KINDS
    assert all(type(kind) is str for kind in protoguard.KINDS)


def test_code_alias_matches_the_catalog() -> None:
    """protoguard.Code, the type of every error's and finding's code, allows exactly the
    codes the error catalog (docs/errors.md) documents."""
    catalog = (pathlib.Path(__file__).parent.parent / "docs" / "errors.md").read_text()
    documented = re.findall(r"^#+ (PG\d{3}):", catalog, flags=re.MULTILINE)
    assert typing.get_args(protoguard.Code) == tuple(documented)


def test_exceptions_module_matches() -> None:
    """protoguard.exceptions exports the same exception classes as the package."""
    for name in protoguard.exceptions.__all__:
        assert getattr(protoguard, name) is getattr(protoguard.exceptions, name)


def test_error_hierarchy() -> None:
    """Errors subclass the builtins that Python raises for the same mistakes."""
    assert issubclass(protoguard.ProtocolError, TypeError)
    assert issubclass(protoguard.ProtocolAttributeError, protoguard.ProtocolError)
    assert issubclass(protoguard.ProtocolAttributeError, AttributeError)
    assert issubclass(protoguard.ProtocolWarning, UserWarning)
    assert issubclass(protoguard.ConfigurationError, ValueError)


def test_version() -> None:
    """The package has a version string that matches the installed metadata."""
    from importlib.metadata import version

    assert protoguard.__version__ == version("protoguard")
