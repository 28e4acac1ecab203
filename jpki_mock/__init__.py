"""jpki-mock: a mock of Japan's JPKI (the My Number card's public certification service).

This package is the shared kernel and the one composition root; the parts it wires are its
subpackages, each a top-level folder of the repository (docs/architecture.md):

* kernel: :mod:`.errors`, :mod:`.clock`, :mod:`.config`, :mod:`.der`, :mod:`.vocab`,
  :mod:`.db`, :mod:`.epoch`, :mod:`.access`, :mod:`.urls`, :mod:`.web` -- imported by every
  part, importing none of them;
* composition root: :mod:`.runtime`, :mod:`.app`, :mod:`.server`, :mod:`.cli` -- the only
  modules that import every part;
* parts: ``ca`` (the authority, the only code that decrypts CA keys), ``crl``, ``ocsp``,
  ``kit`` (the relying-party kit) and ``loadtest``.
"""

__version__ = "0.1.0"
