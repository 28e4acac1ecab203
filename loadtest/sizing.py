"""FY2020 volumes from J-LIS's annual report, the rates derived from them, and the curves.

Every figure the load profiles use comes from this module, so a change of year or of an
assumption is one edit here.  Tags as in docs/sources.md: **[C]** from the J-LIS report
(令和2年度事業報告書, FY2020 = April 2020 to March 2021), **[A]** our assumption (each says why).
docs/loadtest.md walks through the arithmetic; ``jpki-mock loadtest sizing`` prints it.

Times of day are Japan time (JST, UTC+9): the curve describes when people in Japan use
their cards.  A "week hour" is 0..167, Monday 00:00 JST = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

# ------------------------------------------------------------------ the report [C]
FY_DAYS = 365  # FY2020: 2020-04-01 .. 2021-03-31
SECONDS_PER_YEAR = FY_DAYS * 86_400

OCSP_AUTH_PER_YEAR = 71_600_000  # user-authentication certificate OCSP lookups
OCSP_SIGN_PER_YEAR = 420_000  # signature certificate OCSP lookups
CERTIFIED_PARTIES = 14  # minister-certified private verifiers (March 2021)
ENTRUSTED_PARTIES = 98  # private verifiers entrusted by a certified one
PRIVATE_PARTIES = CERTIFIED_PARTIES + ENTRUSTED_PARTIES  # 112
GOVERNMENT_BODIES = 10  # national agencies and local governments registered as verifiers
CARDS_ISSUED_PER_YEAR = 19_170_000  # My Number cards issued, each with a sign and an auth certificate
CARDS_CUMULATIVE = 42_010_000  # cards issued since 2016, at the end of FY2020
RENEWALS_PER_YEAR = 4_600_000  # certificate renewals (the old certificate is revoked as superseded)
EXPIRY_NOTICES_PER_YEAR = 6_940_000  # expiry notices sent to holders

# ------------------------------------------------------------------ assumptions [A]
#: Moves between municipalities in Japan per year (MIC resident-registry migration report,
#: about 5 million in 2020), times the share of residents holding a card at the end of FY2020
#: (42.01M cards / 126M residents).  Each move changes the address, one of the basic four
#: items, so the signature certificate is revoked as affiliationChanged [C: docs/sources.md section 4].
RESIDENTS = 126_000_000
MOVES_PER_YEAR = 5_000_000
CHANGE_REVOCATIONS_PER_YEAR = round(MOVES_PER_YEAR * CARDS_CUMULATIVE / RESIDENTS)  # ~1.67M
#: Lost cards reported to the 24 h hotline (certificateHold).  No public figure: 0.5 % of the
#: cards in circulation a year, the share the seeder uses for holds (ca/seed.py MIX).
LOSSES_PER_YEAR = round(0.005 * CARDS_CUMULATIVE)  # ~0.21M
#: Every registered verifier (private and governmental) fetches the CRL of each CA it is
#: registered for; J-LIS publishes daily, and a careful verifier polls hourly with a
#: conditional GET so that it picks up the new CRL within the hour (23 of 24 polls are 304).
CRL_FETCHERS = PRIVATE_PARTIES + GOVERNMENT_BODIES  # 122
CRL_KINDS_PER_FETCHER = 2
CRL_POLLS_PER_DAY = 24
#: Share of CRL polls that ask for one municipality's partition rather than the full CRL
#: (a local government checking its own residents' certificates).
CRL_PARTITION_SHARE = 0.2
#: Expiry notices are prepared from the admin API's "expiring" list, 100 per page.
EXPIRY_PAGE = 100
#: Share of OCSP lookups sent as GET (RFC 6960 appendix A.1); the rest are POST.  GET is the
#: cacheable form RFC 5019 / 9919 recommends for small requests.
OCSP_GET_SHARE = 0.7
#: Share of OCSP lookups carrying a nonce (RFC 9654); pyhanko-certvalidator always sends one.
OCSP_NONCE_SHARE = 0.1
#: Share of lookups whose CertID uses SHA-256 (RFC 9919 recommends it; SHA-1 is still the
#: default of openssl and most libraries).
OCSP_SHA256_SHARE = 0.3
#: What the looked-up certificates are: almost all good (a card in someone's hand), a few
#: revoked (a signature certificate after a move, a renewed card's old certificate), a few
#: on hold (a lost card that turns up), and a trickle of garbage: serials that were never
#: issued and CertIDs naming someone else's CA.
OCSP_MIX = {
    "good": 0.955,
    "revoked": 0.03,
    "hold": 0.005,
    "never_issued": 0.005,
    "foreign_issuer": 0.005,
}
#: Share of user-authentication lookups coming from clinics' online eligibility checks
#: (オンライン資格確認, pre-operation from March 2021, the driver of growth since) versus
#: e-government logins (マイナポータル, e-Tax, local services).
CLINIC_SHARE = 0.3
#: The busiest day of the year (e-Tax filing deadline in March, year-end adjustments) against
#: an average day, used by the ``peak`` profile by default.
PEAK_DAY_MULTIPLIER = 3.0


# ------------------------------------------------------------------ derived rates
def per_second(per_year: float) -> float:
    return per_year / SECONDS_PER_YEAR


OCSP_PER_YEAR = OCSP_AUTH_PER_YEAR + OCSP_SIGN_PER_YEAR
OCSP_AUTH_RPS = per_second(OCSP_AUTH_PER_YEAR)  # ~2.270
OCSP_SIGN_RPS = per_second(OCSP_SIGN_PER_YEAR)  # ~0.0133
OCSP_RPS = OCSP_AUTH_RPS + OCSP_SIGN_RPS  # ~2.284
AUTH_TO_SIGN = OCSP_AUTH_PER_YEAR / OCSP_SIGN_PER_YEAR  # ~170
CRL_RPS = CRL_FETCHERS * CRL_KINDS_PER_FETCHER * CRL_POLLS_PER_DAY / 86_400  # ~0.068
#: Operator actions per second through the admin API, by kind of action.
OPERATOR_RPS = {
    "new_card": per_second(CARDS_ISSUED_PER_YEAR),  # ~0.608: create the holder, issue both certificates
    "renewal": per_second(RENEWALS_PER_YEAR),  # ~0.146
    "change": per_second(CHANGE_REVOCATIONS_PER_YEAR),  # ~0.053
    "loss": per_second(LOSSES_PER_YEAR),  # ~0.0067
    "expiry_page": per_second(EXPIRY_NOTICES_PER_YEAR / EXPIRY_PAGE),  # ~0.0022
}


# ------------------------------------------------------------------ curves
# Hourly weights, JST hour 0..23, before normalisation.  [A], each line says why.
# Clinics: reception opens ~8:30, morning outpatient rush, lunch break, afternoon clinic,
# closed at night; Saturday morning clinics only; Sunday only emergency departments.
_CLINIC_WEEKDAY = [0, 0, 0, 0, 0, 0, 0, 0.05, 0.5, 1.0, 1.0, 0.9, 0.4, 0.3, 0.7, 0.8, 0.8, 0.6, 0.3, 0.1, 0.05, 0, 0, 0]
_CLINIC_SATURDAY = [0, 0, 0, 0, 0, 0, 0, 0.05, 0.5, 0.9, 0.9, 0.8, 0.3, 0.1, 0.05, 0.05, 0.05, 0.05, 0, 0, 0, 0, 0, 0]
_CLINIC_SUNDAY = [0.02] * 8 + [0.05] * 10 + [0.02] * 6
# E-government logins: people use their card after work (evening peak 20-22 h), a little
# at lunch time; weekends spread over the day, with the same evening peak.
_EGOV_WEEKDAY = [0.25, 0.12, 0.06, 0.04, 0.03, 0.04, 0.08, 0.15, 0.3, 0.45, 0.5, 0.5, 0.6, 0.5, 0.45, 0.45, 0.45,
                 0.5, 0.6, 0.75, 0.9, 1.0, 0.85, 0.5]
_EGOV_WEEKEND = [0.3, 0.15, 0.07, 0.04, 0.03, 0.03, 0.05, 0.1, 0.25, 0.45, 0.6, 0.65, 0.6, 0.6, 0.6, 0.6, 0.6,
                 0.6, 0.6, 0.65, 0.75, 0.8, 0.7, 0.45]
# Weekend e-government use is lower overall than on weekdays (offices closed, fewer
# procedures that day): Saturday 0.6, Sunday 0.5 of a weekday's weight.
_EGOV_DAY_FACTOR = [1, 1, 1, 1, 1, 0.6, 0.5]
# Municipal offices (card handover, renewals, moves) open weekdays 8:30-17:15.
_OFFICE_WEEKDAY = [0] * 8 + [0.6, 1, 1, 1, 0.5, 0.9, 1, 1, 0.8, 0.2] + [0] * 6
_OFFICE_WEEKEND = [0.0] * 24


def _week(weekday: list[float], saturday: list[float], sunday: list[float], day_factor=(1,) * 7) -> list[float]:
    days = [weekday] * 5 + [saturday, sunday]
    return [w * day_factor[d] for d, hours in enumerate(days) for w in hours]


def _normalised(hours: list[float]) -> list[float]:
    mean = sum(hours) / len(hours)
    return [h / mean for h in hours]


@dataclass(frozen=True)
class WeeklyCurve:
    """168 hourly factors with mean 1: rate at a week hour = average rate x factor.

    Between hour centres the factor is interpolated linearly, so a compressed day ramps
    smoothly instead of jumping every simulated hour."""

    name: str
    hours: tuple[float, ...]

    def __post_init__(self):
        if len(self.hours) != 168:
            raise ValueError(f"a weekly curve has 168 hourly factors, not {len(self.hours)}")

    def at(self, week_hour: float) -> float:
        x = (week_hour - 0.5) % 168
        i = int(x)
        frac = x - i
        return self.hours[i] * (1 - frac) + self.hours[(i + 1) % 168] * frac

    @property
    def peak(self) -> float:
        return max(self.hours)

    @property
    def peak_hour(self) -> int:
        return self.hours.index(self.peak)

    @property
    def mean(self) -> float:
        return sum(self.hours) / 168


def ocsp_curve(clinic_share: float = CLINIC_SHARE) -> WeeklyCurve:
    if not 0 <= clinic_share <= 1:
        raise ValueError(f"clinic_share {clinic_share} is not between 0 and 1")
    clinic = _normalised(_week(_CLINIC_WEEKDAY, _CLINIC_SATURDAY, _CLINIC_SUNDAY))
    egov = _normalised(_week(_EGOV_WEEKDAY, _EGOV_WEEKEND, _EGOV_WEEKEND, _EGOV_DAY_FACTOR))
    return WeeklyCurve("ocsp", tuple(clinic_share * c + (1 - clinic_share) * e
                                     for c, e in zip(clinic, egov, strict=True)))


def office_curve() -> WeeklyCurve:
    return WeeklyCurve("office", tuple(_normalised(_week(_OFFICE_WEEKDAY, _OFFICE_WEEKEND, _OFFICE_WEEKEND))))


FLAT = WeeklyCurve("flat", (1.0,) * 168)
OCSP_CURVE = ocsp_curve()
OFFICE_CURVE = office_curve()
OCSP_PEAK_HOUR_RPS = OCSP_RPS * OCSP_CURVE.peak
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def week_hour_label(week_hour: float) -> str:
    h = int(week_hour) % 168
    return f"{DAY_NAMES[h // 24]} {h % 24:02d}:00 JST"


def peak_label(curve: WeeklyCurve) -> str:
    """The busiest hour, as 'weekdays 10:00-11:00 JST' when every weekday has it."""
    hour = curve.peak_hour % 24
    days = [d for d in range(7) if curve.hours[d * 24 + hour] == curve.peak]
    when = "weekdays" if days == [0, 1, 2, 3, 4] else ", ".join(DAY_NAMES[d] for d in days)
    return f"{when} {hour:02d}:00-{hour + 1:02d}:00 JST"


def summary() -> list[tuple[str, str]]:
    """The arithmetic, as (label, value) rows, for ``jpki-mock loadtest sizing`` and the docs."""
    busiest = peak_label(OCSP_CURVE)
    return [
        ("OCSP lookups FY2020 (auth + sign)", f"{OCSP_AUTH_PER_YEAR:,} + {OCSP_SIGN_PER_YEAR:,} = {OCSP_PER_YEAR:,}"),
        ("seconds in FY2020", f"{FY_DAYS} x 86,400 = {SECONDS_PER_YEAR:,}"),
        ("average OCSP rate", f"{OCSP_RPS:.3f} req/s (auth {OCSP_AUTH_RPS:.3f}, sign {OCSP_SIGN_RPS:.4f})"),
        ("auth : sign", f"{AUTH_TO_SIGN:.0f} : 1"),
        ("busiest hour of the week", f"{busiest}, x{OCSP_CURVE.peak:.2f} the average = {OCSP_PEAK_HOUR_RPS:.2f} req/s"),
        ("busiest day of the year (peak profile)",
         f"x{PEAK_DAY_MULTIPLIER:g} -> {OCSP_PEAK_HOUR_RPS * PEAK_DAY_MULTIPLIER:.2f} req/s"),
        ("CRL fetchers", (f"{PRIVATE_PARTIES} private ({CERTIFIED_PARTIES} certified + {ENTRUSTED_PARTIES} entrusted) "
                          f"+ {GOVERNMENT_BODIES} government = {CRL_FETCHERS}")),
        ("CRL polls", (f"{CRL_FETCHERS} x {CRL_KINDS_PER_FETCHER} CAs x {CRL_POLLS_PER_DAY}/day = "
                       f"{CRL_FETCHERS * CRL_KINDS_PER_FETCHER * CRL_POLLS_PER_DAY:,}/day = {CRL_RPS:.3f} req/s")),
        ("new cards", f"{CARDS_ISSUED_PER_YEAR:,}/year = {OPERATOR_RPS['new_card']:.3f}/s (2 certificates each)"),
        ("renewals", f"{RENEWALS_PER_YEAR:,}/year = {OPERATOR_RPS['renewal']:.3f}/s"),
        ("address changes (sign revoked)", (f"{MOVES_PER_YEAR:,} x {CARDS_CUMULATIVE:,}/{RESIDENTS:,} = "
                                            f"{CHANGE_REVOCATIONS_PER_YEAR:,}/year = {OPERATOR_RPS['change']:.3f}/s")),
        ("losses (hold)", f"{LOSSES_PER_YEAR:,}/year = {OPERATOR_RPS['loss']:.4f}/s"),
        ("expiry notices", (f"{EXPIRY_NOTICES_PER_YEAR:,}/year / {EXPIRY_PAGE} per page = "
                            f"{OPERATOR_RPS['expiry_page']:.4f} pages/s")),
    ]
