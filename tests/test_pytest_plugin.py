"""The pytest plugin, through pytester: options, ini keys, summary, strict, marker, fixture."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

DEPS = """
from contextlib import asynccontextmanager

import protoguard


@asynccontextmanager
async def get_db():
    yield "session"


@protoguard.provider
@asynccontextmanager
async def guarded_db():
    yield "session"
"""

HANDLERS = """
from .deps import get_db


async def handler():
    async for db in get_db():
        pass
"""


@pytest.fixture
def app(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A package ``shopapp`` with one misuse, and a test module that imports it."""
    monkeypatch.setenv("PROTOGUARD_CACHE_DIR", str(pytester.path / ".cache"))
    pytester.mkpydir("shopapp")
    (pytester.path / "shopapp" / "deps.py").write_text(DEPS)
    (pytester.path / "shopapp" / "handlers.py").write_text(HANDLERS)
    pytester.makepyfile(
        test_app="""
        import shopapp.handlers

        def test_imported():
            assert shopapp.handlers.handler
        """
    )
    pytester.syspathinsert()
    return pytester


def _only_shopap_never_imported(result: pytest.RunResult) -> None:
    """The summary names the misspelt 'shopap', and not 'shopapp', which the tests import."""
    result.stdout.fnmatch_lines(
        [
            "protoguard: no module of 'shopap' was imported by this run, so none was "
            "checked: is the name right (--protoguard-packages, protoguard_packages)?"
        ]
    )
    result.stdout.no_fnmatch_line("*no module of 'shopapp'*")


