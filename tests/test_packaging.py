"""The distribution installs one import name, ``jpki_mock`` (docs/architecture.md).

The repository's top-level folders (ca/, crl/, ocsp/, kit/, loadtest/) install as subpackages
of ``jpki_mock``, so a relying party's virtualenv keeps its own ``ca`` or ``loadtest``
module.  The wheel is built from a copy of the sources, installed with ``--no-deps
--no-index`` into a fresh venv next to two unrelated distributions named ``ca`` and
``loadtest``, and inspected with ``importlib.util.find_spec``, which locates modules without
executing them (so jpki_mock's dependencies are not needed there).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = "jpki_mock"


def run(*cmd: str | Path, cwd: Path | None = None) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def package_dirs() -> dict[str, str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return dict(tomllib.load(f)["tool"]["setuptools"]["package-dir"])


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def tiny_wheel(out: Path, name: str) -> Path:
    """A minimal PEP 427 wheel holding a top-level package ``name`` that says who it is."""
    dist = f"{name}-1.0.dist-info"
    files = {
        f"{name}/__init__.py": f"WHO = 'unrelated {name}'\n".encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test_packaging\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/top_level.txt": f"{name}\n".encode(),
    }
    path = out / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        lines = []
        for arcname, data in files.items():
            zf.writestr(arcname, data)
            lines.append(record_line(arcname, data))
        lines.append(f"{dist}/RECORD,,")
        zf.writestr(f"{dist}/RECORD", "\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a copy: an in-tree build would leave build/ in the worktree other tests read.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for folder in set(package_dirs().values()):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "reports"))
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", out, src)
    (built,) = out.glob("jpki_mock-*.whl")
    return built


pytestmark = pytest.mark.slow


def test_wheel_has_one_top_level_name(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert zf.read(top_level).decode().split() == [PKG]
        (record,) = [n for n in names if n.endswith(".dist-info/RECORD")]
        recorded = [line.split(",")[0] for line in zf.read(record).decode().splitlines() if line]
    dist_info = record.split("/")[0]
    tops = {n.split("/")[0] for n in recorded}
    assert tops == {PKG, dist_info}, f"the wheel installs more than {PKG}: {sorted(tops)}"
    # Every module of every mapped folder ships, under its jpki_mock name.
    expected = {
        f"{pkg.replace('.', '/')}/{p.relative_to(ROOT / folder).as_posix()}"
        for pkg, folder in package_dirs().items()
        for p in (ROOT / folder).rglob("*.py")
    }
    assert expected <= set(recorded), f"missing from the wheel: {sorted(expected - set(recorded))}"
    assert f"{PKG}/loadtest/bench/ocsp.py" in recorded
    assert f"{PKG}/loadtest/bench/wrk_scripts/ocsp.lua" in recorded
    # The admin API's reference, which /admin/api/openapi.json serves (jpki_mock/apidoc.py).
    assert f"{PKG}/openapi.yaml" in recorded
    assert f"{PKG}/data/municipalities.tsv" in recorded  # the official list (jpki_mock/municipalities.py)


def test_wheel_coexists_with_unrelated_ca_and_loadtest(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    py = venv / "bin" / "python"
    others = [tiny_wheel(tmp_path, "loadtest"), tiny_wheel(tmp_path, "ca")]
    run(sys.executable, "-m", "pip", "--python", py, "install", "--quiet", "--no-deps", "--no-index", wheel, *others)
    probe = (
        "import importlib.util, json, loadtest, ca\n"
        "specs = {m: importlib.util.find_spec(m) for m in "
        "('jpki_mock.loadtest.bench.ocsp', 'jpki_mock.loadtest', 'jpki_mock.ca.status', 'loadtest', 'ca')}\n"
        "print(json.dumps({'who': [loadtest.WHO, ca.WHO], "
        "'origins': {m: s.origin if s else None for m, s in specs.items()}}))\n"
    )
    # -I: the venv's own site-packages only (no cwd, no PYTHONPATH, no user site).
    found = json.loads(run(py, "-I", "-c", probe, cwd=tmp_path))
    assert found["who"] == ["unrelated loadtest", "unrelated ca"]
    site = Path(run(py, "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    origins = {m: Path(o) if o else None for m, o in found["origins"].items()}
    assert origins == {
        "jpki_mock.loadtest.bench.ocsp": site / PKG / "loadtest" / "bench" / "ocsp.py",
        "jpki_mock.loadtest": site / PKG / "loadtest" / "__init__.py",
        "jpki_mock.ca.status": site / PKG / "ca" / "status.py",
        "loadtest": site / "loadtest" / "__init__.py",
        "ca": site / "ca" / "__init__.py",
    }


def test_editable_install_maps_parts_to_repository_folders(tmp_path: Path) -> None:
    # A neutral cwd, so the repository's own jpki_mock/ folder cannot be found via sys.path[0].
    probe = (
        "import importlib.util, json\n"
        "print(json.dumps({m: importlib.util.find_spec(m).origin for m in "
        "('jpki_mock', 'jpki_mock.ca', 'jpki_mock.ca.status', 'jpki_mock.loadtest.bench.ocsp')}))\n"
    )
    origins = {m: Path(o) for m, o in json.loads(run(sys.executable, "-c", probe, cwd=tmp_path)).items()}
    assert origins == {
        "jpki_mock": ROOT / PKG / "__init__.py",
        "jpki_mock.ca": ROOT / "ca" / "__init__.py",
        "jpki_mock.ca.status": ROOT / "ca" / "status.py",
        "jpki_mock.loadtest.bench.ocsp": ROOT / "loadtest" / "bench" / "ocsp.py",
    }
