"""What a chart shows: labels along the x axis and one or more series of values, as plain data.

The same :class:`Chart` is drawn as SVG (``to_svg``) and as PNG (``write_png``), so a report's picture
and its file agree.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ChartKind = Literal["bar", "line"]


class Series(BaseModel):
    """One named row of values, one per label; None where there is no value (a gap, not a zero)."""

    model_config = ConfigDict(frozen=True)

    name: str
    values: tuple[float | None, ...]


class Chart(BaseModel):
    """A bar chart (series side by side per label) or a line chart (one point per label and series).

    ``unit`` follows each value in tooltips and on the axis (``"$"`` goes before it); ``y_max`` fixes the
    top of the axis (1.0 for scores); ``flagged`` marks labels to draw in the alarm colour (failed cases).
    """

    model_config = ConfigDict(frozen=True)

    title: str
    labels: tuple[str, ...]
    series: tuple[Series, ...] = Field(min_length=1)
    kind: ChartKind = "bar"
    unit: str = ""
    y_max: float | None = Field(default=None, gt=0)
    flagged: tuple[bool, ...] | None = None
    note: str = ""  # a line under the title: what was left out, how it was measured

    @model_validator(mode="after")
    def _one_value_per_label(self) -> Chart:
        for series in self.series:
            if len(series.values) != len(self.labels):
                raise ValueError(
                    f"series {series.name!r} has {len(series.values)} values for {len(self.labels)} labels"
                )
        if self.flagged is not None and len(self.flagged) != len(self.labels):
            raise ValueError(f"flagged has {len(self.flagged)} entries for {len(self.labels)} labels")
        return self

    @property
    def top(self) -> float:
        """The value at the top of the y axis: ``y_max``, or a round number at or above the largest value."""
        if self.y_max is not None:
            return self.y_max
        largest = max((v for s in self.series for v in s.values if v is not None), default=0.0)
        return nice_ceiling(largest)


def nice_ceiling(value: float) -> float:
    """1, 2, 2.5 or 5 times a power of ten, at or above ``value`` (1 for nothing or less)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** _floor_log10(value)
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10.0 * power


def _floor_log10(value: float) -> int:
    exponent = 0
    while value >= 10:
        value /= 10
        exponent += 1
    while value < 1:
        value *= 10
        exponent -= 1
    return exponent


def format_value(value: float, unit: str = "") -> str:
    """A value as people read it: ``1,234``, ``0.25``, ``$0.0012``, ``85 ms``."""
    if unit == "$":
        return f"${value:,.6f}".rstrip("0").rstrip(".") if value else "$0"
    if value == int(value) and abs(value) < 1e15:
        text = f"{int(value):,}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}".rstrip("0").rstrip(".")
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}" if unit else text


def format_tick(value: float, unit: str = "") -> str:
    """An axis tick, short: ``0``, ``2.5``, ``750``, ``12k``, ``1.5M``, ``$0.002`` (the axis names the unit once)."""
    prefix = "$" if unit == "$" else ""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{prefix}{value / size:.3g}{suffix}"
    return f"{prefix}{value:.3g}"