class TestOptions:
    """--protoguard-packages and --protoguard-mode, and their ini keys."""

    def test_on_reports_in_the_summary(self, app: pytest.Pytester) -> None:
        """Mode on: the finding is in the terminal summary and the session passes."""
        result = app.runpytest_subprocess("--protoguard-packages=shopapp", "--protoguard-mode=on")
        result.assert_outcomes(passed=1)
        assert result.ret == pytest.ExitCode.OK
        result.stdout.fnmatch_lines(
            [
                "*protoguard: 1 wrong protocol(s)*",
                "*shopapp*handlers.py:6:21: PG101 'async for' over get_db()*"
                "fix: async with get_db() as db:",
            ]
        )

    def test_a_fix_of_several_lines_is_indented(self, app: pytest.Pytester) -> None:
        """A fix over several lines (blocks to nest) continues on indented lines, as
        `protoguard check` writes it."""
        (app.path / "shopapp" / "handlers.py").write_text(
            HANDLERS.replace(
                "async for db in get_db():", "async with get_db() as a, g() as b:"
            ).replace("from .deps import get_db", "from .deps import get_db\nfrom .gens import g")
        )
        (app.path / "shopapp" / "gens.py").write_text("async def g():\n    yield 'session'\n")
        result = app.runpytest_subprocess("--protoguard-packages=shopapp", "--protoguard-mode=on")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(
            [
                "*handlers.py:7:31: PG102 'async with' on g()*; fix: async with get_db() as a:",
                "        async for b in g():  # the blocks nest: the body goes under the last one",
            ]
        )

    def test_strict_fails_the_session(self, app: pytest.Pytester) -> None:
        """Mode strict: the tests pass, the session fails, and the summary says why."""
        result = app.runpytest_subprocess(
            "--protoguard-packages=shopapp", "--protoguard-mode=strict"
        )
        result.assert_outcomes(passed=1)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(["*protoguard: 1 wrong protocol(s) (strict: failing)*"])

    @pytest.mark.parametrize("mode", ["on", "strict"])
    @pytest.mark.parametrize(
        "call", ["guard_this_package()", 'install_import_hook("shopapp", mode="strict")']
    )
    def test_a_package_that_guards_itself(self, app: pytest.Pytester, mode: str, call: str) -> None:
        """A package with a hook of its own (guard_this_package() in its __init__.py) is
        checked as any other: its finding is in the summary alone, once, not in pytest's
        warnings summary nor as a collection error, and strict mode fails the session at
        its end."""
        (app.path / "shopapp" / "__init__.py").write_text(
            f"import protoguard\n\nprotoguard.{call}\n\nfrom . import handlers\n"
        )
        app.makepyfile(
            test_app="""
            import shopapp

            def test_imported():
                assert shopapp.handlers.handler
            """
        )
        result = app.runpytest_subprocess(
            "--protoguard-packages=shopapp", f"--protoguard-mode={mode}"
        )
        result.assert_outcomes(passed=1)
        strict = mode == "strict"
        assert result.ret == (pytest.ExitCode.TESTS_FAILED if strict else pytest.ExitCode.OK)
        title = "protoguard: 1 wrong protocol(s)" + (" (strict: failing)" if strict else "")
        result.stdout.fnmatch_lines(
            [
                f"*{title} =*",
                "*shopapp*handlers.py:6:21: PG101 'async for' over get_db()*"
                "fix: async with get_db() as db:",
            ]
        )
        assert result.stdout.str().count("PG101") == 1
        result.stdout.no_fnmatch_line("*ProtocolWarning*")
        result.stdout.no_fnmatch_line("*ProtocolError*")

    def test_a_package_never_imported_is_named(self, app: pytest.Pytester) -> None:
        """A misspelt package checks nothing: the summary says so, and not of the
        package the tests do import."""
        result = app.runpytest_subprocess("--protoguard-packages=shopap,shopapp")
        result.assert_outcomes(passed=1)
        _only_shopap_never_imported(result)

    def test_a_package_that_fails_to_import_is_not_called_misspelt(
        self, app: pytest.Pytester
    ) -> None:
        """A package that is there but raises as it is imported: its own error, then a
        notice that says it failed to import, not that its name may be wrong."""
        app.mkpydir("broken")
        (app.path / "broken" / "__init__.py").write_text(
            'raise RuntimeError("DATABASE_URL is not set")\n'
        )
        app.makepyfile(test_broken="import broken\n\ndef test_x():\n    pass\n")
        result = app.runpytest_subprocess("--protoguard-packages=broken,shopapp")
        assert result.ret == pytest.ExitCode.INTERRUPTED
        result.stdout.fnmatch_lines(
            [
                "*RuntimeError: DATABASE_URL is not set*",
                "protoguard: 'broken' failed to import in this run, so none of it was checked.",
            ]
        )
        result.stdout.no_fnmatch_line("*is the name right*")

    def test_a_package_no_test_imports_is_not_imported_by_the_notice(
        self, app: pytest.Pytester
    ) -> None:
        """A package, or a package's module, that is there but that no test imports:
        the notice says no test imported it, and finds it without importing it (nor its
        parent package), while a misspelt module of a package, or a package that is not
        there and that a test tried to import, is still a name to check."""
        app.makepyfile(
            test_optional="import pytest\n\npytest.importorskip('shopap')\n\n"
            "def test_x():\n    pass\n"
        )
        app.mkpydir("unused")
        (app.path / "unused" / "__init__.py").write_text(
            "import pathlib\npathlib.Path('unused-was-imported').touch()\n"
        )
        (app.path / "unused" / "api.py").write_text("")
        result = app.runpytest_subprocess(
            "--protoguard-packages=unused,unused.api,shopapp.handler,shopap,shopapp"
        )
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines(
            [
                "protoguard: no module of 'unused' was imported by this run, so none was checked.",
                "protoguard: no module of 'unused.api' was imported by this run, so none was "
                "checked.",
                "protoguard: no module of 'shopapp.handler' was imported by this run, so none "
                "was checked: is the name right (--protoguard-packages, protoguard_packages)?",
                "protoguard: no module of 'shopap' was imported by this run, so none "
                "was checked: is the name right (--protoguard-packages, protoguard_packages)?",
            ]
        )
        assert not (app.path / "unused-was-imported").exists()

    def test_off_reports_nothing(self, app: pytest.Pytester) -> None:
        """Mode off: no hook, no summary."""
        result = app.runpytest_subprocess("--protoguard-packages=shopapp", "--protoguard-mode=off")
        assert result.ret == pytest.ExitCode.OK
        result.stdout.no_fnmatch_line("*protoguard:*")

    def test_ini_keys(self, app: pytest.Pytester) -> None:
        """protoguard_packages and protoguard_mode in the ini file work like the options."""
        app.makeini(
            """
            [pytest]
            protoguard_packages = shopapp, otherapp
            protoguard_mode = strict
            """
        )
        result = app.runpytest_subprocess()
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(["*PG101*"])

    def test_option_beats_ini(self, app: pytest.Pytester) -> None:
        """The command line wins over the ini file."""
        app.makeini("[pytest]\nprotoguard_packages = shopapp\nprotoguard_mode = strict\n")
        result = app.runpytest_subprocess("--protoguard-mode=on")
        assert result.ret == pytest.ExitCode.OK
        result.stdout.fnmatch_lines(["*PG101*"])

    def test_without_packages_it_does_nothing(self, app: pytest.Pytester) -> None:
        """Installed but not asked to: no hook, no summary."""
        result = app.runpytest_subprocess()
        assert result.ret == pytest.ExitCode.OK
        result.stdout.no_fnmatch_line("*protoguard:*")

    def test_invalid_mode(self, app: pytest.Pytester) -> None:
        """An invalid ini mode is a usage error: one line naming the file and the
        accepted values, no INTERNALERROR traceback."""
        ini = app.makeini("[pytest]\nprotoguard_mode = loud\n")
        result = app.runpytest_subprocess()
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            [
                f"ERROR: protoguard_mode in {ini}: 'loud' is not a protoguard mode; "
                "use one of: off, on, strict."
            ]
        )
        assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
        assert "Traceback" not in result.stderr.str()

    def test_invalid_mode_given_with_dash_o(self, app: pytest.Pytester) -> None:
        """A bad -o protoguard_mode=... is named as that, not as the ini file's."""
        app.makeini("[pytest]\n")
        result = app.runpytest_subprocess("-o", "protoguard_mode=loud")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            [
                "ERROR: -o protoguard_mode=...: 'loud' is not a protoguard mode; "
                "use one of: off, on, strict."
            ]
        )

    @pytest.mark.parametrize(
        ("variable", "value", "error"),
        [
            (
                "PROTOGUARD_MODE",
                "loud",
                "'loud' is not a protoguard mode; use one of: off, on, strict.",
            ),
            (
                "PROTOGUARD_ACTION",
                "shout",
                "'shout' is not a protoguard action; use one of: raise, warn, log.",
            ),
            ("PROTOGUARD_SAMPLE_RATE", "2", "'2' is not a sample rate; use a number from 0 to 1,*"),
        ],
    )
    @pytest.mark.parametrize("option", [[], ["--protoguard-mode=strict"]])
    def test_invalid_environment(
        self,
        app: pytest.Pytester,
        monkeypatch: pytest.MonkeyPatch,
        variable: str,
        value: str,
        error: str,
        option: list[str],
    ) -> None:
        """An invalid PROTOGUARD_* variable is a usage error, as in `protoguard check`:
        one line naming the variable and its value, not a traceback as the plugin loads
        (protoguard is imported then), whether or not the option sets the mode."""
        monkeypatch.setenv(variable, value)
        result = app.runpytest_subprocess(*option)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"ERROR: the environment variable {variable}: {error}"])
        output = result.stdout.str() + result.stderr.str()
        assert "Traceback" not in output
        assert "Error while loading plugin" not in output
        assert "INTERNALERROR" not in output

    def test_invalid_environment_without_the_plugin(
        self, app: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With the plugin disabled, a test's own import of protoguard still fails with
        the ConfigurationError, as outside pytest: the plugin's import alone defers it."""
        monkeypatch.setenv("PROTOGUARD_MODE", "loud")
        app.makepyfile(test_guard="import protoguard\n\ndef test_x():\n    pass\n")
        result = app.runpytest_subprocess("-p", "no:protoguard")
        assert result.ret == pytest.ExitCode.INTERRUPTED
        result.stdout.fnmatch_lines(
            [
                "E   protoguard.ConfigurationError: the environment variable PROTOGUARD_MODE: "
                "'loud' is not a protoguard mode; use one of: off, on, strict."
            ]
        )

    def test_option_is_case_insensitive(self, pytester: pytest.Pytester) -> None:
        """--protoguard-mode=STRICT is strict, as the ini key and PROTOGUARD_MODE are."""
        pytester.makepyfile(
            "import protoguard\n\ndef test_x():\n    assert protoguard.current_mode() == 'strict'\n"
        )
        result = pytester.runpytest_subprocess("--protoguard-mode= STRICT")
        result.assert_outcomes(passed=1)

    def test_registered_by_entry_point_only(self, pytester: pytest.Pytester) -> None:
        """The plugin comes from the pytest11 entry point, and can be disabled by name."""
        pytester.makepyfile("def test_x():\n    pass\n")
        result = pytester.runpytest_subprocess("-p", "no:protoguard", "--protoguard-mode=on")
        assert result.ret == pytest.ExitCode.USAGE_ERROR


class TestXdist:
    """Under pytest-xdist the workers import the tests, so they find the misuses; the
    controller lists them and judges the session. Skipped where xdist is not installed
    (it is not a dependency of protoguard)."""

    @pytest.mark.parametrize("mode", ["on", "strict"])
    def test_workers_findings_reach_the_controller(self, app: pytest.Pytester, mode: str) -> None:
        """Two workers each import the misuse: listed once, and strict fails the session."""
        pytest.importorskip("xdist")
        app.makepyfile(
            test_other="""
            import shopapp.handlers

            def test_other():
                assert shopapp.handlers.handler
            """
        )
        result = app.runpytest_subprocess(
            "-n", "2", "--protoguard-packages=shopapp", f"--protoguard-mode={mode}"
        )
        result.assert_outcomes(passed=2)
        strict = mode == "strict"
        assert result.ret == (pytest.ExitCode.TESTS_FAILED if strict else pytest.ExitCode.OK)
        title = "protoguard: 1 wrong protocol(s)" + (" (strict: failing)" if strict else "")
        result.stdout.fnmatch_lines(
            [f"*{title} =*", "*shopapp*handlers.py:6:21: PG101 'async for' over get_db()*"]
        )
        assert result.stdout.str().count("PG101") == 1

    def test_a_package_never_imported_is_named(self, app: pytest.Pytester) -> None:
        """The controller imports no test module, the workers do: a package none of them
        imported is named, and not the one they did."""
        pytest.importorskip("xdist")
        result = app.runpytest_subprocess("-n", "2", "--protoguard-packages=shopap,shopapp")
        result.assert_outcomes(passed=1)
        _only_shopap_never_imported(result)

    def test_a_package_that_fails_to_import_is_not_called_misspelt(
        self, app: pytest.Pytester
    ) -> None:
        """The workers tell the controller which named packages failed to import."""
        pytest.importorskip("xdist")
        app.mkpydir("broken")
        (app.path / "broken" / "__init__.py").write_text(
            'raise RuntimeError("DATABASE_URL is not set")\n'
        )
        app.makepyfile(test_broken="import broken\n\ndef test_x():\n    pass\n")
        result = app.runpytest_subprocess("-n", "2", "--protoguard-packages=broken,shopapp")
        result.stdout.fnmatch_lines(
            [
                "*RuntimeError: DATABASE_URL is not set*",
                "protoguard: 'broken' failed to import in this run, so none of it was checked.",
            ]
        )
        result.stdout.no_fnmatch_line("*is the name right*")


class TestSampleRate:
    """--protoguard-mode makes strict mode watch every use, whatever the environment says."""

    @pytest.mark.parametrize("strict_by", ["option", "environment", "marker"])
    def test_every_use_is_watched(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, strict_by: str
    ) -> None:
        """With PROTOGUARD_SAMPLE_RATE=0 in the environment, strict mode in a test session
        (set by the plugin's option, by PROTOGUARD_MODE, or by the marker) still finds
        each of twenty early exits from a generator provider (PG201): a test run does not
        depend on chance."""
        monkeypatch.setenv("PROTOGUARD_SAMPLE_RATE", "0")
        if strict_by == "environment":
            monkeypatch.setenv("PROTOGUARD_MODE", "strict")
        pytester.makepyfile(
            textwrap.dedent(
                """
                import asyncio
                import protoguard
                import pytest

                @protoguard.provider
                async def get_db():
                    yield "session"

                async def leave_early():
                    async for db in get_db():
                        return db

                MARKER
                def test_every_use_watched():
                    protoguard.configure(action="log")
                    for _ in range(20):
                        assert asyncio.run(leave_early()) == "session"
                    assert [(f.code, f.count) for f in protoguard.findings()] == [("PG201", 20)]
                """
            ).replace(
                "MARKER",
                '@pytest.mark.protoguard(mode="strict")' if strict_by == "marker" else "",
            )
        )
        options = ["--protoguard-mode=strict"] if strict_by == "option" else []
        result = pytester.runpytest_subprocess(*options)
        result.assert_outcomes(passed=1)


class TestPerTest:
    """The marker and the fixture give one test another mode."""

    def test_marker_and_fixture(self, pytester: pytest.Pytester) -> None:
        """@pytest.mark.protoguard(mode=...) and protoguard_mode() set the mode in force."""
        pytester.makepyfile(
            textwrap.dedent(
                """
                import pytest
                import protoguard

                @pytest.mark.protoguard(mode="strict")
                def test_marker():
                    assert protoguard.current_mode() == "strict"

                @pytest.mark.protoguard("off")
                def test_marker_positional():
                    assert protoguard.current_mode() == "off"

                def test_fixture(protoguard_mode):
                    protoguard_mode("off")
                    assert protoguard.current_mode() == "off"

                def test_after():
                    assert protoguard.current_mode() == "on"
                """
            )
        )
        result = pytester.runpytest("--protoguard-mode=on")
        result.assert_outcomes(passed=4)

    def test_fixture_in_async_tests(self, pytester: pytest.Pytester) -> None:
        """protoguard_mode() inside an async test (anyio's plugin runs it in a task, with
        a context of its own): the mode holds for the rest of the test, its teardown
        does not fail, and later tests run in the session's mode."""
        pytester.makepyfile(
            textwrap.dedent(
                """
                import pytest
                import protoguard

                @pytest.fixture
                def anyio_backend():
                    return "asyncio"

                @pytest.mark.anyio
                async def test_strict(protoguard_mode):
                    protoguard_mode("strict")
                    assert protoguard.current_mode() == "strict"

                @pytest.mark.anyio
                async def test_after_async():
                    assert protoguard.current_mode() == "on"

                def test_after():
                    assert protoguard.current_mode() == "on"
                """
            )
        )
        result = pytester.runpytest("--protoguard-mode=on")
        result.assert_outcomes(passed=3)

    def test_marker_mode_reaches_guarded_providers(self, pytester: pytest.Pytester) -> None:
        """Under the marker, a guarded provider's misuse behaves as the mode says."""
        pytester.makepyfile(
            textwrap.dedent(
                """
                import asyncio
                from contextlib import asynccontextmanager
                import pytest
                import protoguard

                @protoguard.provider
                @asynccontextmanager
                async def get_db():
                    yield "session"

                async def misuse():
                    async for db in get_db():
                        pass

                @pytest.mark.protoguard(mode="on")
                def test_on():
                    with pytest.raises(protoguard.ProtocolError):
                        asyncio.run(misuse())
                """
            )
        )
        result = pytester.runpytest()
        result.assert_outcomes(passed=1)

    def test_marker_is_registered(self, pytester: pytest.Pytester) -> None:
        """--strict-markers accepts @pytest.mark.protoguard."""
        pytester.makepyfile(
            "import pytest\n\n@pytest.mark.protoguard(mode='on')\ndef test_x():\n    pass\n"
        )
        result = pytester.runpytest("--strict-markers")
        result.assert_outcomes(passed=1)

    @pytest.mark.parametrize(
        ("marker", "error"),
        [
            (
                "@pytest.mark.protoguard(mode='loud')",
                "@pytest.mark.protoguard(mode=...): 'loud' is not a protoguard mode; "
                "use one of: off, on, strict.",
            ),
            (
                "@pytest.mark.protoguard",
                "@pytest.mark.protoguard needs a mode: "
                '@pytest.mark.protoguard(mode="strict"), or "on" or "off".',
            ),
            (
                "@pytest.mark.protoguard(mdoe='strict')",
                "@pytest.mark.protoguard takes mode=..., not mdoe=...: "
                '@pytest.mark.protoguard(mode="strict"), or "on" or "off".',
            ),
            (
                "@pytest.mark.protoguard('on', mode='off')",
                "@pytest.mark.protoguard takes one mode, not 2: "
                '@pytest.mark.protoguard(mode="strict"), or "on" or "off".',
            ),
        ],
    )
    def test_marker_misused(self, pytester: pytest.Pytester, marker: str, error: str) -> None:
        """A marker without a mode, with another keyword, with two modes or a bad one:
        an error of that test at setup, one message that says how to write the marker,
        and no traceback through protoguard's code."""
        pytester.makepyfile(f"import pytest\n\n{marker}\ndef test_x():\n    pass\n")
        result = pytester.runpytest()
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines([error])
        output = result.stdout.str()
        assert "_pytest_plugin.py" not in output
        assert "_config.py" not in output
        assert "During handling of the above exception" not in output
