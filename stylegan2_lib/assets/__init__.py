"""Files shipped inside the package (see assets/README.md at the top of the repository)."""

from pathlib import Path

_HERE = Path(__file__).parent

# The bundled default network: a tiny 32x32 StyleGAN2 (abstract colour patterns, not faces), made by
# tools/make_assets.py. `stylegan2-lib generate` uses it when no --network is given.
DEFAULT_NETWORK = _HERE / 'tiny32.safetensors'

# The bundled demo pair, made by assets/make_demo.py with the library's own trainer: a 32x32 generator
# trained from scratch on smiley-face emoji (DEMO_BASE) and a copy of it fine-tuned on animal-face emoji
# (DEMO_TOON), G_ema only. `stylegan2-lib demo` blends them; `stylegan2-lib blend` uses them when no
# --low / --high is given.
DEMO_BASE = _HERE / 'demo-base.safetensors'
DEMO_TOON = _HERE / 'demo-toon.safetensors'

# The swap resolution of the demo's blended checkpoint (`stylegan2-lib demo`): synthesis blocks up to 8x8
# from DEMO_BASE, 16x16 and 32x32 from DEMO_TOON (assets/README.md says why this one).
DEMO_SWAP = 8

# Two drawn (anime-style) faces, MIT-licensed artwork of the Ren'Py tutorial (Eileen; the concert scene by
# Mugenjohncel, the sprite by Piroshki; assets/README.md and tests/data/drawn_faces/README.md say where from):
# samples.drawn_faces / drawn_clip make the data notebook's offline run and a first try of `align --anime` from them.
DRAWN_FACES = (_HERE / 'drawn-concert.jpg', _HERE / 'drawn-sprite.png')
