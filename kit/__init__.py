"""The relying-party kit: a software My Number card, the scenario catalog and their edges.

- :mod:`ca.card.card`: the software card (keys generated on the card, encrypted at rest under
  the holder's PIN / password, JPKI PIN rules, signing and challenge-response).
- :mod:`ca.card.scenarios`: ``jpki-mock scenarios build``, every certificate state a verifier
  must handle, with a manifest of expected outcomes.
- :mod:`ca.card.api` / :mod:`ca.card.cli`: the admin API blueprint and the click commands.
- :mod:`jpki_mock.kit.pdf` / :mod:`jpki_mock.kit.xmldsig`: PAdES (pyHanko) and enveloped
  XMLDSig (signxml) signatures whose private-key operation is the card's.

It lives inside ``ca/`` because creating a card issues certificates and the scenario
catalog's deliberately broken artefacts need CA and responder signers.
"""
