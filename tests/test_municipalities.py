"""The official list of municipalities (jpki_mock/municipalities.py, jpki_mock/data/municipalities.tsv)."""

from __future__ import annotations

import time
from collections import Counter
from importlib import resources

import pytest

from jpki_mock import municipalities
from jpki_mock.errors import InvalidInput, NotFound

#: the mock's table before the full list: every code and romanised name is kept
FIRST_26 = {
    "01100": ("北海道", "札幌市", "Hokkaido", "Sapporo-shi"),
    "04100": ("宮城県", "仙台市", "Miyagi-ken", "Sendai-shi"),
    "11100": ("埼玉県", "さいたま市", "Saitama-ken", "Saitama-shi"),
    "12100": ("千葉県", "千葉市", "Chiba-ken", "Chiba-shi"),
    "13101": ("東京都", "千代田区", "Tokyo-to", "Chiyoda-ku"),
    "13102": ("東京都", "中央区", "Tokyo-to", "Chuo-ku"),
    "13103": ("東京都", "港区", "Tokyo-to", "Minato-ku"),
    "13104": ("東京都", "新宿区", "Tokyo-to", "Shinjuku-ku"),
    "13112": ("東京都", "世田谷区", "Tokyo-to", "Setagaya-ku"),
    "13113": ("東京都", "渋谷区", "Tokyo-to", "Shibuya-ku"),
    "13201": ("東京都", "八王子市", "Tokyo-to", "Hachioji-shi"),
    "14100": ("神奈川県", "横浜市", "Kanagawa-ken", "Yokohama-shi"),
    "14130": ("神奈川県", "川崎市", "Kanagawa-ken", "Kawasaki-shi"),
    "15100": ("新潟県", "新潟市", "Niigata-ken", "Niigata-shi"),
    "17201": ("石川県", "金沢市", "Ishikawa-ken", "Kanazawa-shi"),
    "22100": ("静岡県", "静岡市", "Shizuoka-ken", "Shizuoka-shi"),
    "23100": ("愛知県", "名古屋市", "Aichi-ken", "Nagoya-shi"),
    "26100": ("京都府", "京都市", "Kyoto-fu", "Kyoto-shi"),
    "27100": ("大阪府", "大阪市", "Osaka-fu", "Osaka-shi"),
    "28100": ("兵庫県", "神戸市", "Hyogo-ken", "Kobe-shi"),
    "33100": ("岡山県", "岡山市", "Okayama-ken", "Okayama-shi"),
    "34100": ("広島県", "広島市", "Hiroshima-ken", "Hiroshima-shi"),
    "37201": ("香川県", "高松市", "Kagawa-ken", "Takamatsu-shi"),
    "40130": ("福岡県", "福岡市", "Fukuoka-ken", "Fukuoka-shi"),
    "43100": ("熊本県", "熊本市", "Kumamoto-ken", "Kumamoto-shi"),
    "47201": ("沖縄県", "那覇市", "Okinawa-ken", "Naha-shi"),
}


def test_the_whole_official_list():
    table = municipalities.table()
    kinds = Counter(m.kind for m in table.values())
    # 792 cities (20 of them designated), 743 towns, 183 villages, 23 special wards: the 1,741
    # municipalities; plus the 171 wards of the designated cities (Hamamatsu's 3 since 2024).
    assert kinds == {"C": 772, "D": 20, "S": 23, "T": 743, "V": 183, "W": 171}
    assert len(municipalities.prefectures()) == 47
    assert [p.name_ja for p in municipalities.prefectures()] == list(municipalities.PREFECTURES_JA)
    assert set(municipalities.SAMPLE) <= set(table)
    for code, (pref, name, pref_en, name_en) in FIRST_26.items():
        m = table[code]
        assert (m.prefecture_ja, m.name_ja, m.prefecture_en, m.name_en) == (pref, name, pref_en, name_en)
    assert municipalities.MUNICIPALITIES is table  # the module's mapping of old, loaded on first use


def test_every_code_carries_the_right_check_digit():
    """The file's 6-digit codes are MIC's; the JIS X 0402 check digit recomputed must match each."""
    text = resources.files("jpki_mock").joinpath(municipalities.DATA_FILE).read_text(encoding="utf-8")
    codes = [line.split("\t")[0] for line in text.splitlines() if line and not line.startswith("#")]
    assert len(codes) == 47 + 1741 + 171 == len(set(codes))
    for code in codes:
        assert municipalities.check_digit(code[:5]) == code[5], code
    # Known published codes: 北海道 010006, 札幌市 011002, 東京都 130001, 文京区 131059, 那覇市 472018.
    assert [municipalities.check_digit(c) for c in ("01000", "01100", "13000", "13105", "47201")] == list("62198")


