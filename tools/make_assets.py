"""Regenerate the bundled default network from the tiny32 reference pickle, reproducibly.

    python tools/make_assets.py           # writes assets/tiny32.safetensors and stylegan2_lib/assets/tiny32.safetensors
    python tools/make_assets.py --check   # writes nothing; exit 1 if either file differs from a fresh conversion

The conversion is sg.load (restricted unpickler, nothing executed) then sg.save: every tensor of G, D and
G_ema is copied as is, so the networks compute exactly what the pickle's networks compute.
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
TARGETS = ['assets/tiny32.safetensors', 'stylegan2_lib/assets/tiny32.safetensors']

#----------------------------------------------------------------------------

def convert():
    """The bytes of the bundled file: same input, same bytes (no paths, dates or versions in the meta)."""
    src = ROOT / SOURCE
    ck = sg.load(src)
    meta = {
        'name':                'tiny32',
        'description':         'tiny perturbed-random 32x32 StyleGAN2 reference network; draws abstract colour patterns, not faces',
        'converted_from':      SOURCE,
        'source_format':       ck.meta['format'],
        'source_sha256':       hashlib.sha256(src.read_bytes()).hexdigest(),
        'training_set_kwargs': ck.meta.get('training_set_kwargs'),
        'made_by':             'tools/make_assets.py',
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / 'tiny32.safetensors'
        sg.save(out, **ck.networks(), meta=meta)
        return out.read_bytes()

#----------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--check', action='store_true', help='compare with the files on disk; write nothing')
    args = parser.parse_args(argv)
    data = convert()
    digest = hashlib.sha256(data).hexdigest()
    stale = []
    for rel in TARGETS:
        path = ROOT / rel
        if args.check:
            if not path.is_file() or path.read_bytes() != data:
                stale.append(rel)
        else:
            atomic_write_bytes(path, data)
            print(f'wrote {rel} ({len(data)} bytes, sha256 {digest})')
    if stale:
        print(f'out of date: {", ".join(stale)}; run python tools/make_assets.py', file=sys.stderr)
        return 1
    if args.check:
        print(f'up to date: {", ".join(TARGETS)} (sha256 {digest})')
    return 0

if __name__ == '__main__':
    sys.exit(main())
