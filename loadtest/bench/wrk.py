"""Running wrk (a C HTTP load generator) and reading its report.

wrk prints its report as text; :func:`parse_wrk` turns it into a :class:`WrkResult`.  The
OCSP script (``loadtest/wrk/ocsp.lua``) adds one line of its own checks
(``ocsp_checked=... bad_http=... bad_ocsp=... wrong_status=... bad_nonce=...``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

OCSP_LUA = Path(__file__).resolve().parent / "wrk_scripts" / "ocsp.lua"

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = re.compile(r"^([0-9.]+)(us|ms|s|m|h)$")


class WrkError(RuntimeError):
    """wrk could not run or printed a report this module cannot read."""


def duration_ms(text: str) -> float:
    """``812.00us`` / ``1.23ms`` / ``2.00s`` -> milliseconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise WrkError(f"cannot read wrk duration {text!r} (expected a number with us, ms, s, m or h)")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    percentiles: dict[int, float] = field(default_factory=dict)  # percentile -> ms
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)  # connect/read/write/timeout
    checks: dict[str, int] = field(default_factory=dict)  # from ocsp.lua's done()

    @property
    def p50(self) -> float:
        return self.percentiles.get(50, float("nan"))

    @property
    def p99(self) -> float:
        return self.percentiles.get(99, float("nan"))

    @property
    def errors(self) -> int:
        """Every answer that was not a correct one: failed sockets, non-200, an OCSP error
        status, a wrong certStatus, a missing or stale nonce, or responses never checked."""
        c = self.checks
        # wrk counts non-2xx answers, the script counts non-200 ones: the same failures, once.
        http = max(self.non_2xx, c.get("bad_http", 0))
        unchecked = max(0, self.requests - c["ocsp_checked"]) if "ocsp_checked" in c else 0
        return (sum(self.socket_errors.values()) + http + c.get("bad_ocsp", 0) + c.get("wrong_status", 0)
                + c.get("bad_nonce", 0) + unchecked)


def parse_wrk(text: str) -> WrkResult:
    """Read wrk 4.x's report (run with ``--latency``)."""
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+\w+), ", text, re.M)
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    if not m or not rps:
        raise WrkError("no request count / Requests/sec in wrk's output:\n" + text[-2000:])
    result = WrkResult(requests=int(m.group(1)), seconds=duration_ms(m.group(2)) / 1000.0, rps=float(rps.group(1)))
    dist = text.split("Latency Distribution", 1)
    if len(dist) == 2:
        for pct, value in re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", dist[1], re.M):
            result.percentiles[int(pct)] = duration_ms(value)
    non = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if non:
        result.non_2xx = int(non.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        result.socket_errors = dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True))
    checks = re.search(r"^(ocsp_checked=\d+(?: \w+=\d+)*)\s*$", text, re.M)
    if checks:
        result.checks = {k: int(v) for k, v in (pair.split("=") for pair in checks.group(1).split())}
    return result


def wrk_binary(install: bool = True) -> str:
    """Path of wrk; installs Debian's package when missing (apt-get update first if needed)."""
    found = shutil.which("wrk")
    if found or not install:
        if not found:
            raise WrkError("wrk is not installed (apt-get install -y wrk)")
        return found
    cmd = ["apt-get", "install", "-y", "-q", "wrk"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(cmd, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise WrkError(f"could not install wrk with apt-get: {done.stderr.strip()[-500:]}")
    found = shutil.which("wrk")
    if not found:
        raise WrkError("apt-get installed wrk but it is not on PATH")
    return found


def run_wrk(url: str, data_file: Path, *, threads: int, connections: int, duration: int,
            rate: float = 0.0, headers: dict | None = None, timeout_s: int = 2,
            wrk: str = "wrk", start: int | None = None) -> tuple[WrkResult, str]:
    """One bounded wrk run of ``ocsp.lua`` against ``url``; ``rate`` > 0 paces the requests;
    ``start`` (one thread): walk the file from that line, so the first ``requests`` lines are
    the ones asked."""
    if start is not None and threads != 1:
        raise ValueError(f"start={start}: only one wrk thread walks the file from a given line, not {threads}")
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", f"--timeout={timeout_s}s", "--latency"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    cmd += ["-s", str(OCSP_LUA), url, "--", str(data_file), f"{rate:.1f}", str(threads)]
    if start is not None:
        cmd.append(str(start))
    env = dict(os.environ, JPKI_BENCH_PACED="1" if rate > 0 else "0")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=duration + 30, check=False)
    if done.returncode != 0:
        raise WrkError(f"wrk exited {done.returncode}: {done.stderr.strip()[-1000:]}")
    return parse_wrk(done.stdout), done.stdout
