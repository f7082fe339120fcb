LINEAR = {
    "length": {"m": 1.0, "km": 1000.0, "cm": 0.01, "mm": 0.001, "mi": 1609.344, "yd": 0.9144,
               "ft": 0.3048, "in": 0.0254, "nmi": 1852.0},
    "mass": {"kg": 1.0, "g": 0.001, "mg": 0.000001, "t": 1000.0, "lb": 0.45359237,
             "oz": 0.028349523125},
    "data": {"B": 1.0, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KiB": 1024.0,
             "MiB": 1024.0**2, "GiB": 1024.0**3, "TiB": 1024.0**4},
}
TEMPERATURE = {"C", "F", "K"}


def to_kelvin(value, unit):
    kelvin = {"K": value, "C": value + 273.15, "F": (value - 32) * 5 / 9 + 273.15}[unit]
    if kelvin < 0:
        raise ValueError(f"{value} {unit} is below absolute zero")
    return kelvin


def from_kelvin(kelvin, unit):
    return {"K": kelvin, "C": kelvin - 273.15, "F": (kelvin - 273.15) * 9 / 5 + 32}[unit]


def kind_of(unit):
    if unit in TEMPERATURE:
        return "temperature"
    for kind, units in LINEAR.items():
        if unit in units:
            return kind
    raise ValueError(f"unknown unit {unit!r}")


def convert_units(value, from_unit, to_unit):
    """Convert through a base unit per kind; temperatures go through kelvin."""
    kind = kind_of(from_unit)
    if kind_of(to_unit) != kind:
        raise ValueError(f"cannot convert {from_unit} ({kind}) to {to_unit} ({kind_of(to_unit)})")
    if kind == "temperature":
        result = from_kelvin(to_kelvin(value, from_unit), to_unit)
    else:
        result = value * LINEAR[kind][from_unit] / LINEAR[kind][to_unit]
    return round(result, 10)
