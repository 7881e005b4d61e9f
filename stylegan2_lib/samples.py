"""Sample inputs that need nothing downloaded: a real photo and a small training set, for a first try, the
notebooks' SMOKE runs, the tests and the README's figures.

    photo = samples.grace_hopper()                 # PIL image: matplotlib's photo of Grace Hopper
    folder = samples.sample_photos('photos')       # photos/grace_hopper.jpg, grace_hopper-mirrored.jpg
    zip_path = samples.demo_dataset('toon-32.zip') # 32 "cartoon" faces drawn by the bundled demo-toon

    folder = samples.drawn_faces('drawn')          # drawn/concert.png, drawn/sprite.png: two drawn (anime) faces
    clip = samples.drawn_clip('clips/drawn.mp4')   # a 2 s clip of two shots, one of each drawing (imageio-ffmpeg)

The photo comes with matplotlib (the `notebook` extra installs it; a public-domain US Navy photograph), so
`pip install -e ".[align,notebook]"` is all a SMOKE run needs. The networks behind the dataset and the two
drawings (MIT-licensed Ren'Py tutorial artwork) are in stylegan2_lib.assets.
"""

import tempfile
from pathlib import Path

from PIL import Image, ImageOps

from . import images
from .assets import DEMO_TOON, DRAWN_FACES
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
# Drawn faces, and a film clip of them.

def drawn_faces(dest):
    """The two drawn faces that ship with the library as PNGs in `dest`: concert.png (610x610, a three-quarter
    view on a busy stage) and sprite.png (320x360, frontal on white). Returns `dest` as a Path."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name, path in zip(('concert', 'sprite'), DRAWN_FACES):
        with Image.open(path) as img:
            img.convert('RGB').save(dest / f'{name}.png')
    return dest

def _shot(img, frames, size, drift):
    """`frames` views of `img` scaled to cover size x size, the window drifting `drift` px per frame (a slow pan)."""
    scale = (size + drift * frames) / min(img.size)
    big = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    top = (big.height - size) // 2
    return [big.crop((i * drift, top, i * drift + size, top + size)) for i in range(frames)]

def drawn_clip(dest_mp4, fps=10, seconds_per_shot=1.0, size=320):
    """An H.264 clip of two shots, one slow pan over each drawn face (seconds_per_shot each), written with
    imageio-ffmpeg (the `video` extra): consecutive frames are near-duplicates, the two shots are not.
    Returns Path(dest_mp4)."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise ImportError('the sample clip is written with imageio-ffmpeg: pip install "stylegan2_lib[video]"') from None
    import numpy as np
    dest = Path(dest_mp4)
    dest.parent.mkdir(parents=True, exist_ok=True)
    n = max(1, round(fps * seconds_per_shot))
    shots = []
    for path in DRAWN_FACES:
        with Image.open(path) as img:
            shots += _shot(img.convert('RGB'), n, size, drift=1)
    writer = imageio_ffmpeg.write_frames(str(dest), (size, size), fps=fps, quality=9, macro_block_size=16)
    try:
        writer.send(None)
        for frame in shots:
            writer.send(np.ascontiguousarray(np.asarray(frame, np.uint8)))
    finally:
        writer.close()                                  # ends the ffmpeg process on every path
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
