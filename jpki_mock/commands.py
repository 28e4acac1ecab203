"""What every part's click commands share: the error translation at the edge, the lazily
opened runtime, JSON output.

Errors from the domain tree become one ``error: ...`` line on stderr and an exit code:
2 invalid input, 3 not found, 4 conflict, 5 not initialised / configuration, 6 refused,
7 publish failed, 1 anything else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from jpki_mock import audit, errors

EXIT_CODES = [
    (errors.InvalidInput, 2),
    (errors.NotFound, 3),
    (errors.Conflict, 4),
    (errors.NotInitialised, 5),
    (errors.ConfigError, 5),
    (errors.Unauthorized, 6),
    (errors.Forbidden, 6),
    (errors.PublishError, 7),
]


def exit_code(err: errors.JpkiError) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(err, cls):
            return code
    return 1


class JpkiGroup(click.Group):
    """Translates domain errors at the edge: a message, never a traceback.  The command runs as
    ``cli:<user>`` for the audit log (jpki_mock.audit; the outermost group says so)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with audit.acting(audit.cli_actor()):
                return super().invoke(ctx)
        except errors.JpkiError as err:
            click.echo(f"error: {err}", err=True)
            if err.allowed is not None:
                allowed = err.allowed if isinstance(err.allowed, str) else json.dumps(err.allowed, ensure_ascii=False)
                click.echo(f"allowed: {allowed}", err=True)
            ctx.exit(exit_code(err))


#: how a command opens the process's services; set by the composition root (:mod:`jpki_mock.cli`),
#: so that the parts' commands never import it
RuntimeOpener = Callable[..., Any]
_opener: list[RuntimeOpener] = []


def set_runtime_opener(opener: RuntimeOpener) -> None:
    _opener[:] = [opener]


def open_runtime(config: Any = None) -> Any:
    """A new runtime (:class:`jpki_mock.runtime.Runtime`) from ``config``, by default the
    effective configuration."""
    if not _opener:
        raise errors.ConfigError("no runtime opener: run the commands through `jpki-mock` (jpki_mock.cli:main)")
    return _opener[0](config)


class Ctx:
    """Lazily opened runtime shared by the sub-commands."""

    def __init__(self) -> None:
        self._rt: Any = None

    @property
    def config(self) -> Any:
        return self.runtime.config

    @property
    def runtime(self) -> Any:
        if self._rt is None:
            self._rt = open_runtime()
        return self._rt

    def ready(self) -> Any:
        rt = self.runtime
        rt.store.require_initialised()
        return rt


pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


