"""The drawn-face detector (anime_detect, nvxs 1.0.2 through ctypes) on hostile inputs.

A fault inside the C library would kill the interpreter, so every call that reaches it runs in a child
interpreter (sys.executable -c) and a crash shows as a non-zero return code, not as a dead test runner:
thin strips and sizes around the detector's smallest window and MAX_SIDE, noise, every PIL mode, float / NaN /
bool arrays, an 8000 x 6000 image (peak memory bounded by the MAX_SIDE shrink), a page of small faces with one
large one (nv_face_detect turns only the first `maxface` candidates, smallest first, into faces), and several
threads at once.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stylegan2_lib import anime_detect

SPRITE = Path(__file__).parent / 'data' / 'drawn_faces' / 'renpy_eileen_happy.png'



@pytest.fixture(autouse=True)
def require_detector():
    """Skip where the animeface wheel is missing; fail instead where STYLEGAN2_LIB_REQUIRE_ANIME=1 (CI installs it)."""
    why = anime_detect.available()
    if why:
        if os.environ.get('STYLEGAN2_LIB_REQUIRE_ANIME') == '1':
            pytest.fail(f'STYLEGAN2_LIB_REQUIRE_ANIME=1 but the drawn-face detector cannot run: {why}')
        pytest.skip(why)

_PRELUDE = f"""
import json, resource, sys, time
import numpy as np
from PIL import Image
from stylegan2_lib import anime_detect as ad
SPRITE = {str(SPRITE)!r}
"""


def run_child(code, timeout=120):
    """Run `code` after _PRELUDE in a fresh interpreter; its last stdout line, parsed as JSON."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    p = subprocess.run([sys.executable, '-W', 'error::RuntimeWarning', '-c', _PRELUDE + code], capture_output=True,
                       text=True, timeout=timeout, env=env, cwd=Path(__file__).parent.parent)
    assert p.returncode == 0, f'child exited with {p.returncode} (negative: killed by that signal)\n{p.stderr[-3000:]}'
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_sizes_modes_and_arrays():
    out = run_child("""
res = {}
sides = [1, 2, 5, 42, 43, 44, 56, 57, 58, 64, 100, 1599, 1600, 1601]
for w in sides:
    for h in sides:
        res[f'const {w}x{h}'] = len(ad.detect(Image.new('RGB', (w, h), (200, 120, 60))))
rng = np.random.default_rng(0)
for w, h in [(43, 1600), (1600, 43), (57, 1601), (1601, 57), (58, 58), (64, 64), (100, 100), (333, 97)]:
    res[f'noise {w}x{h}'] = len(ad.detect(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
sprite = Image.open(SPRITE).convert('RGB')
for mode in ['RGB', 'L', 'RGBA', 'LA', 'P', '1', 'CMYK', 'YCbCr', 'HSV', 'LAB', 'F']:
    res[f'mode {mode}'] = len(ad.detect(sprite.convert(mode)))
gray16 = np.asarray(sprite.convert('L'), np.uint16) * 257
res['mode I;16'] = len(ad.detect(Image.frombytes('I;16', sprite.size, gray16.astype('<u2').tobytes())))
res['mode I (16-bit PNG, older Pillow)'] = len(ad.detect(Image.fromarray(gray16.astype(np.int32), 'I')))
a = np.asarray(sprite)
res['float 0..255'] = len(ad.detect(a.astype(np.float64)))
res['gray array'] = len(ad.detect(a[..., 0]))
res['rgba array'] = len(ad.detect(np.dstack([a, np.full(a.shape[:2], 255, np.uint8)])))
for name, arr in [('nan', np.full((300, 300, 3), np.nan)), ('inf', np.full((300, 300, 3), -np.inf)),
                  ('bool', rng.random((300, 300)) > 0.5), ('float 0..1', rng.random((300, 300, 3))),
                  ('empty', np.zeros((0, 0, 3), np.uint8))]:
    res[name] = len(ad.detect(arr))
print(json.dumps(res))
""")
    drawn = ('mode ', 'float 0..255', 'gray array', 'rgba array')
    # Nothing in constant images, noise or degenerate arrays; the drawn face once in every mode and array form.
    assert {k: v for k, v in out.items() if not k.startswith(drawn) and v} == {}
    assert {k: v for k, v in out.items() if k.startswith(drawn) and v != 1} == {}


def test_huge_image_is_shrunk_with_bounded_memory():
    out = run_child("""
sprite = Image.open(SPRITE).convert('RGB')
page = Image.new('RGB', (8000, 6000), 'white')
page.paste(sprite.resize((sprite.width * 5, sprite.height * 5), Image.BILINEAR), (5000, 2000))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.time()
faces = ad.detect(page)
print(json.dumps(dict(grow_mb=(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, seconds=time.time() - t,
                      boxes=[f.box.tolist() for f in faces])))
""")
    # The 144 MB page is shrunk to 1600 x 1200 before any full-size RGB copy: about 40 bytes per detection pixel.
    assert out['grow_mb'] < 150, out
    assert out['seconds'] < 10, out
    assert len(out['boxes']) == 1, out
    x, y, w, h = out['boxes'][0]
    assert 5000 < x < 5000 + 5 * 320 and 2000 < y < 2000 + 5 * 360 and w > 400, out


def test_busy_page_keeps_its_largest_face_and_threads_agree():
    out = run_child("""
import threading
sprite = Image.open(SPRITE).convert('RGB')
f = ad.detect(sprite)[0]
x, y, w, h = map(int, f.box); pad = w // 3
face = sprite.crop((x - pad, y - pad, x + w + pad, y + h + pad))
W, B = 1300, 300
page = Image.new('RGB', (W, W), 'white')
page.paste(face.resize((B, B)), (W - B - 10, W - B - 10))
small = face.resize((80, 80))
for yy in range(0, W, 80):
    for xx in range(0, W, 80):
        if not (xx + 80 > W - B - 20 and yy + 80 > W - B - 20):
            page.paste(small, (xx, yy))
busy = ad.detect(page)
serial = [d.to_dict() for d in ad.detect(sprite)]
results = [None] * 4
def work(i):
    results[i] = [d.to_dict() for d in ad.detect(sprite)]
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps(dict(n=len(busy), largest=busy[0].size if busy else 0, threads_agree=all(r == serial for r in results))))
""")
    # Over a thousand candidate windows: with maxface 1024 the library dropped the 300 px face (its largest).
    assert out['n'] > 100 and out['largest'] > 150, out
    assert out['threads_agree'], out
