"""Every Japanese municipality: each one is a CRL partition (docs/sources.md section 3).

The table is the official list (総務省 全国地方公共団体コード joined with Japan Post's KEN_ALL,
vendored as ``jpki_mock/data/municipalities.tsv`` with its sources, date and licence in its
header; ``tools/municipalities.py`` regenerates it): the 47 prefectures, the 1,741 municipalities
(cities, towns, villages, Tokyo's 23 special wards, the 20 designated cities) and the wards of
the designated cities.  It is read on first use and kept (about 2 ms).

Codes are 5 digits, as J-LIS and the resident registry write them; the 6-digit form with the
JIS X 0402 check digit is accepted wherever a code is.  Romanisation follows the ``Tokyo-to`` /
``Chiyoda-ku`` style seen in real subject DNs [S].

A holder lives in a municipality, never in a prefecture.  An address names its municipality
(``東京都文京区…``, also with the district or island of a town or village: ``北海道虻田郡洞爺湖町…``);
in a designated city it is filed under the city, and the ward's code (e.g. 27127 for 大阪市北区)
may be given explicitly for a ward's own partition (our choice: docs/sources.md section 3).
"""

from __future__ import annotations

import bisect
import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from jpki_mock.errors import InvalidInput, NotFound

#: the kinds of entry in the table (the ``kind`` column of the data file)
PREFECTURE, DESIGNATED_CITY, WARD, SPECIAL_WARD, CITY, TOWN, VILLAGE = "P", "D", "W", "S", "C", "T", "V"
KIND_NAMES = {PREFECTURE: "prefecture", DESIGNATED_CITY: "designated city", WARD: "ward of a designated city",
              SPECIAL_WARD: "special ward", CITY: "city", TOWN: "town", VILLAGE: "village"}
DATA_FILE = "data/municipalities.tsv"
SUGGESTIONS = 5


@dataclass(frozen=True)
class Municipality:
    code: str
    prefecture_ja: str
    name_ja: str
    prefecture_en: str
    name_en: str
    kind: str = CITY
    #: what addresses may write before a town's or village's name: its district (郡) or island
    district_ja: str = ""
    #: another form of a character in the name, as Japan Post writes it (須惠町 for 須恵町)
    other_spelling: str = ""

    @property
    def address_prefix(self) -> str:
        return self.prefecture_ja + self.name_ja

    @property
    def lg_code(self) -> str:
        """The 6-digit 全国地方公共団体コード: the code and its check digit."""
        return self.code + check_digit(self.code)

    @property
    def address_prefixes(self) -> tuple[str, ...]:
        """Every way an address in this municipality may begin."""
        names = [self.name_ja] + ([self.other_spelling] if self.other_spelling else [])
        heads = [""] + ([self.district_ja] if self.district_ja else [])
        return tuple(self.prefecture_ja + head + name for name in names for head in heads)

    def holds(self, address: str) -> bool:
        return address.startswith(self.address_prefixes)

    @property
    def label(self) -> str:
        return f"{self.code} {self.address_prefix}"


PREFECTURES_JA = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県", "群馬県",
    "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県",
    "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県",
    "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県", "香川県", "愛媛県", "高知県", "福岡県",
    "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
)


#: a representative sample (every region, special wards, designated cities, smaller cities) that
#: seeded stores spread their holders over, so each seeded partition holds a sizeable share
SAMPLE = ("01100", "04100", "11100", "12100", "13101", "13102", "13103", "13104", "13112", "13113", "13201",
          "14100", "14130", "15100", "17201", "22100", "23100", "26100", "27100", "28100", "33100", "34100",
          "37201", "40130", "43100", "47201")


def check_digit(code: str) -> str:
    """JIS X 0402 check digit of a 5-digit code: the digits weighted 6, 5, 4, 3, 2, summed; the last
    digit of 11 minus that sum modulo 11 (総務省, 全国地方公共団体コード; 13105 -> 9)."""
    remainder = sum(int(d) * w for d, w in zip(code, (6, 5, 4, 3, 2), strict=True)) % 11
    return str((11 - remainder) % 10)


@dataclass(frozen=True)
class _Table:
    entries: dict[str, Municipality]  # every entry, prefectures too, by 5-digit code
    municipalities: dict[str, Municipality]  # the ones a holder can live in (no prefectures)
    codes: list[str]  # sorted municipality codes, for nearest-code suggestions
    #: prefecture -> (address prefix, municipality), longest prefix first; wards left out (see module doc)
    prefixes: dict[str, list[tuple[str, Municipality]]]


