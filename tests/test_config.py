"""Modes: the environment variable, configure(), @provider(mode=...) and override()."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys

import pytest

import protoguard
from protoguard import ConfigurationError, ProtocolError


@contextlib.asynccontextmanager
async def _plain_cm():
    yield "session"


async def _plain_gen():
    yield "session"


def _pg101(provider) -> None:
    async def main() -> None:
        async for _ in provider():
            pass

    asyncio.run(main())


def _run_python(code: str, mode: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PROTOGUARD_MODE"}
    if mode is not None:
        env["PROTOGUARD_MODE"] = mode
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )


class TestEnvironment:
    """PROTOGUARD_MODE sets the global mode when protoguard is imported."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [(None, "on"), ("", "on"), ("off", "off"), ("ON", "on"), (" strict ", "strict")],
    )
    def test_valid_values(self, value: str | None, expected: str) -> None:
        """Valid values are accepted case-insensitively; unset or empty means "on"."""
        result = _run_python("import protoguard; print(protoguard.current_mode())", value)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected

    def test_invalid_value_is_one_clear_error(self) -> None:
        """An invalid value fails the import with one message naming the accepted values."""
        result = _run_python("import protoguard", "loud")
        assert result.returncode == 1
        last = result.stderr.strip().splitlines()[-1]
        assert last == (
            "protoguard.ConfigurationError: the environment variable PROTOGUARD_MODE: "
            "'loud' is not a protoguard mode; use one of: off, on, strict."
        )

    def test_every_invalid_value_is_in_the_one_error(self) -> None:
        """Several invalid values fail the import with one error naming each of them, a
        line each (as protoguard's command reports them), not only the first one read."""
        env = dict(
            os.environ,
            PROTOGUARD_MODE="loud",
            PROTOGUARD_ACTION="shout",
            PROTOGUARD_SAMPLE_RATE="2",
        )
        result = subprocess.run(
            [sys.executable, "-c", "import protoguard"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-3:] == [
            "protoguard.ConfigurationError: the environment variable PROTOGUARD_ACTION: "
            "'shout' is not a protoguard action; use one of: raise, warn, log.",
            "the environment variable PROTOGUARD_MODE: 'loud' is not a protoguard mode; "
            "use one of: off, on, strict.",
            "the environment variable PROTOGUARD_SAMPLE_RATE: '2' is not a sample rate; use a "
            "number from 0 to 1, the share of provider uses strict mode watches (0.1: one in "
            "ten; 1: every use, the default).",
        ]

    @pytest.mark.parametrize(
        ("variable", "value"),
        [("PROTOGUARD_ACTION", "shout"), ("PROTOGUARD_MODE", "loud")],
        ids=["action", "mode"],
    )
    def test_an_import_that_failed_fails_again(self, variable: str, value: str) -> None:
        """A failed import leaves no half-read setting behind: importing again fails
        again (not a clean import under the default nobody chose), and once the value is
        mended the next import takes it."""
        mended = "warn" if variable == "PROTOGUARD_ACTION" else "strict"
        script = (
            "import os\n"
            "for attempt in (1, 2):\n"
            "    try:\n"
            "        import protoguard\n"
            "    except ValueError as error:  # protoguard.ConfigurationError\n"
            "        print('failed:', str(error).splitlines()[0])\n"
            "    else:\n"
            "        print('imported')\n"
            f"os.environ[{variable!r}] = {mended!r}\n"
            "import protoguard\n"
            "print(protoguard.current_action(), protoguard.current_mode())\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script],
            env=dict(os.environ, **{variable: value}),
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == 3
        assert lines[0] == lines[1]
        assert lines[0].startswith(f"failed: the environment variable {variable}: {value!r} is not")
        assert lines[2] == ("warn on" if mended == "warn" else "raise strict")

    @pytest.mark.parametrize(
        "command",
        [["-m", "protoguard"], ["-m", "protoguard.__main__"], ["script"]],
        ids=["python -m protoguard", "python -m protoguard.__main__", "protoguard script"],
    )
    def test_the_command_reports_invalid_values_as_a_usage_error(
        self, command: list[str], tmp_path
    ) -> None:
        """protoguard's own command imports the package before it can speak: an invalid
        value is its usage error (one line each, exit 2), not a traceback at the import."""
        if command == ["script"]:
            script = os.path.join(os.path.dirname(sys.executable), "protoguard")
            if not os.path.exists(script):
                pytest.skip("the protoguard console script is not installed here")
            argv = [script, "check", "json"]
        else:
            argv = [sys.executable, *command, "check", "json"]
        env = dict(
            os.environ,
            PROTOGUARD_MODE="loud",
            PROTOGUARD_ACTION="shout",
            PROTOGUARD_SAMPLE_RATE="2",
            PROTOGUARD_CACHE_DIR=str(tmp_path),
        )
        result = subprocess.run(
            argv, env=env, capture_output=True, text=True, check=False, cwd=tmp_path
        )
        assert result.returncode == 2, result.stderr
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            "protoguard: error: the environment variable PROTOGUARD_ACTION: 'shout' is not a "
            "protoguard action; use one of: raise, warn, log.",
            "protoguard: error: the environment variable PROTOGUARD_MODE: 'loud' is not a "
            "protoguard mode; use one of: off, on, strict.",
            "protoguard: error: the environment variable PROTOGUARD_SAMPLE_RATE: '2' is not a "
            "sample rate; use a number from 0 to 1, the share of provider uses strict mode "
            "watches (0.1: one in ten; 1: every use, the default).",
        ]
        # --help still answers.
        helped = subprocess.run(
            [*argv[:-2], "--help"], env=env, capture_output=True, text=True, check=False
        )
        assert helped.returncode == 0, helped.stderr
        assert helped.stdout.startswith("usage: protoguard")

    def test_another_module_run_with_dash_m_still_fails_its_import(self, tmp_path) -> None:
        """Only protoguard's own command defers the error: an application run as
        ``python -m app`` that imports protoguard fails at that import, as with -c."""
        (tmp_path / "app.py").write_text("import protoguard\nprint('ran')\n")
        env = dict(os.environ, PROTOGUARD_MODE="loud")
        result = subprocess.run(
            [sys.executable, "-m", "app"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
        )
        assert result.returncode == 1
        assert "ran" not in result.stdout
        assert result.stderr.strip().splitlines()[-1] == (
            "protoguard.ConfigurationError: the environment variable PROTOGUARD_MODE: "
            "'loud' is not a protoguard mode; use one of: off, on, strict."
        )

    def test_off_returns_the_function_unchanged(self) -> None:
        """With PROTOGUARD_MODE=off the decorator is the identity, zero cost, except on
        a context-manager function, which keeps a guard that hands out contextlib's own
        objects (FastAPI's Depends() drives one only guarded)."""
        code = (
            "import contextlib, protoguard\n"
            "async def gen():\n    yield 1\n"
            "@contextlib.asynccontextmanager\n"
            "async def cm():\n    yield 1\n"
            "guarded = protoguard.provider(cm)\n"
            "print(protoguard.provider(gen) is gen, guarded is cm, type(guarded()).__name__)\n"
        )
        result = _run_python(code, "off")
        assert result.stdout.split() == ["True", "False", "_AsyncGeneratorContextManager"], (
            result.stderr
        )


class TestConfigure:
    """configure(mode=...) changes the global mode at run time."""

    def test_configure_off_then_on(self) -> None:
        """A provider guarded while "on" is unguarded while the global mode is "off"."""
        guarded = protoguard.provider(_plain_cm)
        protoguard.configure(mode="off")
        assert type(guarded()) is contextlib._AsyncGeneratorContextManager
        protoguard.configure(mode="on")
        with pytest.raises(ProtocolError):
            _pg101(guarded)

    def test_decorated_while_off_stays_unguarded(self) -> None:
        """Decorating in mode "off" returns the function itself, whatever comes later (a
        context-manager function keeps a guard, off for good: see test_off_returns_...)."""
        protoguard.configure(mode="off")
        assert protoguard.provider(_plain_gen) is _plain_gen
        guarded = protoguard.provider(_plain_cm)
        protoguard.configure(mode="strict")
        with protoguard.override(mode="strict"):
            assert type(guarded()) is contextlib._AsyncGeneratorContextManager

    @pytest.mark.parametrize("bad", ["loud", 1, None.__class__])
    def test_invalid_mode(self, bad: object) -> None:
        """A bad mode is a ConfigurationError (a ValueError) naming the accepted values."""
        with pytest.raises(ConfigurationError, match="use one of: off, on, strict") as info:
            protoguard.configure(mode=bad)  # type: ignore[arg-type]
        assert isinstance(info.value, ValueError)
        assert protoguard.current_mode() == "on"


class TestProviderMode:
    """@provider(mode=...) sets one provider's mode."""

    def test_provider_mode_off_is_identity(self) -> None:
        """mode="off" on the decorator returns the provider unchanged; a context-manager
        function's guard hands out contextlib's own object, whatever the global mode."""
        assert protoguard.provider(mode="off")(_plain_gen) is _plain_gen
        guarded = protoguard.provider(mode="off")(_plain_cm)
        assert type(guarded()) is contextlib._AsyncGeneratorContextManager
        protoguard.configure(mode="strict")
        assert type(guarded()) is contextlib._AsyncGeneratorContextManager
        with protoguard.override(mode="strict"):  # never guarded, as documented
            assert type(guarded()) is contextlib._AsyncGeneratorContextManager

    def test_provider_mode_beats_global(self) -> None:
        """A provider's own mode="on" keeps guarding while the global mode is "off"."""
        guarded = protoguard.provider(mode="on")(_plain_cm)
        protoguard.configure(mode="off")
        with pytest.raises(ProtocolError):
            _pg101(guarded)

    def test_invalid_provider_mode(self) -> None:
        """An invalid mode on the decorator fails at decoration, not at the first call."""
        with pytest.raises(ConfigurationError, match=r"provider\(mode=\.\.\.\)"):
            protoguard.provider(mode="sometimes")


class TestOverride:
    """override(mode=...) is context-local and wins over everything else."""

    def test_override_off_unguards_within_the_block(self) -> None:
        """Inside override(mode="off") calls return contextlib's own object."""
        guarded = protoguard.provider(mode="on")(_plain_cm)
        with protoguard.override(mode="off"):
            assert type(guarded()) is contextlib._AsyncGeneratorContextManager
            assert protoguard.current_mode() == "off"
        assert protoguard.current_mode() == "on"
        with pytest.raises(ProtocolError):
            _pg101(guarded)

    @pytest.mark.parametrize("own_mode", [None, "on", "strict"])
    def test_a_provider_decorated_inside_override_off_is_guarded_outside(
        self, own_mode: str | None
    ) -> None:
        """The block is for the code running inside it: a provider decorated there (a
        module first imported in it) is guarded, and runs as off only inside it."""
        with protoguard.override(mode="off"):
            guarded = protoguard.provider(mode=own_mode)(_plain_cm)
            assert type(guarded()) is contextlib._AsyncGeneratorContextManager
        assert guarded is not _plain_cm
        with pytest.raises(ProtocolError):
            _pg101(guarded)

    def test_override_is_restored_after_an_exception(self) -> None:
        """Leaving the block by an exception restores the previous mode."""
        with pytest.raises(KeyError), protoguard.override(mode="off"):
            raise KeyError("x")
        assert protoguard.current_mode() == "on"

    def test_override_is_task_local(self) -> None:
        """Another task started outside the block does not see the override."""
        guarded = protoguard.provider(_plain_cm)
        seen: dict[str, str] = {}

        async def other(started: asyncio.Event, release: asyncio.Event) -> None:
            started.set()
            await release.wait()
            seen["other"] = protoguard.current_mode()

        async def main() -> None:
            started, release = asyncio.Event(), asyncio.Event()
            task = asyncio.ensure_future(other(started, release))
            await started.wait()
            with protoguard.override(mode="off"):
                seen["inside"] = protoguard.current_mode()
                assert type(guarded()) is contextlib._AsyncGeneratorContextManager
                release.set()
                await task

        asyncio.run(main())
        assert seen == {"inside": "off", "other": "on"}

    def test_override_invalid(self) -> None:
        """An invalid override mode raises before the block runs."""
        with pytest.raises(ConfigurationError, match=r"override\(mode=\.\.\.\)"):  # noqa: SIM117
            with protoguard.override(mode="never"):
                pytest.fail("the block must not run")


class TestSampleRate:
    """PROTOGUARD_SAMPLE_RATE and configure(sample_rate=...): the share of provider uses
    strict mode watches (what each does to those uses: test_strict.TestSampleRate)."""

    @staticmethod
    def _import_with(value: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROTOGUARD_")}
        env["PROTOGUARD_SAMPLE_RATE"] = value
        code = "import protoguard; print(protoguard.current_sample_rate())"
        return subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
        )

    @pytest.mark.parametrize(
        ("value", "expected"), [("", 1.0), ("0", 0.0), (" 0.25 ", 0.25), ("1e-2", 0.01), ("1", 1.0)]
    )
    def test_environment(self, value: str, expected: float) -> None:
        """A number from 0 to 1 is read when protoguard is imported; empty means 1."""
        result = self._import_with(value)
        assert result.returncode == 0, result.stderr
        assert float(result.stdout) == expected

    def test_invalid_environment_is_one_clear_error(self) -> None:
        """A value that is not a share fails the import with one message saying what is."""
        result = self._import_with("10%")
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-1] == (
            "protoguard.ConfigurationError: the environment variable PROTOGUARD_SAMPLE_RATE: "
            "'10%' is not a sample rate; use a number from 0 to 1, the share of provider "
            "uses strict mode watches (0.1: one in ten; 1: every use, the default)."
        )

    @pytest.mark.parametrize(
        "bad",
        [
            -0.1,
            1.5,
            float("nan"),
            float("inf"),
            True,
            "half",
            [0.5],
            "\u0661",
            "\uff10.\uff15",
            "0.2_5",
        ],
        ids=repr,
    )
    def test_invalid_value_changes_nothing(self, bad: object) -> None:
        """A bad rate is a ConfigurationError, and the rest of the call is not applied."""
        with pytest.raises(ConfigurationError, match="is not a sample rate") as info:
            protoguard.configure(mode="strict", sample_rate=bad)  # type: ignore[arg-type]
        assert isinstance(info.value, ValueError)
        assert "protoguard.configure(sample_rate=...)" in str(info.value)
        assert protoguard.current_mode() == "on"
        assert protoguard.current_sample_rate() == 1.0

    @pytest.mark.parametrize("bad", ["\u0661", "\u0660.\u0665", "\uff10.\uff15", "0.2_5"])
    def test_environment_takes_ascii_decimals_only(self, bad: str) -> None:
        """Text is read as the docs write a rate (0.1, 1e-2), in ASCII digits: not as every
        spelling float() takes, Arabic-Indic or full-width digits and underscores."""
        result = self._import_with(bad)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-1] == (
            f"protoguard.ConfigurationError: the environment variable PROTOGUARD_SAMPLE_RATE: "
            f"{bad!r} is not a sample rate; use a number from 0 to 1, the share of provider "
            f"uses strict mode watches (0.1: one in ten; 1: every use, the default)."
        )

    @pytest.mark.parametrize(
        ("bad", "shown"),
        [(2, "2"), (1.5, "1.5"), (-0.1, "-0.1"), (float("nan"), "nan"), (10**30, "a 31-digit int")],
    )
    def test_a_number_is_shown(self, bad: float, shown: str) -> None:
        """A number out of range is named, not only its type (0 and 1 are ints too)."""
        with pytest.raises(ConfigurationError) as info:
            protoguard.configure(sample_rate=bad)
        assert str(info.value).startswith(
            f"protoguard.configure(sample_rate=...): {shown} is not a sample rate;"
        )

    def test_fraction_and_string(self) -> None:
        """Any real number from 0 to 1 is a rate, and so is its text."""
        from fractions import Fraction

        protoguard.configure(sample_rate=Fraction(1, 4))
        assert protoguard.current_sample_rate() == 0.25
        protoguard.configure(sample_rate="0.5")  # type: ignore[arg-type]
        assert protoguard.current_sample_rate() == 0.5

    def test_current_sample_rate(self) -> None:
        """current_sample_rate() is the configured rate, and 1.0 inside an override()
        block, where every use is watched; a task started in the block keeps it."""
        protoguard.configure(sample_rate=0.25)
        assert protoguard.current_sample_rate() == 0.25
        seen = {}

        async def in_a_task() -> None:
            seen["task"] = protoguard.current_sample_rate()

        with protoguard.override(mode="strict"):
            assert protoguard.current_sample_rate() == 1.0
            asyncio.run(in_a_task())
        assert seen == {"task": 1.0}
        assert protoguard.current_sample_rate() == 0.25
        protoguard.configure(sample_rate=0)
        assert protoguard.current_sample_rate() == 0.0

    @pytest.mark.parametrize("rate", [1e-17, 5e-324, 1e-300])
    def test_a_rate_too_small_to_count_is_never(self, rate: float) -> None:
        """A rate so small that 1 - rate rounds to 1 is accepted and watches nothing (no
        ZeroDivisionError, here or at a provider call later)."""
        protoguard.configure(mode="strict", sample_rate=rate)
        assert protoguard.current_sample_rate() == rate
        assert all(protoguard._config.unwatched() for _ in range(1000))

    @pytest.mark.parametrize("rate", [0.5, 0.1, 0.001, 1e-9])
    def test_gaps_watch_the_rate_on_average(self, rate: float) -> None:
        """The gaps between watched uses average 1/rate (a seeded draw of 20,000)."""
        import random
        import statistics

        settings = protoguard._config._Settings()
        settings._random = random.Random(20261206)
        gaps = [settings._gap(rate) for _ in range(20_000)]
        assert min(gaps) >= 1
        # The mean of 20,000 geometric gaps is within 3 % of 1/rate: over 4 standard
        # deviations (at most 0.71 % of 1/rate) for any of these rates.
        assert statistics.mean(gaps) * rate == pytest.approx(1, rel=0.03)

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
    def test_forked_workers_draw_their_own_uses(self) -> None:
        """Two workers forked from one process (gunicorn --preload) do not watch the same
        uses: each reseeds its draw."""
        code = (
            "import os, protoguard\n"
            "from protoguard import _config\n"
            "protoguard.configure(mode='strict', sample_rate=0.5)\n"
            "for _ in range(2):\n"
            "    if os.fork() == 0:\n"
            "        print(''.join('x' if _config.unwatched() else 'w' for _ in range(64)))\n"
            "        os._exit(0)\n"
            "    os.wait()\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        first, second = result.stdout.split()
        assert len(first) == len(second) == 64
        assert first != second  # the same 64 draws by chance: 1 in 2**64


class TestAction:
    """PROTOGUARD_ACTION and configure(action=...), as current_action() reads them (what
    each action does to a finding: test_strict)."""

    @pytest.mark.parametrize(
        ("value", "expected"), [(None, "raise"), ("", "raise"), ("warn", "warn"), (" LOG ", "log")]
    )
    def test_environment(self, value: str | None, expected: str) -> None:
        """The action is read when protoguard is imported; unset or empty means raise."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROTOGUARD_")}
        if value is not None:
            env["PROTOGUARD_ACTION"] = value
        result = subprocess.run(
            [sys.executable, "-c", "import protoguard; print(protoguard.current_action())"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected

    def test_configure(self) -> None:
        """configure(action=...) changes it; a bad action changes nothing."""
        assert protoguard.current_action() == "raise"
        protoguard.configure(action="log")
        assert protoguard.current_action() == "log"
        with pytest.raises(ConfigurationError, match="is not a protoguard action"):
            protoguard.configure(action="ignore")
        assert protoguard.current_action() == "log"
