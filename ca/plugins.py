"""Where the other packages plug into the combined server and the CLI.

Each entry is ``module:attribute``, imported lazily; a module that does not exist yet is
skipped, anything else that fails to import is an error.  Keeping the list here keeps the
wiring in one place per process (STYLE.md) and ``ca`` free of import-time dependencies on
``crl``/``ocsp``.
"""

from __future__ import annotations

import importlib
from typing import Any

#: WSGI apps mounted under a path prefix: factory(runtime) -> WSGI callable.
MOUNTS = [
    ("/ocsp", "ocsp.http:make_app"),
    ("/crl", "crl.http:make_app"),
]
#: Flask blueprints added to the admin API (under /admin/api, behind the bearer token).
ADMIN_BLUEPRINTS = [
    "crl.admin:bp",
    "ocsp.admin:bp",
    "ca.card.api:bp",
    "ca.timetravel:bp",
]
#: click commands added to ``jpki-mock``.
COMMANDS = [
    "crl.cli:crl",
    "ocsp.cli:ocsp",
    "loadtest.cli:loadtest",
    "ca.card.cli:card",
    "ca.card.cli:scenarios",
    "ca.timetravel:clock_cli",
]
#: background services started once by the server launcher: start(runtime) -> stop callable.
BACKGROUND = [
    "crl.schedule:start",
]


def load(spec: str) -> Any | None:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            return None
        raise
    return getattr(module, attr, None)


def available(specs: list[str]) -> list[Any]:
    return [obj for obj in (load(s) for s in specs) if obj is not None]
