"""jpki-mock certificate authority: the only package that holds CA private keys.

``crl/`` and ``ocsp/`` talk to it through two narrow interfaces:
:mod:`ca.status` (a read-only view of certificate status) and :mod:`ca.signer`
(signing CRL and OCSP response bytes without ever seeing a key).
"""


