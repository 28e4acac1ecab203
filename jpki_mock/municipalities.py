"""Municipalities the mock knows: each one is a CRL partition (docs/sources.md section 3).

Codes are the real 5-digit local government codes (全国地方公共団体コード without the
check digit); romanisation follows the ``Tokyo-to`` / ``Chiyoda-ku`` style seen in real
subject DNs [S].  A small, representative set: every region, wards, designated cities.
"""

from __future__ import annotations

from dataclasses import dataclass

from jpki_mock.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class Municipality:
    code: str
    prefecture_ja: str
    name_ja: str
    prefecture_en: str
    name_en: str

    @property
    def address_prefix(self) -> str:
        return self.prefecture_ja + self.name_ja


_TABLE = [
    ("01100", "北海道", "札幌市", "Hokkaido", "Sapporo-shi"),
    ("04100", "宮城県", "仙台市", "Miyagi-ken", "Sendai-shi"),
    ("11100", "埼玉県", "さいたま市", "Saitama-ken", "Saitama-shi"),
    ("12100", "千葉県", "千葉市", "Chiba-ken", "Chiba-shi"),
    ("13101", "東京都", "千代田区", "Tokyo-to", "Chiyoda-ku"),
    ("13102", "東京都", "中央区", "Tokyo-to", "Chuo-ku"),
    ("13103", "東京都", "港区", "Tokyo-to", "Minato-ku"),
    ("13104", "東京都", "新宿区", "Tokyo-to", "Shinjuku-ku"),
    ("13112", "東京都", "世田谷区", "Tokyo-to", "Setagaya-ku"),
    ("13113", "東京都", "渋谷区", "Tokyo-to", "Shibuya-ku"),
    ("13201", "東京都", "八王子市", "Tokyo-to", "Hachioji-shi"),
    ("14100", "神奈川県", "横浜市", "Kanagawa-ken", "Yokohama-shi"),
    ("14130", "神奈川県", "川崎市", "Kanagawa-ken", "Kawasaki-shi"),
    ("15100", "新潟県", "新潟市", "Niigata-ken", "Niigata-shi"),
    ("17201", "石川県", "金沢市", "Ishikawa-ken", "Kanazawa-shi"),
    ("22100", "静岡県", "静岡市", "Shizuoka-ken", "Shizuoka-shi"),
    ("23100", "愛知県", "名古屋市", "Aichi-ken", "Nagoya-shi"),
    ("26100", "京都府", "京都市", "Kyoto-fu", "Kyoto-shi"),
    ("27100", "大阪府", "大阪市", "Osaka-fu", "Osaka-shi"),
    ("28100", "兵庫県", "神戸市", "Hyogo-ken", "Kobe-shi"),
    ("33100", "岡山県", "岡山市", "Okayama-ken", "Okayama-shi"),
    ("34100", "広島県", "広島市", "Hiroshima-ken", "Hiroshima-shi"),
    ("37201", "香川県", "高松市", "Kagawa-ken", "Takamatsu-shi"),
    ("40130", "福岡県", "福岡市", "Fukuoka-ken", "Fukuoka-shi"),
    ("43100", "熊本県", "熊本市", "Kumamoto-ken", "Kumamoto-shi"),
    ("47201", "沖縄県", "那覇市", "Okinawa-ken", "Naha-shi"),
]

MUNICIPALITIES: dict[str, Municipality] = {row[0]: Municipality(*row) for row in _TABLE}

PREFECTURES_JA = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県", "群馬県",
    "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県",
    "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県",
    "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県", "香川県", "愛媛県", "高知県", "福岡県",
    "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
)


def get(code: str, field: str = "municipality") -> Municipality:
    try:
        return MUNICIPALITIES[code]
    except KeyError:
        raise NotFound(
            f"unknown municipality code {code!r}", field=field, allowed=sorted(MUNICIPALITIES)
        ) from None


def for_address(address: str) -> Municipality:
    """The municipality whose prefecture + name starts the address (longest match)."""
    best = None
    for m in MUNICIPALITIES.values():
        if address.startswith(m.address_prefix) and (best is None or len(m.address_prefix) > len(best.address_prefix)):
            best = m
    if best is None:
        raise InvalidInput(
            "the address does not start with a municipality the mock knows; give 'municipality' explicitly "
            "or start the address with one of them (e.g. 東京都千代田区…)",
            field="address",
            allowed=[m.address_prefix for m in MUNICIPALITIES.values()],
        )
    return best
