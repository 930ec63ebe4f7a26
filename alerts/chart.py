"""A small PNG line chart of a series (Pillow only), small enough to inline in every alert e-mail.

Mail clients show inline images but no scripts, so the chart is a picture: the series, its threshold
(red, dashed) or baseline (grey, dashed), and the last value marked.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime

from PIL import Image, ImageDraw, ImageFont

_INK, _LINE, _THRESH, _REF, _GRID = (40, 40, 40), (31, 90, 170), (200, 40, 40), (130, 130, 130), (225, 225, 225)


@dataclass(frozen=True)
class ChartData:
    title: str
    points: list[tuple[datetime, float]] = field(default_factory=list)
    threshold: float | None = None
    reference: float | None = None
    percent: bool = False


def _label(value: float, percent: bool) -> str:
    return f"{value:.0%}" if percent else f"{value:.2g}" if abs(value) < 10 else f"{value:.0f}"


def _dashed(draw: ImageDraw.ImageDraw, y: float, x0: int, x1: int, colour: tuple[int, int, int]) -> None:
    for x in range(x0, x1, 8):
        draw.line([(x, y), (min(x + 4, x1), y)], fill=colour, width=1)


def render_png(data: ChartData, width: int = 360, height: int = 120) -> bytes:
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(11)
    draw.text((6, 3), data.title[:70], fill=_INK, font=font)
    left, right, top, bottom = 40, width - 8, 20, height - 18
    draw.rectangle([left, top, right, bottom], outline=_GRID)
    if not data.points:
        draw.text((left + 8, (top + bottom) // 2 - 6), "no data in this span", fill=_REF, font=font)
        return _png(image)
    values = [v for _, v in data.points] + [v for v in (data.threshold, data.reference) if v is not None]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.08
    lo = lo - pad if lo < 0 else max(lo - pad, 0.0)  # a share or a count is never drawn below 0
    hi += pad
    t0, t1 = data.points[0][0].timestamp(), data.points[-1][0].timestamp()
    span = max(t1 - t0, 1.0)

    def xy(t: datetime, v: float) -> tuple[float, float]:
        return left + (t.timestamp() - t0) / span * (right - left), bottom - (v - lo) / (hi - lo) * (bottom - top)

    for level, colour in ((data.reference, _REF), (data.threshold, _THRESH)):
        if level is not None:
            _dashed(draw, xy(data.points[0][0], level)[1], left, right, colour)
    line = [xy(t, v) for t, v in data.points]
    if len(line) > 1:
        draw.line(line, fill=_LINE, width=2, joint="curve")
    x, y = line[-1]
    draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=_THRESH)
    draw.text((2, top - 2), _label(hi, data.percent), fill=_INK, font=font)
    draw.text((2, bottom - 10), _label(lo, data.percent), fill=_INK, font=font)
    draw.text((left, bottom + 3), data.points[0][0].strftime("%H:%M"), fill=_INK, font=font)
    end_label = data.points[-1][0].strftime("%H:%M UTC")
    draw.text((right - draw.textlength(end_label, font=font), bottom + 3), end_label, fill=_INK, font=font)
    return _png(image)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.quantize(colors=32).save(out, format="PNG", optimize=True)
    return out.getvalue()
