"""The relying-party kit: a software My Number card, the scenario catalog and their edges.

- :mod:`jpki_mock.kit.card`: the software card (keys generated on the card, encrypted at rest
  under the holder's PIN / password, JPKI PIN rules, signing and challenge-response).
- :mod:`jpki_mock.kit.scenarios`: ``jpki-mock scenarios build``, every certificate state a
  verifier must handle, with a manifest of expected outcomes.
- :mod:`jpki_mock.kit.timetravel`: the travelling clock's admin API and ``jpki-mock clock``.
- :mod:`jpki_mock.kit.api` / :mod:`jpki_mock.kit.cli`: the admin API blueprint and the click commands.
- :mod:`jpki_mock.kit.apdu`, :mod:`~jpki_mock.kit.vpcd`, :mod:`~jpki_mock.kit.reader`,
  :mod:`~jpki_mock.kit.pcsc`: the same card in a virtual PC/SC reader (the JPKI application
  over APDUs, vpcd's socket protocol, ``card insert / remove``, a private pcscd).
- :mod:`jpki_mock.kit.pdf` / :mod:`jpki_mock.kit.xmldsig`: PAdES (pyHanko) and enveloped
  XMLDSig (signxml) signatures whose private-key operation is the card's.

The kit stands apart from the authority: ``ca/`` never imports it; the kit issues through the
authority's facade and signs responder answers for the catalog's broken artefacts through the
narrow signer interface (docs/architecture.md).
"""
