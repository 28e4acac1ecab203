"""Fixtures for the OCSP tests: one CA per session (key generation is the slow part), fresh
certificates and a fresh WSGI app per test."""

from __future__ import annotations

import dataclasses

import pytest

from jpki_mock.clock import FixedClock
from jpki_mock.config import load_config
from jpki_mock.runtime import Runtime
from tests.support.ocsp import PASSPHRASE, T0, issue, ocsp_app


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    config = load_config({}, data_dir=tmp_path_factory.mktemp("ocsp") / "data", key_passphrase=PASSPHRASE)
    runtime = Runtime.open(config, FixedClock(T0))
    runtime.token = runtime.authority.init()
    yield runtime
    runtime.close()


@pytest.fixture
def ort(pki):
    """The session runtime, with its clock and OCSP settings restored after the test."""
    config = pki.config
    pki.clock.set(T0)
    yield pki
    if pki.config is not config:
        pki.config = config
        pki.keyring.config = config
        pki.keyring.forget()
    pki.clock.set(T0)


@pytest.fixture
def items(ort):
    """[sign, auth] certificates of a new holder."""
    return issue(ort)


@pytest.fixture
def app(ort, items):
    return ocsp_app(ort)


@pytest.fixture
def make_app(ort, items):
    """An app with changed ``ocsp`` settings on the same CA."""

    def make(**ocsp_changes):
        ort.config = ort.config.replace(ocsp=dataclasses.replace(ort.config.ocsp, **ocsp_changes))
        ort.keyring.config = ort.config
        ort.keyring._responders.clear()  # the CA keys stay decrypted; responder signers follow ocsp.signing
        return ocsp_app(ort)

    return make
