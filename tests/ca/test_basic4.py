"""Basic-four validation: every bad input gets a specific error naming the field."""

from datetime import date

import pytest

from jpki_mock import municipalities
from jpki_mock.ca import basic4
from jpki_mock.errors import InvalidInput, NotFound
from tests.support import HOLDER


def test_valid_holder_encodes_like_jpki():
    info = basic4.validate({**HOLDER, "date_of_birth": "1980-12-31"})
    assert info.date_of_birth == "319801231"
    assert info.municipality == "13101"
    assert info.name_flags == "00000" and len(info.address_flags) == len(HOLDER["address"])


@pytest.mark.parametrize("day, encoded", [
    (date(1912, 7, 29), "119120729"),  # last day of Meiji
    (date(1912, 7, 30), "219120730"),  # first day of Taisho
    (date(1989, 1, 7), "319890107"),   # last day of Showa
    (date(1989, 1, 8), "419890108"),
    (date(2019, 4, 30), "420190430"),
    (date(2019, 5, 1), "520190501"),   # Reiwa
])
def test_era_boundaries(day, encoded):
    assert basic4.encode_dob(day) == encoded
    assert basic4.decode_dob(encoded) == day


BAD = [
    ({"date_of_birth": "719801231"}, "date_of_birth", "unknown era"),
    ({"date_of_birth": "319800231"}, "date_of_birth", "not a real calendar date"),
    ({"date_of_birth": "419801231"}, "date_of_birth", "falls in the Showa era"),
    ({"date_of_birth": "1980-02-30"}, "date_of_birth", "not a real ISO date"),
    ({"date_of_birth": "31980123"}, "date_of_birth", "era digit followed by YYYYMMDD"),
    ({"gender": "4"}, "gender", "not a JPKI gender code"),
    ({"gender": "male"}, "gender", "not a JPKI gender code"),
    ({"address": "東京都千代田区" + "あ" * 194}, "address", "201 characters"),
    ({"address": "100-0001 東京都千代田区千代田1-1"}, "address", "must start with the prefecture"),
    ({"address": "東京都港区芝公園4-2-8", "municipality": "13101"}, "address", "not in 東京都千代田区"),
    ({"name": "山田 太郎"}, "name", "full-width space"),
    ({"name": "山田太郎"}, "name", "full-width space"),
    ({"name": "\u3000太郎"}, "name", "full-width space"),
    ({"name_flags": "0000"}, "name_flags", "has 4 flags but name has 5 characters"),
    ({"name_flags": "00x00"}, "name_flags", "0 and 1"),
    ({"address_flags": "1"}, "address_flags", "has 1 flags"),
    ({"name": None}, "name", "is required"),
    ({"name": 5}, "name", "must be a string"),
    ({"address": "東京都千代田区\x00"}, "address", "control characters"),
]


@pytest.mark.parametrize("change, field, message", BAD, ids=[f"{b[1]}:{b[2][:20]}" for b in BAD])
def test_bad_basic_four(change, field, message):
    data = {**HOLDER, **change}
    with pytest.raises(InvalidInput) as err:
        basic4.validate(data)
    assert err.value.field == field
    assert message in str(err.value)


def test_unknown_municipality_is_not_found_and_its_suggestions_work():
    for code in ("99999", "13199", "13000"):
        with pytest.raises((NotFound, InvalidInput)) as err:
            basic4.validate({**HOLDER, "municipality": code})
        assert err.value.field == "municipality" and err.value.allowed
        for suggestion in err.value.allowed:  # each suggestion is a real code the validator accepts
            muni = municipalities.get(suggestion)
            assert basic4.validate({**HOLDER, "address": muni.address_prefix + "1-1",
                                    "municipality": suggestion}).municipality == suggestion


def test_address_in_a_misspelt_municipality_suggests_the_real_one():
    with pytest.raises(InvalidInput) as err:
        basic4.validate({**HOLDER, "address": "青森県青盛市長島1-1"})
    assert err.value.field == "address" and "青森県青森市 (02201)" in str(err.value)
    assert err.value.allowed[0] == "青森県青森市"
    fixed = basic4.validate({**HOLDER, "address": err.value.allowed[0] + "長島1-1"})
    assert fixed.municipality == "02201"


@pytest.mark.parametrize("birth, day, n, expected", [
    (date(1980, 12, 31), date(2026, 11, 26), 5, date(2030, 12, 31)),
    (date(1980, 3, 15), date(2026, 11, 26), 5, date(2031, 3, 15)),
    (date(1980, 11, 26), date(2026, 11, 26), 5, date(2031, 11, 26)),  # a birthday on the day itself is not "after"
    (date(2000, 2, 29), date(2026, 11, 26), 5, date(2031, 2, 28)),
    (date(2000, 2, 29), date(2026, 11, 26), 6, date(2032, 2, 29)),
])
def test_nth_birthday_after(birth, day, n, expected):
    assert basic4.nth_birthday_after(birth, day, n) == expected
