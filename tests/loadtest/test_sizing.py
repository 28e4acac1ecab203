"""The FY2020 arithmetic and the weekly curve (loadtest/sizing.py)."""

import pytest

from jpki_mock.loadtest import sizing


def test_average_rate_is_the_reports_volume_over_the_year():
    assert sizing.OCSP_PER_YEAR == 72_020_000
    assert pytest.approx(2.2837, abs=1e-4) == sizing.OCSP_RPS
    assert pytest.approx(170.5, abs=0.1) == sizing.AUTH_TO_SIGN
    assert sizing.PRIVATE_PARTIES == 112
    assert sizing.CRL_FETCHERS == 122


@pytest.mark.parametrize("curve", [sizing.OCSP_CURVE, sizing.OFFICE_CURVE, sizing.ocsp_curve(0.0),
                                   sizing.ocsp_curve(1.0)])
def test_curves_keep_the_yearly_average(curve):
    # Rate = average x factor, so the mean factor over the week must be 1: the curve moves load, never adds it.
    assert curve.mean == pytest.approx(1.0)
    steps = 168 * 20
    assert sum(curve.at(i / 20) for i in range(steps)) / steps == pytest.approx(1.0, rel=1e-3)


def test_curve_shape_matches_the_stated_assumptions():
    c = sizing.OCSP_CURVE
    monday, saturday, sunday = 0, 5 * 24, 6 * 24
    assert c.hours[monday + 10] > c.hours[monday + 3] * 10  # clinics' morning vs the night
    assert c.hours[monday + 21] > c.hours[monday + 13]  # e-government evening peak over early afternoon
    assert sum(c.hours[saturday:saturday + 24]) < sum(c.hours[monday:monday + 24])  # weekends lower
    assert sum(c.hours[sunday:sunday + 24]) < sum(c.hours[saturday:saturday + 24])
    assert sizing.peak_label(c) == "weekdays 10:00-11:00 JST"
    assert sizing.week_hour_label(c.peak_hour) == "Mon 10:00 JST"
    assert sizing.OFFICE_CURVE.hours[saturday + 10] == 0  # municipal offices closed


def test_bad_clinic_share_is_refused():
    with pytest.raises(ValueError, match="between 0 and 1"):
        sizing.ocsp_curve(1.5)


def test_summary_rows_show_the_arithmetic():
    rows = dict(sizing.summary())
    assert "71,600,000 + 420,000 = 72,020,000" in rows["OCSP lookups FY2020 (auth + sign)"]
    assert "2.284 req/s" in rows["average OCSP rate"]
