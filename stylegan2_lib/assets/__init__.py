"""Files shipped inside the package (see assets/README.md at the top of the repository)."""

from pathlib import Path

_HERE = Path(__file__).parent

# The bundled default network: a tiny 32x32 StyleGAN2 (abstract colour patterns, not faces), made by
# tools/make_assets.py. `stylegan2-lib generate` uses it when no --network is given.
DEFAULT_NETWORK = _HERE / 'tiny32.safetensors'

# The bundled blend demo pair: two generators of one architecture (the tiny32 reference pickle's G_ema and
# its G, each saved as G_ema), untrained perturbed-random weights that draw abstract patterns, not faces.
# `stylegan2-lib blend` uses them when no --low / --high is given.
DEMO_LOW = _HERE / 'demo-low.safetensors'
DEMO_HIGH = _HERE / 'demo-high.safetensors'