def test_bunkyo_by_address_by_code_and_by_six_digit_code():
    m = municipalities.for_address("東京都文京区本郷7-3-1")
    assert (m.code, m.lg_code, m.name_en, m.kind) == ("13105", "131059", "Bunkyo-ku", "S")
    assert municipalities.get("13105") is m and municipalities.get("131059") is m


def test_wrong_check_digit_names_the_field_and_both_right_forms():
    with pytest.raises(InvalidInput) as err:
        municipalities.get("131058", "municipality")
    assert err.value.field == "municipality" and "check digit of 13105 is 9" in str(err.value)
    assert err.value.allowed == ["13105", "131059"]
    assert all(municipalities.get(c).code == "13105" for c in err.value.allowed)


@pytest.mark.parametrize("code", ["13199", "99999", "00000", "47999"])
def test_unknown_code_suggests_real_codes(code):
    with pytest.raises(NotFound) as err:
        municipalities.get(code, "municipality")
    assert err.value.field == "municipality" and len(err.value.allowed) == municipalities.SUGGESTIONS
    assert all(municipalities.is_known(c) for c in err.value.allowed)
    if code[:2] == "13":
        assert all(c.startswith("13") for c in err.value.allowed)  # nearest within the same prefecture


@pytest.mark.parametrize("code", ["1310", "1310a", "\uff11\uff13\uff11\uff10\uff11", "", "1234567"])
def test_malformed_code(code):
    with pytest.raises(InvalidInput) as err:
        municipalities.get(code)
    assert err.value.field == "municipality" and "131059" in err.value.allowed


def test_a_prefecture_is_not_a_municipality():
    with pytest.raises(InvalidInput) as err:
        municipalities.get("13000")
    assert "a prefecture" in str(err.value) and all(c.startswith("131") for c in err.value.allowed)


@pytest.mark.parametrize("address, code", [
    ("北海道虻田郡洞爺湖町栄町58", "01584"),  # with the district (郡), as addresses usually are written
    ("北海道洞爺湖町栄町58", "01584"),  # and without it
    ("東京都三宅島三宅村阿古1", "13381"),  # an island village
    ("福岡県糟屋郡須惠町1", "40344"),  # Japan Post's spelling of 須恵町
    ("福岡県須恵町1", "40344"),
    ("高知県高岡郡梼原町1", "39405"),
    ("大阪府大阪市北区梅田1-1", "27100"),  # a designated city: filed under the city
    ("北海道札幌市中央区北1条西2", "01100"),
    ("東京都府中市1", "13206"),  # not 広島県府中市 (34208)
    ("広島県府中市1", "34208"),
    ("静岡県浜松市中央区1", "22130"),
])
def test_address_forms(address, code):
    assert municipalities.for_address(address).code == code


def test_a_ward_code_may_be_given_for_its_own_partition():
    ward = municipalities.get("27127")
    assert (ward.kind, ward.name_ja, ward.name_en) == ("W", "大阪市北区", "Osaka-shi Kita-ku")
    assert ward.holds("大阪府大阪市北区梅田1-1") and not ward.holds("大阪府大阪市中央区1")
    hamamatsu = [m.name_ja for m in municipalities.table().values() if m.name_ja.startswith("浜松市")]
    assert hamamatsu == ["浜松市", "浜松市中央区", "浜松市浜名区", "浜松市天竜区"]  # the wards since 1 January 2024


@pytest.mark.parametrize("address, suggested", [
    ("東京都文教区本郷1", "東京都文京区"),
    ("青森県青盛市長島1-1", "青森県青森市"),
    ("北海道札幌1", "北海道札幌市"),
])
def test_unknown_address_suggestions_work(address, suggested):
    with pytest.raises(InvalidInput) as err:
        municipalities.for_address(address)
    assert err.value.field == "address" and suggested in err.value.allowed
    for prefix in err.value.allowed:  # each suggestion starts an address the table accepts
        assert municipalities.for_address(prefix + "1-1").address_prefix == prefix


def test_loading_is_lazy_cached_and_fast():
    municipalities._table.cache_clear()
    started = time.perf_counter()
    municipalities.table()
    assert time.perf_counter() - started < 0.5  # about 20 ms; generous for a loaded CI machine
    assert municipalities.table() is municipalities.table()
    started = time.perf_counter()
    for _ in range(1000):
        municipalities.for_address("沖縄県八重山郡与那国町与那国1")
    assert time.perf_counter() - started < 0.5
