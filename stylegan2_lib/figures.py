"""Figures drawn with Pillow alone (the core install has no matplotlib): heat maps of scores.

    img = heatmap_panels([panel_a, panel_b], row_labels, col_labels)    # uint8 [H, W, 3]

A panel is a Panel(title, values [rows, cols], fmt, higher_is_better); marks draw on every panel: a box around
`boxed` cells, a dot on `dotted` ones. mark_cell(img, ...) frames one cell of a drawn figure (the explorer's
current blend) without drawing it again.
"""

import dataclasses
import math

import numpy as np
from PIL import Image, ImageDraw

#----------------------------------------------------------------------------
# A perceptually ordered colour ramp (dark blue -> teal -> yellow, the viridis family), good end = yellow.

_RAMP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)

def ramp(t):
    """RGB of t in [0, 1] on the ramp (NaN: grey)."""
    if t is None or not math.isfinite(t):
        return (200, 200, 200)
    t = min(max(t, 0.0), 1.0) * (len(_RAMP) - 1)
    i = min(int(t), len(_RAMP) - 2)
    c = _RAMP[i] + (_RAMP[i + 1] - _RAMP[i]) * (t - i)
    return tuple(int(round(v)) for v in c)

@dataclasses.dataclass
class Panel:
    title:            str
    values:           np.ndarray          # [rows, cols], NaN = not computed
    fmt:              str = '{:.3g}'
    higher_is_better: bool = True

    def shades(self):
        """[rows, cols] in [0, 1], 1 = best, scaled between the panel's finite extremes."""
        v = np.asarray(self.values, dtype=np.float64)
        finite = v[np.isfinite(v)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        t = (v - lo) / (hi - lo) if hi > lo else np.where(np.isfinite(v), 1.0, np.nan)
        return t if self.higher_is_better else 1 - t

#----------------------------------------------------------------------------

def _text_colour(rgb):
    return (0, 0, 0) if sum(rgb) > 380 else (255, 255, 255)

#----------------------------------------------------------------------------
# Where a figure's cells are: one definition for drawing them and for finding one again in a drawn figure.

@dataclasses.dataclass(frozen=True)
class _Layout:
    label_w: int                          # the row labels' margin, left of each panel's cells
    top:     int                          # y of the first row
    panel_w: int
    cell:    tuple                        # (width, height)

    def box(self, p, i, j):
        """[x0, y0, x1, y1] (inclusive) of cell (i, j) in panel p."""
        cw, ch = self.cell
        x, y = p * self.panel_w + self.label_w + j * cw, self.top + i * ch
        return [x, y, x + cw - 1, y + ch - 1]

def _layout(label_w, n_cols, cell, title):
    return _Layout(label_w, 16 + 14 + (14 if title else 0), label_w + cell[0] * n_cols + 12, tuple(cell))

def heatmap_panels(panels, row_labels, col_labels, boxed=(), dotted=(), cell=(58, 26), title=None, footer=None):
    """The panels side by side, cells coloured by each panel's shades and labelled with its values."""
    cw, ch = cell
    grid = _layout(8 + 6 * max(len(str(r)) for r in row_labels), len(col_labels), cell, title)
    label_w, top, panel_w = grid.label_w, grid.top, grid.panel_w
    height = top + ch * len(row_labels) + 8 + (14 * len(footer) if footer else 0)
    canvas = Image.new('RGB', (panel_w * len(panels), height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((4, 2), title, fill=(0, 0, 0))
    for p, panel in enumerate(panels):
        x0, shades = p * panel_w + label_w, panel.shades()
        draw.text((x0, top - 30), panel.title, fill=(0, 0, 0))
        for j, name in enumerate(col_labels):
            draw.text((x0 + j * cw + 3, top - 14), str(name), fill=(0, 0, 0))
        for i, name in enumerate(row_labels):
            y = top + i * ch
            draw.text((p * panel_w + 2, y + ch // 2 - 5), str(name), fill=(0, 0, 0))
            for j in range(len(col_labels)):
                box, v = grid.box(p, i, j), panel.values[i][j]
                x, rgb = box[0], ramp(shades[i][j])
                draw.rectangle(box, fill=rgb)
                text = panel.fmt.format(v) if v is not None and math.isfinite(v) else '-'
                draw.text((x + 3, y + ch // 2 - 5), text, fill=_text_colour(rgb))
                if (i, j) in boxed:
                    draw.rectangle(box, outline=(255, 0, 0), width=3)
                if (i, j) in dotted:
                    draw.ellipse([x + cw - 9, y + 3, x + cw - 4, y + 8], fill=(255, 255, 255), outline=(0, 0, 0))
    for k, line in enumerate(footer or ()):
        draw.text((4, top + ch * len(row_labels) + 4 + 14 * k), line, fill=(0, 0, 0))
    return np.asarray(canvas)

def mark_cell(img, cell_ij, n_panels, n_cols, cell=(58, 26), title=False):
    """A copy of `img`, a figure heatmap_panels drew with these n_panels, n_cols, cell and title, with cell (i, j)
    framed in every panel: a black line 3 pixels inside the cell's edge and a white one inside it, seen on any
    shade and inside the recommendation's box. The rows' margin is read from the figure's width."""
    panel_w = img.shape[1] // n_panels
    grid = _layout(panel_w - cell[0] * n_cols - 12, n_cols, cell, title)
    canvas = Image.fromarray(img)
    draw = ImageDraw.Draw(canvas)
    for p in range(n_panels):
        x0, y0, x1, y1 = grid.box(p, *cell_ij)
        draw.rectangle([x0 + 3, y0 + 3, x1 - 3, y1 - 3], outline=(0, 0, 0))
        draw.rectangle([x0 + 4, y0 + 4, x1 - 4, y1 - 4], outline=(255, 255, 255))
    return np.asarray(canvas)
