"""Fixtures for the CRL tests: holders with certificates in chosen municipalities."""

from __future__ import annotations

import itertools

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

#: the basic four items every test holder shares (name and address vary).
PERSON = {"date_of_birth": "319800101", "gender": "2"}
ADDRESSES = {"13101": "東京都千代田区千代田1-1", "27100": "大阪府大阪市北区梅田1-1",
             # beyond the mock's first 26: a special ward, a town written with its district, a village
             # on an island, and a designated city's ward (given by code: the address names the city)
             "13105": "東京都文京区本郷7-3-1", "01584": "北海道虻田郡洞爺湖町栄町58",
             "13381": "東京都三宅島三宅村阿古1",
             "27127": "大阪府大阪市北区中之島1-3-20"}
_counter = itertools.count(1)


@pytest.fixture(scope="session")
def public_key_pem() -> str:
    """One subject key for every test certificate: generating RSA keys per certificate is slow."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture
def issue(request, public_key_pem):
    """issue(municipality="13101", kinds="both", runtime=rt) -> {kind: Certificate row}."""
    def make(municipality: str = "13101", kinds: str = "both", runtime=None):
        runtime = runtime or request.getfixturevalue("rt")
        holder = runtime.authority.create_holder({**PERSON, "name": f"試験\u3000{next(_counter)}",
                                                  "address": ADDRESSES[municipality], "municipality": municipality})
        issued = runtime.authority.issue(holder.id, kinds, public_key=public_key_pem)
        return {i.certificate.kind: i.certificate for i in issued}
    return make
