"""Distances between a caller and a campus, in one coordinate system.

Mini-programs report GCJ-02 (the offset system Chinese maps must use); some campus surveys are in
WGS-84 (GPS) or BD-09 (Baidu). Both points are brought to WGS-84 before measuring; the offset
between systems is several hundred metres, larger than many geofences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from resolvers.errors import InvalidInput

WGS84 = "WGS84"
GCJ02 = "GCJ02"
BD09 = "BD09"
SYSTEMS = (WGS84, GCJ02, BD09)

_A = 6378245.0  # Krasovsky 1940 semi-major axis, as used by GCJ-02
_EE = 0.00669342162296594323
_EARTH_RADIUS_M = 6371008.8
_X_PI = math.pi * 3000.0 / 180.0


@dataclass(frozen=True, slots=True)
class Point:
    latitude: float
    longitude: float
    system: str = GCJ02


def _outside_china(lat: float, lng: float) -> bool:
    return not (73.66 < lng < 135.05 and 3.86 < lat < 53.55)


def _delta(lat: float, lng: float) -> tuple[float, float]:
    x, y = lng - 105.0, lat - 35.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    dlat += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlat += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    dlng = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    dlng += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlng += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlng += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    rad = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(rad) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlng = (dlng * 180.0) / (_A / sqrt_magic * math.cos(rad) * math.pi)
    return dlat, dlng


def wgs84_to_gcj02(lat: float, lng: float) -> tuple[float, float]:
    if _outside_china(lat, lng):
        return lat, lng
    dlat, dlng = _delta(lat, lng)
    return lat + dlat, lng + dlng


def gcj02_to_wgs84(lat: float, lng: float) -> tuple[float, float]:
    """Inverse by iteration: converges to well under a centimetre in a few steps."""
    if _outside_china(lat, lng):
        return lat, lng
    wlat, wlng = lat, lng
    for _ in range(10):
        glat, glng = wgs84_to_gcj02(wlat, wlng)
        dlat, dlng = glat - lat, glng - lng
        wlat, wlng = wlat - dlat, wlng - dlng
        if abs(dlat) < 1e-9 and abs(dlng) < 1e-9:
            break
    return wlat, wlng


def bd09_to_gcj02(lat: float, lng: float) -> tuple[float, float]:
    x, y = lng - 0.0065, lat - 0.006
    z = math.sqrt(x * x + y * y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    return z * math.sin(theta), z * math.cos(theta)


def to_wgs84(point: Point) -> tuple[float, float]:
    if point.system == WGS84:
        return point.latitude, point.longitude
    if point.system == GCJ02:
        return gcj02_to_wgs84(point.latitude, point.longitude)
    if point.system == BD09:
        return gcj02_to_wgs84(*bd09_to_gcj02(point.latitude, point.longitude))
    raise InvalidInput("location.system", f"Unknown coordinate system; use one of {', '.join(SYSTEMS)}.")


def validate(point: Point) -> Point:
    if not (-90.0 <= point.latitude <= 90.0) or not (-180.0 <= point.longitude <= 180.0):
        raise InvalidInput("location", "Latitude must lie in [-90, 90] and longitude in [-180, 180].")
    if point.system not in SYSTEMS:
        raise InvalidInput("location.system", f"Unknown coordinate system; use one of {', '.join(SYSTEMS)}.")
    return point


def distance_m(a: Point, b: Point) -> float:
    """Great-circle distance (haversine) between two points given in any supported systems."""
    lat1, lng1 = map(math.radians, to_wgs84(a))
    lat2, lng2 = map(math.radians, to_wgs84(b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(math.sqrt(h))
