"""Sample inputs that need nothing downloaded: a real photo and a small training set, for a first try, the
notebooks' SMOKE runs, the tests and the README's figures.

    photo = samples.grace_hopper()                 # PIL image: matplotlib's photo of Grace Hopper
    folder = samples.sample_photos('photos')       # photos/grace_hopper.jpg, grace_hopper-mirrored.jpg
    zip_path = samples.demo_dataset('toon-32.zip') # 32 "cartoon" faces drawn by the bundled demo-toon

The photo comes with matplotlib (the `notebook` extra installs it; a public-domain US Navy photograph), so
`pip install -e ".[align,notebook]"` is all a SMOKE run needs. The networks behind the dataset are the ones
in stylegan2_lib.assets.
"""

import tempfile
from pathlib import Path

from PIL import Image, ImageOps

from . import images
from .assets import DEMO_TOON
from .checkpoints import load
from .data import prepare_dataset

#----------------------------------------------------------------------------
# Photos.

def _grace_hopper_file():
    try:
        import matplotlib.cbook
    except ImportError:
        raise ImportError('the sample photo comes with matplotlib: pip install matplotlib '
                          '(or pip install "stylegan2_lib[notebook]")') from None
    return matplotlib.cbook.get_sample_data('grace_hopper.jpg', asfileobj=False)

def grace_hopper():
    """matplotlib's photo of Grace Hopper (512x600, one face), as an RGB PIL image."""
    with Image.open(_grace_hopper_file()) as img:
        return img.convert('RGB')

def sample_photos(dest):
    """Two photos with a face each, as JPEGs in `dest`: grace_hopper.jpg (matplotlib's file as it is) and
    grace_hopper-mirrored.jpg (the same photo flipped left to right). Returns `dest` as a Path."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / 'grace_hopper.jpg').write_bytes(Path(_grace_hopper_file()).read_bytes())
    ImageOps.mirror(grace_hopper()).save(dest / 'grace_hopper-mirrored.jpg', quality=95)
    return dest

#----------------------------------------------------------------------------
# A training set.

def demo_dataset(dest_zip, count=32, seed=1000):
    """A small "cartoon" dataset drawn by the bundled fine-tuned demo generator (the demo's animal faces, seeds
    seed..seed+count-1, truncation 0.8), prepared as a training zip. Returns Path(dest_zip)."""
    G = load(DEMO_TOON).G_ema
    imgs = images.to_uint8(images.generate_images(G, range(seed, seed + count), truncation_psi=0.8, progress=False))
    with tempfile.TemporaryDirectory() as tmp:
        for i, img in enumerate(imgs):
            images.save_image(Path(tmp) / f'{i:04d}.png', img)
        prepare_dataset(tmp, dest_zip, G.img_resolution, progress=False)
    return Path(dest_zip)
