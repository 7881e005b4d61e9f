"""Make docs/data-drawn-faces.png: the drawn-face alignment on the two drawings the library ships.

    python tools/make_data_figure.py        # a second; needs the anime extra

Each row: the drawing with what the detector found (face box in grey, eye centres red / blue, mouth green,
chin yellow) and the alignment's square (white, its top edge doubled), then the aligned 256x256 crop with the
recipe's targets (the eyes a quarter of the width apart, on one line a little above the centre).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from stylegan2_lib import align, anime_detect  # noqa: E402
from stylegan2_lib.assets import DRAWN_FACES  # noqa: E402

SIZE = 256


def annotated(img, face, quad):
    """The drawing scaled to SIZE high, with the detection and the quad drawn on it."""
    s = SIZE / img.height
    out = img.resize((round(img.width * s), SIZE), Image.LANCZOS)
    d = ImageDraw.Draw(out)
    x, y, w, h = face.box * s
    d.rectangle([x, y, x + w, y + h], outline=(160, 160, 160), width=2)
    for p, colour in [(face.eye_left, (255, 0, 0)), (face.eye_right, (0, 90, 255)), (face.mouth, (0, 200, 0)),
                      (face.chin, (255, 220, 0))]:
        cx, cy = (np.asarray(p) + 0.5) * s
        d.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=colour, outline=(0, 0, 0))
    corners = [tuple((c + 0.5) * s) for c in quad.corners]
    d.line(corners + corners[:1], fill=(255, 255, 255), width=2)
    d.line([corners[0], corners[3]], fill=(255, 255, 255), width=4)   # the crop's top edge
    return out


def targets(crop):
    out = crop.copy()
    d = ImageDraw.Draw(out)
    y = 0.4875 * SIZE                        # eye height for an eye-dominated quad (0.5 - 0.1 |em| / side)
    for x in (0.375 * SIZE, 0.625 * SIZE):
        d.line([x, y - 10, x, y + 10], fill=(255, 255, 255), width=1)
    d.line([0.3 * SIZE, y, 0.7 * SIZE, y], fill=(255, 255, 255), width=1)
    return out


def main():
    rows = []
    for path in DRAWN_FACES:
        img = Image.open(path).convert('RGB')
        face = anime_detect.detect(img)[0]
        quad = align.drawn_quad(face)
        crop = align.align_with_quad(img, quad, SIZE)
        left = annotated(img, face, quad)
        row = Image.new('RGB', (left.width + 8 + SIZE, SIZE), (255, 255, 255))
        row.paste(left, (0, 0))
        row.paste(targets(crop), (left.width + 8, 0))
        rows.append(row)
    width = max(r.width for r in rows)
    sheet = Image.new('RGB', (width, sum(r.height for r in rows) + 8 * (len(rows) - 1)), (255, 255, 255))
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height + 8
    dest = ROOT / 'docs' / 'data-drawn-faces.png'
    sheet.save(dest, optimize=True)
    print(f'wrote {dest} ({sheet.size[0]}x{sheet.size[1]})')


if __name__ == '__main__':
    main()
