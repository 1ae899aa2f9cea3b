"""examples/: protoguard check finds every marked misuse of the broken app at its line,
the fixed twin checks clean, and the fixed app's own tests pass."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXPECT = re.compile(r"# expect: (PG\d{3})")


def run(cwd: Path, *args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PROTOGUARD_CACHE_DIR=str(cache))
    env.pop("CHATAPP_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def expected(root: Path) -> set[tuple[str, int, str]]:
    """(path relative to root, line, code) of every `# expect:` marker."""
    found = set()
    for path in sorted(root.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for code in EXPECT.findall(line):
                found.add((path.relative_to(root).as_posix(), number, code))
    return found


def test_broken_app_every_misuse_at_its_line(tmp_path: Path) -> None:
    """Each `# expect: PGxxx` line of the broken app is reported, and nothing else."""
    root = EXAMPLES / "broken"
    result = run(root, "-m", "protoguard", "check", "chatapp", "--format", "json", cache=tmp_path)
    assert result.returncode == 1, result.stderr
    reported = {
        (Path(f["path"]).as_posix(), f["line"], f["code"]) for f in json.loads(result.stdout)
    }
    markers = expected(root)
    assert len(markers) >= 6
    assert {code for _, _, code in markers} >= {"PG101", "PG102", "PG103", "PG104", "PG105"}
    assert reported == markers


def test_fixed_app_checks_clean(tmp_path: Path) -> None:
    """The fixed twin has no finding."""
    result = run(EXAMPLES / "fixed", "-m", "protoguard", "check", "chatapp", cache=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_fixed_app_tests_pass(tmp_path: Path) -> None:
    """The fixed app's own tests pass, under the plugin in strict mode."""
    result = run(EXAMPLES / "fixed", "-m", "pytest", "-q", "-p", "no:cacheprovider", cache=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout


def test_import_hook_finds_the_same(tmp_path: Path) -> None:
    """The hook, with its shortcut (parse only what may be wrong), finds what check finds."""
    code = (
        "import json, warnings, protoguard\n"
        "warnings.simplefilter('ignore')\n"
        "hook = protoguard.install_import_hook('chatapp', mode='on')\n"
        "import chatapp.main\n"
        "print(json.dumps([[f.path, f.line, f.code] for f in hook.findings]))\n"
    )
    root = EXAMPLES / "broken"
    result = run(root, "-c", code, cache=tmp_path)
    assert result.returncode == 0, result.stderr
    reported = {
        (Path(path).relative_to(root).as_posix(), line, code)
        for path, line, code in json.loads(result.stdout)
    }
    assert reported == expected(root)
