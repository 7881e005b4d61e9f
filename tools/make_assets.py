"""Regenerate the bundled default network from the tiny32 reference pickle, reproducibly.

    python tools/make_assets.py           # writes the file below into assets/ and stylegan2_lib/assets/
    python tools/make_assets.py --check   # writes nothing; exit 1 if a file differs from a fresh conversion

Files (the same bytes in both folders):
    tiny32.safetensors     the pickle's G, D and G_ema: the default network of `stylegan2-lib generate`

(The demo pair, demo-base / demo-toon.safetensors, is trained, not converted: assets/make_demo.py.)

The conversion is sg.load (restricted unpickler, nothing executed) then sg.save: every tensor is copied as
is, so the networks compute exactly what the pickle's networks compute.
"""

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import stylegan2_lib as sg  # noqa: E402  (after the path set-up, so a checkout works uninstalled)
from stylegan2_lib.files import atomic_write_bytes  # noqa: E402

SOURCE = 'tests/data/tiny32/network-snapshot-000000.pkl'
FOLDERS = ['assets', 'stylegan2_lib/assets']

# file name -> (which networks of the pickle, under which names, and what the file is)
ASSETS = {
    'tiny32.safetensors': (
        {'G': 'G', 'D': 'D', 'G_ema': 'G_ema'},
        {'name': 'tiny32',
         'description': 'tiny perturbed-random 32x32 StyleGAN2 reference network; draws abstract colour patterns, not faces'}),
}

#----------------------------------------------------------------------------

def convert():
    """{file name: bytes}: same input, same bytes (no paths, dates or versions in the meta)."""
    src = ROOT / SOURCE
    ck = sg.load(src)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for filename, (nets, info) in ASSETS.items():
            meta = {
                **info,
                'converted_from':      SOURCE,
                'source_format':       ck.meta['format'],
                'source_sha256':       hashlib.sha256(src.read_bytes()).hexdigest(),
                'training_set_kwargs': ck.meta.get('training_set_kwargs'),
                'made_by':             'tools/make_assets.py',
            }
            if set(nets) != set(nets.values()):
                meta['networks_from'] = {ours: f'{theirs} of the source' for ours, theirs in nets.items()}
            path = Path(tmp) / filename
            sg.save(path, **{ours: getattr(ck, theirs) for ours, theirs in nets.items()}, meta=meta)
            out[filename] = path.read_bytes()
    return out

#----------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--check', action='store_true', help='compare with the files on disk; write nothing')
    args = parser.parse_args(argv)
    stale, checked = [], []
    for filename, data in convert().items():
        digest = hashlib.sha256(data).hexdigest()
        for folder in FOLDERS:
            rel = f'{folder}/{filename}'
            path = ROOT / rel
            if args.check:
                if not path.is_file() or path.read_bytes() != data:
                    stale.append(rel)
                else:
                    checked.append(f'{rel} (sha256 {digest})')
            else:
                atomic_write_bytes(path, data)
                print(f'wrote {rel} ({len(data)} bytes, sha256 {digest})')
    if stale:
        print(f'out of date: {", ".join(stale)}; run python tools/make_assets.py', file=sys.stderr)
        return 1
    if args.check:
        print('up to date:\n  ' + '\n  '.join(checked))
    return 0

if __name__ == '__main__':
    sys.exit(main())