@functools.cache
def _table() -> _Table:
    text = resources.files("jpki_mock").joinpath(DATA_FILE).read_text(encoding="utf-8")
    entries: dict[str, Municipality] = {}
    prefectures: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        code6, kind, name, name_en, district, other = line.split("\t")
        code = code6[:5]
        if kind == PREFECTURE:
            prefectures[code[:2]] = (name, name_en)
        pref_ja, pref_en = prefectures[code[:2]]  # the file lists each prefecture before its municipalities
        entries[code] = Municipality(code, pref_ja, name, pref_en, name_en, kind, district, other)
    municipalities = {c: m for c, m in entries.items() if m.kind != PREFECTURE}
    prefixes: dict[str, list[tuple[str, Municipality]]] = {}
    for m in municipalities.values():
        if m.kind != WARD:
            prefixes.setdefault(m.prefecture_ja, []).extend((p, m) for p in m.address_prefixes)
    for items in prefixes.values():
        items.sort(key=lambda item: -len(item[0]))
    return _Table(entries, municipalities, sorted(municipalities), prefixes)


def table() -> Mapping[str, Municipality]:
    """Every municipality (not the prefectures) by 5-digit code."""
    return _table().municipalities


def prefectures() -> list[Municipality]:
    return [m for m in _table().entries.values() if m.kind == PREFECTURE]


def __getattr__(name: str) -> Mapping[str, Municipality]:
    # ``municipalities.MUNICIPALITIES``, the module's mapping before the full list, loaded on first use.
    if name == "MUNICIPALITIES":
        return table()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_known(code: str) -> bool:
    """Whether ``code`` is a municipality's 5-digit code (a CRL partition name)."""
    return code in _table().municipalities


def normalise_code(code: str, field: str = "municipality") -> str:
    """The 5-digit code of a 5-digit code or a 6-digit one whose check digit is right."""
    if not (isinstance(code, str) and code.isascii() and code.isdigit() and len(code) in (5, 6)):
        raise InvalidInput(f"{code!r} is not a municipality code", field=field,
                           allowed="5 digits (13105), or 6 with the JIS X 0402 check digit (131059)")
    if len(code) == 6:
        expected = check_digit(code[:5])
        if code[5] != expected:
            raise InvalidInput(
                f"{code!r}: the check digit of {code[:5]} is {expected}, not {code[5]}", field=field,
                allowed=[code[:5], code[:5] + expected],
            )
    return code[:5]


def nearest(code: str, count: int = SUGGESTIONS) -> list[Municipality]:
    """Real municipalities whose codes are nearest ``code``, in its prefecture when it has one."""
    t = _table()
    pool = [c for c in t.codes if c[:2] == code[:2]] or t.codes
    at = bisect.bisect_left(pool, code)
    window = pool[max(0, at - count): at + count]
    window.sort(key=lambda c: (abs(int(c) - int(code)), c))
    return [t.municipalities[c] for c in sorted(window[:count])]


def get(code: str, field: str = "municipality") -> Municipality:
    """The municipality with this code; the error names ``field`` and suggests real codes."""
    t = _table()
    short = normalise_code(code, field)
    found = t.municipalities.get(short)
    if found is not None:
        return found
    entry = t.entries.get(short)
    suggestions = nearest(short)
    if entry is not None:  # a prefecture's code
        raise InvalidInput(
            f"{code!r} is the code of {entry.name_ja}, a prefecture; a holder lives in a municipality, "
            f"e.g. {', '.join(m.label for m in suggestions)}", field=field, allowed=[m.code for m in suggestions],
        )
    raise NotFound(
        f"unknown municipality code {code!r}; the nearest real ones: {', '.join(m.label for m in suggestions)}",
        field=field, allowed=[m.code for m in suggestions],
    )


def for_address(address: str) -> Municipality:
    """The municipality the address starts with (its longest matching prefix)."""
    t = _table()
    prefecture = next((p for p in PREFECTURES_JA if address.startswith(p)), None)
    if prefecture is None:
        raise InvalidInput("must start with the prefecture (no postcode), e.g. 東京都千代田区…", field="address",
                           allowed=list(PREFECTURES_JA))
    for prefix, m in t.prefixes[prefecture]:
        if address.startswith(prefix):
            return m
    rest = address[len(prefecture):]
    candidates = {p[len(prefecture):]: m for p, m in t.prefixes[prefecture]}
    close = difflib.get_close_matches(rest[:max(len(k) for k in candidates)], list(candidates), SUGGESTIONS, 0.3)
    # Also what shares the address's first characters after the prefecture (a name cut short).
    close += [k for k in candidates if rest[:2] and k.startswith(rest[:2]) and k not in close]
    suggestions = [prefecture + k for k in close[:SUGGESTIONS]]
    shown = ", ".join(f"{s} ({candidates[s[len(prefecture):]].code})" for s in suggestions)
    raise InvalidInput(
        f"no municipality of {prefecture} starts the address after the prefecture"
        + (f"; did you mean {shown}?" if shown else "")
        + (" " if shown else ". ") + "Write the municipality as the resident register does, or give its code as "
        "'municipality'",
        field="address", allowed=suggestions or [m.address_prefix for m in nearest(_prefecture_code(prefecture))],
    )


def _prefecture_code(prefecture_ja: str) -> str:
    return f"{PREFECTURES_JA.index(prefecture_ja) + 1:02d}000"
