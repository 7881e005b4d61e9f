"""Files shipped inside the package (see assets/README.md at the top of the repository)."""

from pathlib import Path

# The bundled default network: a tiny 32x32 StyleGAN2 (abstract colour patterns, not faces), made by
# tools/make_assets.py. `stylegan2-lib generate` uses it when no --network is given.
DEFAULT_NETWORK = Path(__file__).with_name('tiny32.safetensors')
