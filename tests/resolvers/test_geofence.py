"""Distances are measured in one coordinate system, whatever system each point was given in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolvers.errors import InvalidInput
from resolvers.geofence import BD09, GCJ02, WGS84, Point, distance_m, gcj02_to_wgs84, validate, wgs84_to_gcj02


def test_gcj02_is_offset_by_hundreds_of_metres_from_gps_in_china() -> None:
    gps = Point(23.12911, 113.26436, WGS84)
    same_numbers_as_gcj = Point(23.12911, 113.26436, GCJ02)
    assert 200 < distance_m(gps, same_numbers_as_gcj) < 800


@given(st.floats(18.0, 53.0), st.floats(74.0, 134.0))
def test_converting_to_gcj02_and_back_returns_to_the_same_place(lat: float, lng: float) -> None:
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lat, lng))
    assert distance_m(Point(lat, lng, WGS84), Point(*back, WGS84)) < 0.05


def test_one_place_in_three_systems_is_one_place() -> None:
    lat, lng = 23.12911, 113.26436  # WGS-84
    g_lat, g_lng = wgs84_to_gcj02(lat, lng)
    # BD-09 from GCJ-02 (the public forward formula), to check our inverse lands on the same spot.
    import math

    z = math.sqrt(g_lng**2 + g_lat**2) + 0.00002 * math.sin(g_lat * math.pi * 3000 / 180)
    theta = math.atan2(g_lat, g_lng) + 0.000003 * math.cos(g_lng * math.pi * 3000 / 180)
    b_lat, b_lng = z * math.sin(theta) + 0.006, z * math.cos(theta) + 0.0065
    origin = Point(lat, lng, WGS84)
    assert distance_m(origin, Point(g_lat, g_lng, GCJ02)) < 0.05
    assert distance_m(origin, Point(b_lat, b_lng, BD09)) < 1.0


def test_outside_china_there_is_no_offset() -> None:
    assert wgs84_to_gcj02(48.8566, 2.3522) == (48.8566, 2.3522)


def test_a_kilometre_north_is_about_a_kilometre() -> None:
    a = Point(23.0, 113.0, WGS84)
    b = Point(23.0 + 1 / 111.195, 113.0, WGS84)
    assert distance_m(a, b) == pytest.approx(1000, rel=0.002)


@pytest.mark.parametrize("point", [Point(91, 0, GCJ02), Point(0, 181, GCJ02), Point(23, 113, "MARS")])
def test_impossible_locations_are_refused(point: Point) -> None:
    with pytest.raises(InvalidInput):
        validate(point)
