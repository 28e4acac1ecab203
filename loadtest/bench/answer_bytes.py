"""What one pre-signed answer really costs a responder worker, measured with tracemalloc.

The responder charges each answer to its budget (``ocsp.cache_mb``) with a fixed estimate
(:meth:`jpki_mock.ocsp.presigned.Entry.cost`, an upper bound); this measures the truth: ask a
responder app in this process about ``paths`` (each a GET about a distinct certificate), then
count what is freed when the cache lets go of them: the DER, the entry, the request key, the
dict slots, the serial index and the CLOCK queue, with the status map counted apart.  Used by
``tests/ocsp/test_ocsp_cache.py`` and by ``make bench-scale`` on its national-scale store.
"""

from __future__ import annotations

import gc
import io
import statistics
import tracemalloc
from dataclasses import dataclass
from typing import Any

from jpki_mock.ocsp import request as ocsp_request


@dataclass(frozen=True)
class AnswerBytes:
    #: bytes freed per answer when the cache let go of them (the status map apart)
    per_answer: float
    #: what the budget charged per answer
    charged: float
    #: mean length of the answers' DER
    der: float
    #: bytes per remembered certificate status
    per_status: float
    answers: int


def get(app: Any, path: str) -> int:
    """One GET through the WSGI app; the HTTP status code."""
    seen: dict[str, str] = {}
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "", "wsgi.input": io.BytesIO(b""),
               "CONTENT_LENGTH": ""}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen["status"] = status

    b"".join(app(environ, start_response))
    return int(seen["status"].split()[0])


def measure(app: Any, paths: list[str]) -> AnswerBytes:
    """``app``: an ``ocsp.http.OcspApp`` whose budget holds ``len(paths)`` answers; ``paths``:
    GET paths about distinct certificates (the first warms the process and is not counted)."""
    cache = app.chain.presigned
    if get(app, paths[0]) != 200:
        raise RuntimeError(f"GET {paths[0]} was not answered")
    cache.clear()
    items = paths[1:]
    tracemalloc.start()
    try:
        for path in items:
            if get(app, path) != 200:
                raise RuntimeError(f"GET {path} was not answered")
        if cache.evictions:
            raise RuntimeError("the budget is too small to hold every answer measured")
        charged = cache.used / len(items)
        der = statistics.fmean(len(e.der) for e in cache._clock)
        # The request parser's caches share the serials and CertIDs: let go of them first.
        ocsp_request._CERT_IDS.clear()
        ocsp_request._SHAPES.clear()
        gc.collect()
        full = tracemalloc.get_traced_memory()[0]
        cache.statuses.clear()
        cache._status_order.clear()
        gc.collect()
        no_statuses = tracemalloc.get_traced_memory()[0]
        cache.clear()
        gc.collect()
        empty = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return AnswerBytes((no_statuses - empty) / len(items), charged, der, (full - no_statuses) / len(items),
                       len(items))
