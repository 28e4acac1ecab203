"""The OCSP responder (RFC 6960, RFC 9654 nonces, RFC 5019/9919 caching): docs/ocsp.md."""
