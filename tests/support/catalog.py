"""A real server with the scenario catalog built into its CA, for the interop tests that check
every catalog item with an independent verifier (openssl, pyhanko-certvalidator, Java)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jpki_mock.config import load_config
from jpki_mock.kit.scenarios import build
from jpki_mock.runtime import Runtime
from tests.support.server import Server


@contextmanager
def catalog_server(data_dir: Path) -> Iterator[tuple[Server, Path, dict[str, Any]]]:
    """``(server, catalog directory, manifest)``; ``server.rt`` is a runtime on its data directory.

    The build and the publication run in this process on the server's data directory (what
    ``jpki-mock scenarios build`` and ``jpki-mock crl publish`` do), saving two interpreter starts."""
    from jpki_mock.crl.publisher import CrlDeps, Publisher

    srv = Server(data_dir, workers=1)
    srv.token = srv.init()
    srv.start()
    rt = Runtime.open(load_config(srv.env))
    try:
        out = srv.data_dir.parent / "catalog"
        manifest = build(rt, out, progress=False)
        partitions = {Path(i["crl_url"]).stem for i in manifest["items"] if "crl_url" in i}
        publisher = Publisher(CrlDeps.of(rt))
        for partition in sorted(partitions):  # publish now: the revocations happened after start-up
            publisher.publish_many(publisher.select(None, partition, None))
        srv.rt = rt  # type: ignore[attr-defined]
        yield srv, out, manifest
    finally:
        rt.close()
        srv.stop()
