"""ruff and mypy, as tests, so `make test` and CI run them with the rest.

Configuration lives in pyproject.toml ([tool.ruff], [tool.mypy]).  mypy cannot follow the
editable install's import hook that maps ``jpki_mock.ca`` to ``ca/``, so it checks a shadow
tree: ``<tmp>/jpki_mock/`` holds a symlink to every entry of ``jpki_mock/`` plus one directory
symlink per mapped part (``ca -> <repo>/ca`` ...), built from pyproject's package-dir table.
Paths in mypy's report are rewritten back to the repository's.  One test per package, so a
failure says whose annotations need work.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = "jpki_mock"
LINTED = ["jpki_mock", "ca", "crl", "ocsp", "public", "console", "kit", "loadtest", "tests", "tools"]


def package_dirs() -> dict[str, str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return dict(tomllib.load(f)["tool"]["setuptools"]["package-dir"])


def shadow_tree(base: Path) -> dict[str, str]:
    """Lay out ``base/jpki_mock`` as the installed package; return shadow->repo path prefixes."""
    top = base / PKG
    top.mkdir()
    rewrites = {}
    for package, folder in package_dirs().items():
        if package == PKG:
            for entry in (ROOT / folder).iterdir():
                if entry.name != "__pycache__":
                    (top / entry.name).symlink_to(entry)
            rewrites[f"{PKG}/"] = f"{folder}/"
            continue
        parent, _, leaf = package.rpartition(".")
        assert parent == PKG, f"{package}: only jpki_mock.<part> mappings are supported here"
        (top / leaf).symlink_to(ROOT / folder, target_is_directory=True)
        rewrites[f"{PKG}/{leaf}/"] = f"{folder}/"
    return rewrites


def test_ruff() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", *LINTED],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"ruff check {' '.join(LINTED)}:\n{proc.stdout}{proc.stderr}"


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """mypy's error lines grouped by package (kernel, root, ca, ...), with repository paths."""
    base = tmp_path_factory.mktemp("mypy-shadow")
    rewrites = shadow_tree(base)
    env = {**os.environ, "MYPYPATH": str(base)}
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(base / ".mypy_cache"), "--no-error-summary", "-p", PKG],
        cwd=base, env=env, capture_output=True, text=True, timeout=900,
    )
    # Exit 1 means "type errors found"; anything else (2: crash, bad config) is the checker failing.
    assert proc.returncode in (0, 1), f"mypy did not run: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    longest_first = sorted(rewrites, key=len, reverse=True)
    report: dict[str, list[str]] = {}
    for raw in proc.stdout.splitlines():
        line = raw.replace(str(base) + os.sep, "")
        if not line.strip():
            continue
        shadow = next((p for p in longest_first if line.startswith(p)), None)
        if shadow is None:
            report.setdefault("other", []).append(line)
            continue
        repo_line = rewrites[shadow] + line[len(shadow):]
        report.setdefault(owner(line), []).append(repo_line)
    assert proc.returncode == 0 or report, f"mypy failed without errors to show:\n{proc.stdout}{proc.stderr}"
    return report


KERNEL_ROOT = re.compile(rf"{PKG}/(runtime|app|apidoc|server|cli)\.py:")


def owner(shadow_line: str) -> str:
    """Which package a mypy line (shadow path, e.g. ``jpki_mock/ca/x.py:3: error``) belongs to."""
    m = re.match(rf"{PKG}/(ca|crl|ocsp|public|console|kit|loadtest)/", shadow_line)
    if m:
        return m.group(1)
    return "root" if KERNEL_ROOT.match(shadow_line) else "kernel"


@pytest.mark.slow
@pytest.mark.parametrize(
    "package", ["kernel", "root", "ca", "crl", "ocsp", "public", "console", "kit", "loadtest", "other"])
def test_mypy(package: str, mypy_report: dict[str, list[str]]) -> None:
    lines = mypy_report.get(package, [])
    errors = [line for line in lines if ": error:" in line]
    assert not lines, f"mypy ({package}): {len(errors)} error(s)\n" + "\n".join(lines)


def test_shadow_tree_maps_every_part(tmp_path: Path) -> None:
    rewrites = shadow_tree(tmp_path)
    for package, folder in package_dirs().items():
        if package != PKG:
            shadow = tmp_path.joinpath(*package.split("."))
            assert shadow.resolve() == (ROOT / folder).resolve(), package
    for module in (ROOT / PKG).glob("*.py"):
        assert (tmp_path / PKG / module.name).resolve() == module.resolve()
    assert rewrites[f"{PKG}/ca/"] == "ca/"
    assert owner("jpki_mock/ca/status.py:1: error: x") == "ca"
    assert owner("jpki_mock/runtime.py:1: error: x") == "root"
    assert owner("jpki_mock/clock.py:1: error: x") == "kernel"
