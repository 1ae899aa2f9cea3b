"""``protoguard check``: real packages written to tmp_path, checked in a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

import protoguard as protoguard_package

DEPS = """
from contextlib import asynccontextmanager, contextmanager


@asynccontextmanager
async def get_db():
    yield "session"


async def gen_db():
    yield "session"
"""

BROKEN = """
from .deps import get_db, gen_db


async def handler():
    async for db in get_db():
        pass
    async with gen_db() as db:
        pass
"""

FIXED = """
from .deps import get_db, gen_db


async def handler():
    async with get_db() as db:
        pass
    async for db in gen_db():
        pass
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A working directory with a broken package ``shop`` and a clean one ``clean``."""
    for name, body in (("shop", BROKEN), ("clean", FIXED)):
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "deps.py").write_text(DEPS)
        (package / "handlers.py").write_text(textwrap.dedent(body))
    return tmp_path


def protoguard(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PROTOGUARD_CACHE_DIR=str(cwd / ".cache"))
    return subprocess.run(
        [sys.executable, "-m", "protoguard", "check", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )


class TestExitCodes:
    """0 clean, 1 findings, 2 a usage error or a target that cannot be imported."""

    def test_findings(self, project: Path) -> None:
        """A package with misuses: exit 1, one line per finding, path:line:col: CODE."""
        result = protoguard(project, "shop")
        assert result.returncode == 1, result.stderr
        lines = result.stdout.splitlines()
        handlers = os.path.join("shop", "handlers.py")
        assert lines[0].startswith(f"{handlers}:6:21: PG101 'async for' over get_db()")
        assert lines[0].endswith("fix: async with get_db() as db:")
        assert lines[1].startswith(f"{handlers}:8:16: PG102 'async with' on gen_db()")
        # The provider's file is shown as the finding's is: relative to the directory.
        deps = os.path.join("shop", "deps.py")
        assert f"get_db: an @asynccontextmanager function, defined at {deps}:" in lines[0]
        assert str(project) not in result.stdout
        assert len(lines) == 2
        assert "2 wrong protocol(s) found." in result.stderr

    def test_clean(self, project: Path) -> None:
        """A clean package: exit 0, nothing on stdout."""
        result = protoguard(project, "clean")
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""

    def test_paths_and_modules(self, project: Path) -> None:
        """A module name, a file path and a package directory all work."""
        for target in ("shop.handlers", "shop/handlers.py", "shop", str(project / "shop")):
            result = protoguard(project, target)
            assert result.returncode == 1, (target, result.stderr)
            assert len(result.stdout.splitlines()) == 2

    def test_plain_directory(self, project: Path) -> None:
        """A directory that is not a package: every package in it."""
        result = protoguard(project, ".")
        assert result.returncode == 1, result.stderr
        assert len(result.stdout.splitlines()) == 2

    def test_unimportable_target(self, project: Path) -> None:
        """A module that does not exist: exit 2 with the reason; the others are checked."""
        result = protoguard(project, "nosuchmodule", "shop")
        assert result.returncode == 2
        assert (
            "protoguard check: cannot import 'nosuchmodule', so it was not checked: "
            "ModuleNotFoundError: No module named 'nosuchmodule'\n" in result.stderr
        )
        assert "1 module(s) could not be imported and were not checked" in result.stderr
        assert len(result.stdout.splitlines()) == 2  # shop's findings all the same

    def test_version(self) -> None:
        """protoguard --version names the installed version."""
        result = subprocess.run(
            [sys.executable, "-m", "protoguard", "--version"], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"protoguard {protoguard_package.__version__}\n"

    def test_nothing_found_but_not_everything_checked(self, project: Path) -> None:
        """A misspelt target: the summary does not read like a clean result."""
        result = protoguard(project, "shopp")
        assert result.returncode == 2
        assert "No wrong protocols in the modules that were checked.\n" in result.stderr
        assert "No wrong protocols.\n" not in result.stderr

    def test_unimportable_modules_in_a_package(self, project: Path) -> None:
        """A module, or a package, of the target that fails on import: one line each,
        with the reason and where it was raised; every other module is checked and its
        findings are printed; exit 2."""
        (project / "shop" / "bad.py").write_text(
            "x = 1\nraise RuntimeError('no database:\\n\\n  set DATABASE_URL')\n"
        )
        broken = project / "shop" / "broken"
        broken.mkdir()
        (broken / "__init__.py").write_text("import not_installed\n")
        (broken / "never.py").write_text("raise SystemExit('not imported: its package failed')\n")
        (project / "shop" / "zzz").mkdir()
        (project / "shop" / "zzz" / "__init__.py").write_text("")
        (project / "shop" / "zzz" / "late.py").write_text(BROKEN.replace(".deps", "..deps"))
        result = protoguard(project, "shop")
        assert result.returncode == 2, result.stderr
        bad = os.path.join("shop", "bad.py")
        init = os.path.join("shop", "broken", "__init__.py")
        assert result.stderr.splitlines()[:2] == [
            "protoguard check: cannot import 'shop.bad', so it was not checked: "
            f"RuntimeError: no database: set DATABASE_URL (at {bad}:2)",
            "protoguard check: cannot import 'shop.broken', so it was not checked: "
            f"ModuleNotFoundError: No module named 'not_installed' (at {init}:1)",
        ]
        assert "2 module(s) could not be imported" in result.stderr
        assert "never" not in result.stderr
        found = [line.split(":")[0] for line in result.stdout.splitlines()]
        late = os.path.join("shop", "zzz", "late.py")
        assert found == [os.path.join("shop", "handlers.py")] * 2 + [late] * 2
        json_result = protoguard(project, "shop", "--format", "json")
        assert json_result.returncode == 2
        assert len(json.loads(json_result.stdout)) == 4

    def test_failures_raised_in_a_library_are_where_the_module_called_it(
        self, project: Path
    ) -> None:
        """A module whose import-time call fails in the standard library or an installed
        library (argparse's parse_args() exits in argparse, a pydantic model's
        ValidationError is raised in pydantic): the line of the module's own code that
        called it, not the library's. A package that is itself installed (checked from
        site-packages) is its own code."""
        (project / "shop" / "opts.py").write_text(
            "import argparse\n\nparser = argparse.ArgumentParser()\n"
            "parser.add_argument('--db', required=True)\nargs = parser.parse_args()\n"
        )
        (project / "shop" / "settings.py").write_text(
            "import pydantic\n\n\nclass Settings(pydantic.BaseModel):\n    url: str\n\n\n"
            "settings = Settings()\n"
        )
        (project / "shop" / "uses.py").write_text("x = 1\nfrom .opts import args\n")
        vendored = project / "site-packages" / "vendored"
        vendored.mkdir(parents=True)
        (vendored / "__init__.py").write_text(
            "import argparse\n\nargparse.ArgumentParser().parse_args(['--no-such-option'])\n"
        )
        result = protoguard(project, "shop", "site-packages/vendored")
        assert result.returncode == 2, result.stderr
        opts = os.path.join("shop", "opts.py")
        failed = [line for line in result.stderr.splitlines() if "cannot import" in line]
        assert [line.split(": ", 2)[2].rsplit(" (at ", 1)[-1] for line in failed] == [
            f"{opts}:5)",
            f"{os.path.join('shop', 'settings.py')}:8)",
            f"{opts}:5)",  # the module that failed, imported by uses.py
            f"{os.path.join('site-packages', 'vendored', '__init__.py')}:3)",
        ]
        assert failed[0] == (
            "protoguard check: cannot import 'shop.opts', so it was not checked: "
            f"SystemExit: 2 (at {opts}:5)"
        )
        assert "ValidationError: 1 validation error for Settings url " in failed[1]
        assert len(result.stdout.splitlines()) == 2  # shop's findings all the same

    @pytest.mark.parametrize(
        ("link", "target"),
        [("site-packages", "store"), ("libs", os.path.join("store", "site-packages"))],
        ids=["site-packages is a link", "a link to site-packages"],
    )
    def test_a_library_reached_through_a_symlink_is_a_library(
        self, project: Path, link: str, target: str
    ) -> None:
        """A library's file is a library's when either the path the frame gives or the
        one it resolves to is in site-packages (a virtualenv's site-packages that is a link
        into a shared store, or a link to a site-packages): the failure is at the line of
        the module's own code that called it."""
        (project / target).mkdir(parents=True)
        (project / target / "settings_lib.py").write_text(
            "def load():\n    raise LookupError('DATABASE_URL is not set')\n"
        )
        try:
            (project / link).symlink_to(project / target, target_is_directory=True)
        except OSError:  # pragma: no cover - Windows without the privilege
            pytest.skip("symbolic links cannot be made here")
        (project / "shop" / "conf.py").write_text(
            f"import sys\n\nsys.path.insert(0, {str(project / link)!r})\n"
            "import settings_lib\n\nsettings = settings_lib.load()\n"
        )
        result = protoguard(project, "shop")
        assert result.returncode == 2, result.stderr
        failed = [line for line in result.stderr.splitlines() if "cannot import" in line]
        assert failed == [
            "protoguard check: cannot import 'shop.conf', so it was not checked: "
            f"LookupError: DATABASE_URL is not set (at {os.path.join('shop', 'conf.py')}:6)"
        ]

    def test_modules_that_do_not_compile(self, project: Path) -> None:
        """A SyntaxError, and a null byte (a ValueError before Python 3.11.4): the module's
        file and line, relative as every path is, and advice that fits: the module does
        not compile, with or without protoguard; the others are checked."""
        (project / "shop" / "nul.py").write_bytes(b"x = 1\ny = 2\x00\n")
        (project / "shop" / "syn.py").write_text("x = 1\ny = (\n")
        never_closed = "'(' was never closed"
        if sys.version_info < (3, 10):
            never_closed = "unexpected EOF while parsing"
        result = protoguard(project, "shop")
        assert result.returncode == 2, result.stderr
        nul = os.path.join("shop", "nul.py")
        syn = os.path.join("shop", "syn.py")
        lines = result.stderr.splitlines()
        assert lines[0].startswith("protoguard check: cannot import 'shop.nul', so it was not ")
        assert lines[0].endswith(f"null bytes (at {nul}:2)")
        assert lines[1] == (
            "protoguard check: cannot import 'shop.syn', so it was not checked: "
            f"SyntaxError: {never_closed} (at {syn}:2)"
        )
        assert lines[-1] == (
            "protoguard check: 2 module(s) do not compile, so they were not checked: Python "
            "cannot import them, with or without protoguard (which changes no module's "
            "code); fix the errors above."
        )
        assert "give this environment" not in result.stderr
        assert len(result.stdout.splitlines()) == 2  # shop's findings all the same

    def test_main_modules_are_not_imported(self, project: Path) -> None:
        """A package's __main__.py is the program: checking the package does not run it."""
        for package in (project / "shop", project / "shop" / "sub"):
            package.mkdir(exist_ok=True)
            (package / "__init__.py").touch()
            (package / "__main__.py").write_text(
                "import pathlib\n"
                f"pathlib.Path({str(package / 'RAN')!r}).write_text('the program ran')\n"
                "raise SystemExit(3)\n"
            )
        result = protoguard(project, "shop")
        assert result.returncode == 1, result.stderr
        assert len(result.stdout.splitlines()) == 2
        assert "__main__" not in result.stderr
        assert not (project / "shop" / "RAN").exists()
        assert not (project / "shop" / "sub" / "RAN").exists()

    def test_a_directorys_main_module_is_not_imported(self, project: Path) -> None:
        """A directory target's own __main__.py (a program's, or a zipapp's) is not
        imported either, and is no reason to fail: the rest of it is checked."""
        app = project / "app"
        app.mkdir()
        (app / "__main__.py").write_text(
            f"import pathlib\npathlib.Path({str(app / 'RAN')!r}).write_text('ran')\n"
        )
        (app / "clean.py").write_text("X = 1\n")
        result = protoguard(project, "app")
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == "No wrong protocols."
        assert not (app / "RAN").exists()

    def test_usage_errors(self, project: Path) -> None:
        """No target, a missing path, an unknown format: exit 2."""
        assert protoguard(project).returncode == 2
        missing = protoguard(project, "missing/dir/")
        assert missing.returncode == 2
        assert "no such file or directory" in missing.stderr
        assert protoguard(project, "shop", "--format", "xml").returncode == 2
        assert protoguard(project, "not a name").returncode == 2

    def test_mode_off_in_the_environment(self, project: Path) -> None:
        """PROTOGUARD_MODE=off turns the runtime guard off, not the check."""
        env = dict(os.environ, PROTOGUARD_MODE="off", PROTOGUARD_CACHE_DIR=str(project / "c"))
        result = subprocess.run(
            [sys.executable, "-m", "protoguard", "check", "shop"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 1


class TestAPackageThatGuardsItself:
    """A package that installs a hook of its own (``guard_this_package()`` in its
    ``__init__.py``, as the docs recommend) is checked as any other: the check's hook
    sees every module, whatever the package's hook does with it, and the package's hook
    neither warns nor raises for a module the check covers."""

    INIT = """
import protoguard

protoguard.{call}

from .deps import get_db
from . import routes


async def startup():
    db = await get_db()
    return db
"""

    ROUTE = """
from .deps import get_db


async def handler():
    db = await get_db()
    return db
"""

    @pytest.mark.parametrize(
        ("call", "environment"),
        [
            ("guard_this_package()", {}),
            ("guard_this_package()", {"PROTOGUARD_MODE": "strict"}),
            ('guard_this_package(mode="strict")', {}),
            ("guard_this_package()", {"PYTHONWARNINGS": "error"}),
            ('install_import_hook("gapp", mode="strict")', {}),
        ],
    )
    def test_every_finding_listed_once(
        self, tmp_path: Path, call: str, environment: dict[str, str]
    ) -> None:
        """Each module's finding once, on stdout, and exit 1: no import fails, no
        warning of the package's own hook reaches stderr."""
        package = tmp_path / "gapp"
        package.mkdir()
        (package / "__init__.py").write_text(self.INIT.format(call=call))
        (package / "deps.py").write_text(DEPS)
        (package / "routes.py").write_text(self.ROUTE)
        (package / "other.py").write_text(self.ROUTE)
        env = dict(os.environ, PROTOGUARD_CACHE_DIR=str(tmp_path / ".cache"), **environment)
        for fmt in ("text", "json"):
            result = subprocess.run(
                [sys.executable, "-m", "protoguard", "check", "gapp", "--format", fmt],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
            )
            assert result.returncode == 1, result.stderr
            assert "ProtocolWarning" not in result.stderr
            assert "ProtocolError" not in result.stderr
            assert "cannot import" not in result.stderr
            places = [
                (os.path.join("gapp", "__init__.py"), 11, 16),
                (os.path.join("gapp", "other.py"), 6, 16),
                (os.path.join("gapp", "routes.py"), 6, 16),
            ]
            if fmt == "json":
                found = json.loads(result.stdout)
                assert [(f["path"], f["line"], f["col"]) for f in found] == places
                assert {(f["code"], f["fix"]) for f in found} == {
                    ("PG104", "async with get_db() as db:")
                }
                continue
            assert result.stdout.splitlines() == [
                f"{path}:{line}:{col}: PG104 'await' on get_db(), which is an async context "
                "manager; get_db: an @asynccontextmanager function, defined at "
                f"{os.path.join('gapp', 'deps.py')}:5; fix: async with get_db() as db:"
                for path, line, col in places
            ]
            assert result.stderr.strip() == "3 wrong protocol(s) found."


# A module on its own (no package): the same misuse as BROKEN's first, absolute imports.
ALONE = """
from contextlib import asynccontextmanager, contextmanager


@asynccontextmanager
async def get_db():
    yield "session"


async def handler():
    async for db in get_db():
        pass
"""


class TestPathTargets:
    """A path is checked as the file or package it names, or reported as not checked
    (exit 2): never another module of the same name."""

    def twins(self, project: Path) -> None:
        """broken/shop and fixed/shop: two packages named shop."""
        for directory, body in (("broken", BROKEN), ("fixed", FIXED)):
            package = project / directory / "shop"
            package.mkdir(parents=True)
            (package / "__init__.py").write_text("")
            (package / "deps.py").write_text(DEPS)
            (package / "handlers.py").write_text(textwrap.dedent(body))

    def test_two_packages_of_one_name(self, project: Path) -> None:
        """The first is checked; the second, which one process cannot import under the
        same name, gets one line that says why and what to do, and exit 2."""
        self.twins(project)
        fixed, broken = os.path.join("fixed", "shop"), os.path.join("broken", "shop")
        result = protoguard(project, "broken/shop", "fixed/shop")
        assert result.returncode == 2, result.stderr
        found = [line.split(":")[0] for line in result.stdout.splitlines()]
        assert found == [os.path.join(broken, "handlers.py")] * 2
        assert (
            f"protoguard check: cannot check {fixed} as package 'shop': 'shop' in this "
            f"process is {broken}, and Python imports a name once per process, so it was "
            f"not checked; check it in a run of its own: protoguard check {fixed}\n"
        ) in result.stderr
        assert "1 target(s) were not checked" in result.stderr
        # The other way round: the broken one is the one not checked, not found clean.
        result = protoguard(project, "fixed/shop", "broken/shop/handlers.py")
        assert result.returncode == 2, result.stderr
        assert result.stdout == ""
        assert (
            f"cannot check {os.path.join(broken, 'handlers.py')} as module 'shop.handlers': "
            f"'shop' in this process is {fixed}, "
        ) in result.stderr
        # As the message says, each on its own is checked.
        assert protoguard(project, "fixed/shop").returncode == 0
        assert protoguard(project, "broken/shop").returncode == 1

    def test_two_modules_of_one_name(self, project: Path) -> None:
        """a/utils.py and b/utils.py, as files or in the directories given."""
        for directory in ("a", "b"):
            (project / directory).mkdir()
            (project / directory / "utils.py").write_text(ALONE)
        a, b = os.path.join("a", "utils.py"), os.path.join("b", "utils.py")
        for targets in (("a/utils.py", "b/utils.py"), ("a", "b")):
            result = protoguard(project, *targets)
            assert result.returncode == 2, (targets, result.stderr)
            assert [line.split(":")[0] for line in result.stdout.splitlines()] == [a]
            assert (
                f"protoguard check: cannot check {b} as module 'utils': 'utils' in this "
                f"process is {a}, and Python imports a name once per process, so it was not "
                f"checked; check it in a run of its own: protoguard check {b}\n"
            ) in result.stderr

    def test_a_module_named_like_the_standard_library(self, project: Path) -> None:
        """std/random.py is not the random module this process has imported: it is not
        checked, and the message says so, rather than the standard library's."""
        (project / "std").mkdir()
        (project / "std" / "random.py").write_text(ALONE)
        shown = os.path.join("std", "random.py")
        for target in ("std/random.py", "std"):
            result = protoguard(project, target)
            assert result.returncode == 2, result.stderr
            assert result.stdout == ""
            line = next(line for line in result.stderr.splitlines() if "cannot check" in line)
            assert line.startswith(
                f"protoguard check: cannot check {shown} as module 'random': 'random' in this "
                "process is the standard library's ("
            )
            assert line.endswith(
                "), and Python imports a name once per process, so it was not checked; "
                f"rename {shown} to check it"
            )

    def test_a_target_imports_a_module_of_another_targets_name(self, project: Path) -> None:
        """A module a target imports from elsewhere under the name of another target: the
        other target is not checked, and what was found in the module imported instead is
        not reported as the target's."""
        (project / "lib").mkdir()
        (project / "lib" / "helpers.py").write_text(ALONE)
        (project / "one").mkdir()
        (project / "one" / "app.py").write_text(
            f"import sys\nsys.path.insert(0, {str(project / 'lib')!r})\nimport helpers\n"
        )
        (project / "two").mkdir()
        (project / "two" / "helpers.py").write_text(ALONE)
        result = protoguard(project, "one/app.py", "two/helpers.py")
        assert result.returncode == 2, result.stderr
        assert result.stdout == ""
        helpers = os.path.join("two", "helpers.py")
        assert (
            f"cannot check {helpers} as module 'helpers': 'helpers' in this process is "
            f"{os.path.join('lib', 'helpers.py')}, "
        ) in result.stderr

    def test_a_package_path_is_searched_beneath_it_alone(self, project: Path) -> None:
        """A package whose __path__ reaches another directory: a path target checks what
        is beneath the path, not the other directory's modules."""
        (project / "elsewhere").mkdir()
        (project / "elsewhere" / "extra.py").write_text(
            f"import pathlib\npathlib.Path({str(project / 'RAN')!r}).touch()\n" + ALONE
        )
        (project / "shop" / "__init__.py").write_text(
            "import os\n__path__.append(os.path.join(os.path.dirname(__file__), "
            "os.pardir, 'elsewhere'))\n"
        )
        result = protoguard(project, "shop/")
        assert result.returncode == 1, result.stderr
        assert len(result.stdout.splitlines()) == 2
        assert "extra" not in result.stdout
        assert not (project / "RAN").exists()

    def zipapp(self, archive: Path) -> None:
        """A zipapp: package zshop with misuses, a clean module, and a __main__.py."""
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("__main__.py", f"open({str(archive) + '.RAN'!r}, 'w').close()\n")
            zipped.writestr("zshop/__init__.py", "")
            zipped.writestr("zshop/deps.py", DEPS)
            zipped.writestr("zshop/handlers.py", textwrap.dedent(BROKEN))
            zipped.writestr("tidy.py", ALONE.replace("async for", "async with"))

    @pytest.mark.skipif(
        sys.version_info < (3, 10), reason="3.9's zipimport has no exec_module to stand before"
    )
    def test_a_zip_archive(self, project: Path) -> None:
        """A zip archive (a zipapp, an egg, a wheel) is a directory of modules on sys.path,
        as Python imports from it: each module and package in it is checked, at its path
        inside the archive; its __main__.py is not run."""
        (project / "dist").mkdir()
        for archive in ("app.pyz", "dist/app.zip"):
            self.zipapp(project / archive)
            result = protoguard(project, archive)
            assert result.returncode == 1, (archive, result.stderr)
            handlers = os.path.join(*archive.split("/"), "zshop", "handlers.py")
            lines = result.stdout.splitlines()
            assert [line.split(" ")[:2] for line in lines] == [
                [f"{handlers}:6:21:", "PG101"],
                [f"{handlers}:8:16:", "PG102"],
            ]
            assert lines[0].endswith("fix: async with get_db() as db:")
            assert not (project / (archive + ".RAN")).exists()

    @pytest.mark.skipif(
        sys.version_info >= (3, 10), reason="zip archives are checked from Python 3.10 on"
    )
    def test_a_zip_archive_on_python_3_9(self, project: Path) -> None:
        """3.9's zipimport runs a module in a way the hook cannot stand before: the
        archive is a usage error that says so, not a clean result."""
        self.zipapp(project / "app.pyz")
        result = protoguard(project, "app.pyz")
        assert result.returncode == 2, result.stderr
        assert result.stderr == (
            "protoguard check: app.pyz: a zip archive, whose modules protoguard checks "
            "on Python 3.10 and later only\n"
        )

    @pytest.mark.skipif(
        sys.version_info < (3, 10), reason="3.9's zipimport has no exec_module to stand before"
    )
    def test_a_namespace_package_in_a_zip_archive(self, project: Path) -> None:
        """A directory without __init__.py in an archive that lists it (zipapp and `zip -r`
        write directory entries) is a namespace package Python imports from the archive:
        it is checked, as in a directory, not passed over as a clean result."""
        archive = project / "app.pyz"
        with zipfile.ZipFile(archive, "w") as zipped:
            for directory in ("zns/", "zns/inner/"):
                zipped.writestr(zipfile.ZipInfo(directory), "")
            zipped.writestr("zns/deps.py", DEPS)
            zipped.writestr(
                "zns/inner/handlers.py", textwrap.dedent(BROKEN).replace(".deps", "zns.deps")
            )
        result = protoguard(project, "app.pyz")
        assert result.returncode == 1, result.stderr
        handlers = os.path.join("app.pyz", "zns", "inner", "handlers.py")
        assert [line.split(" ")[:2] for line in result.stdout.splitlines()] == [
            [f"{handlers}:6:21:", "PG101"],
            [f"{handlers}:8:16:", "PG102"],
        ]

    @pytest.mark.skipif(
        sys.version_info < (3, 10), reason="3.9's zipimport has no exec_module to stand before"
    )
    def test_a_module_in_a_zip_archive_that_does_not_compile(self, project: Path) -> None:
        """A module of an archive with a SyntaxError is reported as a module that does not
        compile, at its path in the archive, and the archive's other modules are checked;
        protoguard does not fail with a traceback of its own."""
        archive = project / "app.zip"
        self.zipapp(archive)
        with zipfile.ZipFile(archive, "a") as zipped:
            zipped.writestr("broken.py", "def f(:\n")
        result = protoguard(project, "app.zip")
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        broken = os.path.join("app.zip", "broken.py")
        assert result.stderr.splitlines() == [
            "protoguard check: cannot import 'broken', so it was not checked: SyntaxError: "
            f"invalid syntax (at {broken}:1)",
            "2 wrong protocol(s) found.",
            "protoguard check: 1 module(s) do not compile, so they were not checked: Python "
            "cannot import them, with or without protoguard (which changes no module's "
            "code); fix the errors above.",
        ]
        handlers = os.path.join("app.zip", "zshop", "handlers.py")
        assert [line.split(" ")[:2] for line in result.stdout.splitlines()] == [
            [f"{handlers}:6:21:", "PG101"],
            [f"{handlers}:8:16:", "PG102"],
        ]

    def test_a_file_that_is_not_a_module(self, project: Path) -> None:
        """An existing file that is neither a .py file nor a zip archive (a .txt, a broken
        .zip, a README): a usage error naming the file, not the import of a module named
        like it (notes.txt as module 'txt' of package 'notes'); nothing is checked."""
        (project / "notes.txt").write_text("shop\n")
        (project / "broken.zip").write_text("not a zip archive\n")
        (project / "README").write_text("shop\n")
        (project / "docs").mkdir()
        (project / "docs" / "index.md").write_text("shop\n")
        kinds = {
            "notes.txt": "not a .py file, a directory or a zip archive",
            "broken.zip": "not a .py file, a directory or a zip archive",
            "docs/index.md": "not a .py file, a directory or a zip archive",
            "README": "not a .py file, a directory or a zip archive (a file of that name is "
            "here; to check the module 'README', run the check from another directory)",
        }
        for target, why in kinds.items():
            result = protoguard(project, target, "shop")
            assert result.returncode == 2, (target, result.stderr)
            assert result.stderr == f"protoguard check: {target}: {why}\n"
            assert result.stdout == ""


class TestNamespacePackages:
    """Directories without __init__.py that Python imports (PEP 420 namespace packages)
    are checked with every module beneath them; directories it cannot import are not."""

    def namespace_app(self, root: Path) -> None:
        """src/nsapp/top.py and src/nsapp/sub/mod.py, no __init__.py anywhere."""
        (root / "src" / "nsapp" / "sub").mkdir(parents=True)
        (root / "src" / "nsapp" / "top.py").write_text(ALONE)
        (root / "src" / "nsapp" / "sub" / "mod.py").write_text(ALONE)

    def test_a_directory_of_namespace_packages(self, tmp_path: Path) -> None:
        """src/ holding a namespace package: every module beneath it is checked."""
        self.namespace_app(tmp_path)
        result = protoguard(tmp_path, "src/", "--format", "json")
        assert result.returncode == 1, result.stderr
        found = [(f["path"], f["module"]) for f in json.loads(result.stdout)]
        assert found == [
            (os.path.join("src", "nsapp", "sub", "mod.py"), "nsapp.sub.mod"),
            (os.path.join("src", "nsapp", "top.py"), "nsapp.top"),
        ]

    def test_a_namespace_package_by_name_or_path(self, tmp_path: Path) -> None:
        """nsapp.sub, named: its namespace subpackages too. nsapp, a directory of the
        working directory, is a path: a directory of modules, each checked (sub/mod.py
        too, not top.py alone)."""
        self.namespace_app(tmp_path)
        (tmp_path / "src" / "nsapp" / "sub" / "deeper").mkdir()
        (tmp_path / "src" / "nsapp" / "sub" / "deeper" / "mod.py").write_text(ALONE)
        src = tmp_path / "src"
        result = protoguard(src, "nsapp.sub", "--format", "json")
        assert result.returncode == 1, result.stderr
        modules = [f["module"] for f in json.loads(result.stdout)]
        assert modules == ["nsapp.sub.deeper.mod", "nsapp.sub.mod"]
        result = protoguard(src, "nsapp", "--format", "json")
        assert result.returncode == 1, result.stderr
        paths = [f["path"] for f in json.loads(result.stdout)]
        assert paths == [
            os.path.join("nsapp", "sub", "deeper", "mod.py"),
            os.path.join("nsapp", "sub", "mod.py"),
            os.path.join("nsapp", "top.py"),
        ]

    def test_a_namespace_subpackage_of_a_regular_package(self, project: Path) -> None:
        """shop/nsinside/deep.py, nsinside without __init__.py: checked with shop."""
        (project / "shop" / "nsinside" / "deeper").mkdir(parents=True)
        (project / "shop" / "nsinside" / "deeper" / "deep.py").write_text(ALONE)
        deep = os.path.join("shop", "nsinside", "deeper", "deep.py")
        for target in ("shop", "shop/", "."):
            result = protoguard(project, target)
            assert result.returncode == 1, (target, result.stderr)
            found = [line.split(":")[0] for line in result.stdout.splitlines()]
            assert found == [os.path.join("shop", "handlers.py")] * 2 + [deep], target

    def test_directories_python_does_not_import(self, project: Path) -> None:
        """A directory named as no module can be (my-scripts, .hidden), __pycache__, and
        a namespace package's __main__.py: neither imported nor checked."""
        marker = project / "RAN"
        ran = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n" + ALONE
        for directory in ("my-scripts", ".hidden", "__pycache__", "ns"):
            (project / "shop" / directory).mkdir()
        (project / "shop" / "my-scripts" / "script.py").write_text(ran)
        (project / "shop" / ".hidden" / "secret.py").write_text(ran)
        (project / "shop" / "__pycache__" / "cached.py").write_text(ran)
        (project / "shop" / "ns" / "__main__.py").write_text(ran)
        (project / "shop" / "ns" / "mod.py").write_text(ALONE)
        for target in ("shop", "."):
            result = protoguard(project, target)
            assert result.returncode == 1, (target, result.stderr)
            found = [line.split(":")[0] for line in result.stdout.splitlines()]
            mod = os.path.join("shop", "ns", "mod.py")
            assert found == [os.path.join("shop", "handlers.py")] * 2 + [mod], target
            assert not marker.exists()


class TestFormats:
    """text, json and github."""

    def test_json(self, project: Path) -> None:
        """A JSON list with path, line, col, code, message, fix and the provider."""
        result = protoguard(project, "shop", "--format", "json")
        assert result.returncode == 1
        found = json.loads(result.stdout)
        positions = [(f["line"], f["col"], f["code"]) for f in found]
        assert positions == [(6, 21, "PG101"), (8, 16, "PG102")]
        assert found[0]["fix"] == "async with get_db() as db:"
        assert found[0]["provider"]["name"] == "get_db"
        assert found[0]["provider"]["kind"] == "async context manager"
        assert found[0]["provider"]["location"].startswith(os.path.join("shop", "deps.py:"))
        assert found[0]["docs"].endswith("#pg101")
        clean = protoguard(project, "clean", "--format", "json")
        assert clean.returncode == 0
        assert json.loads(clean.stdout or "[]") == []

    def test_what_imported_modules_print_goes_to_stderr(self, project: Path) -> None:
        """A module that prints when imported (from Python, and to file descriptor 1)
        leaves stdout to the findings: the JSON is whole."""
        (project / "shop" / "chatty.py").write_text(
            "import os, sys\n"
            "print('connecting to the config service...')\n"
            "sys.stdout.flush()\n"
            "os.write(1, b'written to descriptor 1\\n')\n"
            "sys.__stdout__.write('written to sys.__stdout__\\n')\n"
        )
        for fmt in ("json", "text"):
            result = protoguard(project, "shop", "--format", fmt)
            assert result.returncode == 1, result.stderr
            if fmt == "json":
                assert len(json.loads(result.stdout)) == 2
            else:
                assert len(result.stdout.splitlines()) == 2
            assert "connecting to the config service...\n" in result.stderr
            assert "written to descriptor 1\n" in result.stderr
            assert "written to sys.__stdout__\n" in result.stderr

    def test_github(self, project: Path) -> None:
        """GitHub workflow annotations, one per finding."""
        result = protoguard(project, "shop", "--format", "github")
        assert result.returncode == 1
        lines = result.stdout.splitlines()
        handlers = os.path.join("shop", "handlers.py")
        assert lines[0].startswith(f"::error file={handlers},line=6,col=21,title=PG101::")
        assert lines[0].endswith(". fix: async with get_db() as db:")
        assert len(lines) == 2

    def test_a_module_that_changes_directory(self, project: Path) -> None:
        """A module that calls os.chdir() as it is imported: every path is still shown
        relative to the directory check started in, in every format, a failure's too."""
        (project / "shop" / "aaa_moves.py").write_text("import os\nos.chdir('..')\n")
        (project / "shop" / "zzz_fails.py").write_text("raise RuntimeError('no database')\n")
        handlers = os.path.join("shop", "handlers.py")
        deps = os.path.join("shop", "deps.py")
        fails = os.path.join("shop", "zzz_fails.py")
        for fmt in ("text", "json", "github"):
            result = protoguard(project, "shop", "--format", fmt)
            assert result.returncode == 2, result.stderr
            assert f"RuntimeError: no database (at {fails}:1)" in result.stderr
            assert project.name not in result.stdout
            if fmt == "json":
                found = json.loads(result.stdout)
                assert [f["path"] for f in found] == [handlers, handlers]
                assert found[0]["provider"]["location"].startswith(f"{deps}:")
            elif fmt == "github":
                assert result.stdout.startswith(f"::error file={handlers},line=6,col=21,")
            else:
                assert result.stdout.startswith(f"{handlers}:6:21: PG101 ")
                assert f"defined at {deps}:" in result.stdout

    def test_a_note_on_the_fix(self, project: Path) -> None:
        """What else a fix needs, as run time says it after the fix: said after it in
        text and github (after its last line), a field of its own in JSON, where the fix
        stays code only."""
        (project / "shop" / "notes.py").write_text(
            textwrap.dedent(
                """
                from .deps import get_db, gen_db


                def plain():
                    with get_db() as db:
                        pass


                async def leaves():
                    async with gen_db() as db:
                        return db


                async def nested():
                    async with get_db() as a, gen_db() as b:
                        pass
                """
            )
        )
        target = os.path.join("shop", "notes.py")
        expected = [
            (
                "async with get_db() as db:",
                "needs an async def; plain() is a plain def",
            ),
            (
                "async with contextlib.asynccontextmanager(gen_db)() as db:",
                "import contextlib",
            ),
            (
                "async with get_db() as a:\n    async for b in gen_db():",
                "the blocks nest: the body goes under the last one",
            ),
        ]
        found = json.loads(protoguard(project, target, "--format", "json").stdout)
        assert [(f["fix"], f["note"]) for f in found] == expected
        text = protoguard(project, target).stdout.splitlines()
        assert text[0].endswith(f"; fix: {expected[0][0]}  # {expected[0][1]}")
        assert text[1].endswith(f"; fix: {expected[1][0]}  # {expected[1][1]}")
        assert text[2].endswith("; fix: async with get_db() as a:")
        assert text[3] == f"        async for b in gen_db():  # {expected[2][1]}"
        assert len(text) == 4
        github = protoguard(project, target, "--format", "github").stdout.splitlines()
        assert github[0].endswith(f". fix: {expected[0][0]}  # {expected[0][1]}")
        assert github[2].endswith(f"%0A    async for b in gen_db():  # {expected[2][1]}")
        clean = json.loads(protoguard(project, "shop", "--format", "json").stdout)
        assert [f["note"] for f in clean if f["path"] != target] == ["", ""]

    def test_a_loop_left_early(self, project: Path) -> None:
        """A loop over an async generator that its return or break leaves: the provider
        entered once (an 'async for' would leave its cleanup for later, PG201), as run
        time's fix says, and the loop's own break to delete said on a line under it (the
        block is no loop); in JSON, the note is one line (it held the line's newline). A
        session's lines that return: the same fix."""
        (project / "shop" / "early.py").write_text(
            textwrap.dedent(
                """
                from .deps import gen_db


                async def first(values):
                    for attempt in range(2):
                        for db in gen_db():
                            values.append(db)
                            break


                async def count(query):
                    db = await gen_db()
                    return await db.execute(query)
                """
            )
        )
        target = os.path.join("shop", "early.py")
        fix = "async with contextlib.asynccontextmanager(gen_db)() as db:"
        delete = "# and delete the 'break' on line 9: this block is no loop and runs its body once"
        found = json.loads(protoguard(project, target, "--format", "json").stdout)
        assert [(f["code"], f["fix"], f["note"]) for f in found] == [
            ("PG105", fix, f"import contextlib; {delete.removeprefix('# ')}"),
            ("PG104", fix, "import contextlib"),
        ]
        text = protoguard(project, target).stdout.splitlines()
        assert text[0].endswith(f"; fix: {fix}  # import contextlib")
        assert text[1] == f"    {delete}"
        assert text[2].endswith(f"; fix: {fix}  # import contextlib")

    def test_a_fix_over_several_lines(self, project: Path) -> None:
        """A Depends() fix that is a generator to write: its code on indented lines below
        the finding's one line (text), kept whole in JSON, escaped for GitHub."""
        pytest.importorskip("fastapi")
        (project / "api").mkdir()
        (project / "api" / "__init__.py").write_text(
            textwrap.dedent(
                """
                from contextlib import asynccontextmanager
                from fastapi import Depends, FastAPI

                @asynccontextmanager
                async def get_db():
                    yield object()

                app = FastAPI()

                @app.get("/")
                async def endpoint(db=Depends(get_db)):
                    return 1
                """
            )
        )
        text = protoguard(project, "api")
        assert text.returncode == 1, text.stderr
        first, *code = text.stdout.splitlines()[:4]
        assert first.startswith(os.path.join("api", "__init__.py") + ":12:31: PG103 ")
        assert first.endswith("or make it an async generator:")
        assert code == [
            "    async def get_db():",
            "        async with ... as session:",
            "            yield session",
        ]
        (found,) = json.loads(protoguard(project, "api", "--format", "json").stdout)
        definition = found["fix"].split("\n", 1)[1]
        compile(definition, "fix", "exec")  # the code to write is valid Python as it stands
        github = protoguard(project, "api", "--format", "github").stdout.splitlines()
        assert len(github) == 1
        assert "generator:%0Aasync def get_db():%0A    async with" in github[0]

    def test_a_method_dependency_fix_is_python(self, project: Path) -> None:
        """`check` on Depends() of a method, a classmethod and a staticmethod (which it
        resolves to the function in the class): the generator to write is the method as
        its class writes it, valid Python."""
        pytest.importorskip("fastapi")
        (project / "api").mkdir()
        (project / "api" / "__init__.py").write_text(
            textwrap.dedent(
                """
                from contextlib import asynccontextmanager
                from fastapi import Depends, FastAPI

                class Database:
                    @asynccontextmanager
                    async def session(self):
                        yield object()

                    @classmethod
                    @asynccontextmanager
                    async def shared(cls):
                        yield object()

                    @staticmethod
                    @asynccontextmanager
                    async def static():
                        yield object()

                db = Database()
                app = FastAPI()

                @app.get("/")
                async def endpoint(a=Depends(db.session), b=Depends(Database.shared),
                                   c=Depends(db.static)):
                    return 1
                """
            )
        )
        found = json.loads(protoguard(project, "api", "--format", "json").stdout)
        definitions = [f["fix"].split("\n", 1)[1] for f in found]
        assert [d.split("\n    async with")[0] for d in definitions] == [
            "async def session(self):",
            "@classmethod\nasync def shared(cls):",
            "@staticmethod\nasync def static():",
        ]
        for definition in definitions:
            compile(definition, "fix", "exec")  # valid Python as it stands
        assert found[0]["fix"].startswith("decorate Database.session with @protoguard.provider")

    def test_console_script(self, project: Path) -> None:
        """The installed `protoguard` command is the same command."""
        script = Path(sys.executable).with_name("protoguard")
        if not script.exists():
            pytest.skip("no console script next to this interpreter")
        result = subprocess.run(
            [str(script), "check", "shop"],
            cwd=project,
            env=dict(os.environ, PROTOGUARD_CACHE_DIR=str(project / ".cache")),
            capture_output=True,
            text=True,
        )
        assert result.returncode == 1
        assert len(result.stdout.splitlines()) == 2


class TestSessionAttribute:
    """PG103 found by `protoguard check`: the provider's result used as the session."""

    def test_found_and_fixed(self, tmp_path: Path) -> None:
        """`get_db().execute` and `db = get_db()` then `db.execute`: one line each, with
        the fix; the same module corrected is clean."""
        package = tmp_path / "shop"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "deps.py").write_text(DEPS)
        (package / "handlers.py").write_text(
            textwrap.dedent(
                """
                from .deps import get_db, gen_db


                async def handler(q):
                    db = get_db()
                    result = await db.execute(q)
                    await gen_db().commit()
                    return result


                async def correct(q):
                    db = get_db()
                    async with db as session:
                        await session.execute(q)
                """
            )
        )
        result = protoguard(tmp_path, "shop")
        assert result.returncode == 1, result.stderr
        handlers = os.path.join("shop", "handlers.py")
        deps = os.path.join("shop", "deps.py")
        assert result.stdout.splitlines() == [
            f"{handlers}:7:20: PG103 '.execute' on the object get_db() returned, which is an "
            f"async context manager; get_db: an @asynccontextmanager function, defined at "
            f"{deps}:5; fix: async with get_db() as db:  # replaces line 6: db = get_db()",
            f"{handlers}:8:11: PG103 '.commit' on the object gen_db() returned, which is an "
            f"async generator; gen_db: an async generator function, defined at {deps}:10; "
            "fix: async for session in gen_db(): await session.commit()",
        ]
        result = protoguard(tmp_path, "shop", "--format", "json")
        found = json.loads(result.stdout)
        assert [(f["code"], f["line"]) for f in found] == [("PG103", 7), ("PG103", 8)]


class TestEnteredTwice:
    """PG107 found by `protoguard check`: one context manager entered a second time."""

    def test_found_and_fixed(self, tmp_path: Path) -> None:
        """Entered again after its block, and at each turn of a loop: one line each, at
        the second entry, with the fix; the same code calling the provider at each
        entry is clean."""
        package = tmp_path / "shop"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "deps.py").write_text(
            DEPS + "\n\n@contextmanager\ndef sync_db():\n    yield 'session'\n"
        )
        (package / "handlers.py").write_text(
            textwrap.dedent(
                """
                from .deps import get_db, sync_db


                async def handler():
                    cm = get_db()
                    async with cm as db:
                        pass
                    async with cm as db:
                        pass


                def batch(items):
                    cm = sync_db()
                    for item in items:
                        with cm as db:
                            pass


                async def correct():
                    async with get_db() as db:
                        pass
                    async with get_db() as db:
                        pass
                """
            )
        )
        result = protoguard(tmp_path, "shop")
        assert result.returncode == 1, result.stderr
        handlers = os.path.join("shop", "handlers.py")
        deps = os.path.join("shop", "deps.py")
        assert result.stdout.splitlines() == [
            f"{handlers}:9:16: PG107 'async with' a second time on the context manager "
            f"get_db() returned; it runs once; get_db: an @asynccontextmanager function, "
            f"defined at {deps}:5; fix: async with get_db() as db:",
            f"{handlers}:16:14: PG107 'with' a second time on the context manager sync_db() "
            f"returned; it runs once; sync_db: a @contextmanager function, defined at "
            f"{deps}:14; fix: with sync_db() as db:",
        ]
        result = protoguard(tmp_path, "shop", "--format", "json")
        found = json.loads(result.stdout)
        assert [(f["code"], f["line"], f["fix"]) for f in found] == [
            ("PG107", 9, "async with get_db() as db:"),
            ("PG107", 16, "with sync_db() as db:"),
        ]
