"""How the drawn-face alignment does on a folder of real drawings: the numbers behind docs/data.md's
"Measured on real drawings".

    python tools/measure_drawn_alignment.py FOLDER [--size 256] [--json out.json] [--sheet out.png]

For every image (searched recursively; transparency over white, as align_folder reads them): its faces aligned
at --size by align.align_drawn_face_with_transform (AnimeFace's detector, drawn_quad; timed: what align_folder
spends on the image), the largest face's score and size; the detector run again on that face's crop, and where
it puts the eyes against where the recipe meant them to land (drawn_quad(face).to_output of the first
detection) and against the canonical FFHQ points (0.375, 0.4875) and (0.625, 0.4875) of the side; whether the
chin rule widened the quad (drawn_quad against eye_mouth_quad without the chin) and where the chin lands. Crop
coordinates are continuous (pixel centres at i + 0.5). --sheet writes the first 64 crops (green crosses: the
target eyes, red circles: the eyes found again) for a look by eye.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan2_lib import align, anime_detect                       # noqa: E402

EXTS = {'.png', '.jpg', '.jpeg', '.webp', '.bmp', '.gif'}
CANONICAL = np.array([[0.375, 0.4875], [0.625, 0.4875]])


def measure(path, size):
    row = {'file': str(path), 'faces': 0}
    img = align.read_photo(path)
    t0 = time.perf_counter()            # what align_folder(mode='anime') spends on the image: detect, align every face
    try:
        aligned = align.align_drawn_face_with_transform(img, size, all_faces=True)
    except align.NoFaceFound:
        aligned = []
    row['seconds'] = time.perf_counter() - t0
    row['faces'] = len(aligned)
    if not aligned:
        return row, None
    aligned = aligned[0]                # the largest face
    face = anime_detect.DrawnFace.from_dict(aligned.detection)
    quad = align.drawn_quad(face)
    plain = align.eye_mouth_quad(face.eye_left, face.eye_right, face.mouth)
    target = quad.to_output([face.eye_left, face.eye_right], size)
    chin = quad.to_output([face.chin], size)[0]
    row.update(photo_size=list(img.size), likelihood=face.likelihood, face_size=face.size,
               upscaled=aligned.source_size < size, chin_scale=quad.size / plain.size,
               target_eyes=target.tolist(), chin_in_crop=(chin / size).tolist(),
               scale_by='eyes' if np.hypot(*(face.eye_right - face.eye_left)) * 2.0 >= np.hypot(*(face.mouth - (face.eye_left + face.eye_right) / 2)) * 1.8 else 'mouth',
               face_box_in_crop=(quad.to_output([face.box[:2], face.box[:2] + face.box[2:]], size) / size).ravel().tolist(),
               padded=bool((aligned.transform.quad.min() < 0) or (aligned.transform.quad[:, 0].max() > img.size[0])
                           or (aligned.transform.quad[:, 1].max() > img.size[1])),
               target_vs_canonical_px=float(np.linalg.norm(target - CANONICAL * size, axis=1).mean()))
    again = anime_detect.detect(aligned.image)
    if again:   # the face found again whose eyes lie nearest the targets
        eyes = [np.stack([f.eye_left, f.eye_right]) + 0.5 for f in again]
        k = int(np.argmin([np.linalg.norm(e - target, axis=1).mean() for e in eyes]))
        err = eyes[k] - target
        row.update(redetected=True, eyes=eyes[k].tolist(), eye_error_px=float(np.linalg.norm(err, axis=1).mean()),
                   eye_offset_px=err.mean(axis=0).tolist(),
                   eye_vs_canonical_px=float(np.linalg.norm(eyes[k] - CANONICAL * size, axis=1).mean()),
                   redetected_likelihood=again[k].likelihood)
    else:
        row.update(redetected=False)
    return row, aligned.image


def marked(crop, row, size):
    from PIL import ImageDraw
    im = crop.convert('RGB')
    d = ImageDraw.Draw(im)
    r = max(2, size // 64)
    for (x, y) in row['target_eyes']:
        d.line([(x - r, y), (x + r, y)], fill=(0, 200, 0)); d.line([(x, y - r), (x, y + r)], fill=(0, 200, 0))
    for (x, y) in row.get('eyes', []):
        d.ellipse([x - r / 2, y - r / 2, x + r / 2, y + r / 2], outline=(255, 0, 0))
    return np.asarray(im)


def pct(v, q):
    return float(np.percentile(v, q)) if len(v) else float('nan')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('folder')
    ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--json', help='every image\'s measurements')
    ap.add_argument('--sheet', help='contact sheet of the first 64 crops (PNG)')
    a = ap.parse_args()
    files = sorted(p for p in Path(a.folder).rglob('*') if p.suffix.lower() in EXTS and p.is_file())
    rows, crops = [], []
    for p in files:
        try:
            row, crop = measure(p, a.size)
        except OSError as e:
            row, crop = {'file': str(p), 'error': str(e)}, None
        rows.append(row)
        if crop is not None and len(crops) < 64:
            crops.append(marked(crop, row, a.size))
    read = [r for r in rows if 'error' not in r]
    hit = [r for r in read if r['faces']]
    again = [r for r in hit if r['redetected']]
    err = [r['eye_error_px'] for r in again]
    canon = [r['eye_vs_canonical_px'] for r in again]
    off = np.array([r['eye_offset_px'] for r in again]).reshape(-1, 2)
    chin_y = [r['chin_in_crop'][1] for r in hit]
    summary = {
        'images': len(read), 'unreadable': len(rows) - len(read), 'with_face': len(hit),
        'detection_rate': len(hit) / max(len(read), 1),
        'faces_per_hit_median': pct([r['faces'] for r in hit], 50),
        'likelihood_median': pct([r['likelihood'] for r in hit], 50),
        'face_size_median_px': pct([r['face_size'] for r in hit], 50),
        'upscaled_rate': float(np.mean([r['upscaled'] for r in hit])) if hit else float('nan'),
        'eye_error_median_px': pct(err, 50), 'eye_error_p90_px': pct(err, 90),
        'eye_offset_median_px': np.median(off, axis=0).tolist() if len(off) else None,
        'eye_vs_canonical_median_px': pct(canon, 50), 'eye_vs_canonical_p90_px': pct(canon, 90),
        'redetect_fail_rate': 1 - len(again) / len(hit) if hit else float('nan'),
        'chin_rule_rate': float(np.mean([r['chin_scale'] > 1 + 1e-9 for r in hit])) if hit else float('nan'),
        'chin_scale_max': max([r['chin_scale'] for r in hit], default=float('nan')),
        'chin_y_median': pct(chin_y, 50), 'chin_y_max': max(chin_y, default=float('nan')),
        'scale_by_eyes_rate': float(np.mean([r['scale_by'] == 'eyes' for r in hit])) if hit else float('nan'),
        'face_box_leaves_crop_rate': float(np.mean([min(r['face_box_in_crop']) < 0 or max(r['face_box_in_crop']) > 1 for r in hit])) if hit else float('nan'),
        'padded_rate': float(np.mean([r['padded'] for r in hit])) if hit else float('nan'),
        'seconds_median': pct([r['seconds'] for r in read], 50), 'size': a.size,
    }
    print(f"{'images':34s} {summary['images']}  (unreadable {summary['unreadable']})")
    print(f"{'with >= 1 face':34s} {summary['with_face']}  ({summary['detection_rate']:.1%})")
    print(f"{'likelihood / face size (median)':34s} {summary['likelihood_median']:.3f} / {summary['face_size_median_px']:.0f} px"
          f"  (upscaled crops {summary['upscaled_rate']:.0%})")
    print(f"{'eye error at %d px (median / p90)' % a.size:34s} {summary['eye_error_median_px']:.1f} / {summary['eye_error_p90_px']:.1f} px"
          f"  (median offset x, y: {summary['eye_offset_median_px']})")
    print(f"{'eyes vs canonical (median / p90)':34s} {summary['eye_vs_canonical_median_px']:.1f} / {summary['eye_vs_canonical_p90_px']:.1f} px")
    print(f"{'re-detection fails':34s} {summary['redetect_fail_rate']:.1%}")
    print(f"{'chin rule widened the quad':34s} {summary['chin_rule_rate']:.1%}  (at most x{summary['chin_scale_max']:.2f})")
    print(f"{'chin y in the crop (median / max)':34s} {summary['chin_y_median']:.3f} / {summary['chin_y_max']:.3f}")
    print(f"{'scale set by the eye distance':34s} {summary['scale_by_eyes_rate']:.1%}  (else by eyes-mouth)")
    print(f"{'face box leaves the crop':34s} {summary['face_box_leaves_crop_rate']:.1%}")
    print(f"{'crop reaches past the image (pad)':34s} {summary['padded_rate']:.1%}")
    print(f"{'time per image (median)':34s} {summary['seconds_median'] * 1000:.0f} ms")
    if a.json:
        Path(a.json).write_text(json.dumps({'summary': summary, 'images': rows}, indent=1))
    if a.sheet and crops:
        from PIL import Image
        from stylegan2_lib.images import make_grid
        Image.fromarray(make_grid(np.stack(crops), cols=8)).save(a.sheet)


if __name__ == '__main__':
    main()
