"""The public web room: pages and downloads anyone may fetch without a token.

The service index (``/``), the certification practice statement (``/cps``) and the CA
certificates of every generation (``/ca/...``), which a relying party needs as trust anchors.
Like ``crl/`` and ``ocsp/`` it reads through the authority's narrow status interface only.
"""
