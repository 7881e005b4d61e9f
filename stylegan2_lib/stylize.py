"""Stylize a photo: align it like FFHQ, project it into the base (real-face) generator, render that
latent with the blended generator(s).

    result = stylize(photo, base, styled=toon, resolution=16)          # or blended=G, or resolutions=None
    result.aligned, result.projected, result.stylized[16], result.strip  # PIL images
    result.device                                                       # where it ran: 'cuda:0 (Tesla T4, 15 GiB)'
    result.identity['swap 16'].similarity, print(result.identity_text())  # how much of the person each render keeps

    group = stylize(photo, base, styled=toon, resolution=16, all_faces=True, paste_back=True)
    group.full['swap 16']                                               # the whole photo, every face stylised
    group.other_faces[0].stylized['swap 16']                            # the second-largest face's crop

Whole photos: align keeps where each crop came from (align.FaceTransform: the FFHQ quad in the photo), and
each stylised crop is warped back through a feathered mask of the face (align.paste_face: the landmarks'
hull with the forehead, or an ellipse), its colours matched to the photo's at the seam; outside the masks the
photo is untouched. Every face is projected on its own (a projection each: all_faces costs that many times).

Identity: dlib's face-recognition descriptor of the aligned photo against that of the projection and of each
blend (metrics.identity_similarity: 1 the same face, above 0.5 dlib would call them one person, 0 far apart).
Faces are described at 256x256 (images of another size are resized first: dlib's detector misses faces under
about 80 px, and a 1024 px render gains nothing), so at a 32 or 64 px generator the number says little. Where
dlib is not installed, or finds no face in the photo or a render (a drawn face often), the similarity is None
and the note says why.

The work runs on `device` (default: the GPU when there is one); networks elsewhere are copied there once
per call, and what comes back (images, the projection's tensors) is on the CPU.
"""

import dataclasses
from typing import Optional

import numpy as np
import torch
from PIL import Image

from . import images, metrics
from .align import (AlignmentUnavailable, FaceTransform, align_face_with_transform, as_rgb, centre_crop_with_transform,
                    check_feather, face_mask, paste_face)
from .blend import blend, check_same_architecture
from .devices import default_device, describe_device, on_device
from .project import Projection, project


@dataclasses.dataclass
class Stylized:
    aligned:    Image.Image                 # the photo as the generator sees it
    projected:  Image.Image                 # base generator's rendering of the projection
    stylized:   dict                        # {label: PIL image}: one per blend (swap resolution or 'blended')
    strip:      Image.Image                 # aligned | projected | stylized..., labelled
    projection: Projection                  # ws and noise on the CPU
    device:     str = 'cpu'                 # where the projection and renders ran, e.g. 'cuda:0 (Tesla T4, 15 GiB)'
    identity:   dict = dataclasses.field(default_factory=dict)  # {'projected' and each stylized label: Identity}
    transform:  Optional[FaceTransform] = None  # where the aligned face came from in the photo
    full:       dict = dataclasses.field(default_factory=dict)  # paste_back: {label: the whole photo, every face replaced}
    mask:       Optional[np.ndarray] = None # paste_back: [H, W] float32, where the faces were pasted (1) and the soft edge
    other_faces: list = dataclasses.field(default_factory=list) # all_faces: a Stylized per further face, largest first

    def identity_text(self):
        """The identity similarities, one line per render (what the CLI and notebook 04 print)."""
        if not self.identity:
            return 'identity to the photo: not measured'
        width = max(len(k) for k in self.identity)
        head = 'identity to the photo (dlib face descriptors; 1 the same face, above 0.5 dlib calls it the same person):'
        return '\n'.join([head] + [f'  {k:<{width}}  {v}' for k, v in self.identity.items()])

@dataclasses.dataclass
class Identity:
    similarity: Optional[float]             # metrics.identity_similarity in [0, 1], or None
    note:       str = ''                    # why it is None

    def __str__(self):
        return f'{self.similarity:.2f}' if self.similarity is not None else f'none ({self.note})'

IDENTITY_SIZE = 256                         # faces are described at this size (module docstring)

def identity_to_photo(aligned, renders):
    """{label: Identity} of each render (PIL images or uint8 [H, W, 3]) to the aligned photo's face."""
    size = (IDENTITY_SIZE, IDENTITY_SIZE)
    batch = np.stack([np.asarray(Image.fromarray(np.asarray(img)).convert('RGB').resize(size, Image.LANCZOS))
                      for img in [aligned, *renders.values()]])
    try:
        photo, *faces = metrics.describe_faces(batch)
    except AlignmentUnavailable as e:
        return {k: Identity(None, f'not measured: {e}') for k in renders}
    if photo is None:
        return {k: Identity(None, 'no face found in the aligned photo') for k in renders}
    return {k: Identity(metrics.identity_similarity(photo, f)) if f is not None
            else Identity(None, 'no face found in the render') for k, f in zip(renders, faces)}

def _render(G, projection):
    with torch.no_grad():
        img = G.synthesis(projection.ws, noise=projection.noise, force_fp32=True)
    return Image.fromarray(images.to_uint8(img)[0])

def stylize(photo, base, styled=None, blended=None, resolution=None, width=None, mapping='low', align=True,
            steps=300, loss='auto', D=None, w_plus=False, progress=True, callback=None, device=None, identity=True,
            all_faces=False, paste_back=False, mask='hull', feather=0.04, color_match=True):
    """`blended` renders directly; otherwise `styled` is blended with `base` at `resolution` (or, with
    resolution=None, at every block resolution below the image size, for a strip). `device`: None or 'auto'
    (CUDA when available, else the CPU), 'cpu', 'cuda', ... (devices.default_device). identity=False skips
    the identity similarities (result.identity stays empty).
    all_faces=True stylizes every face the detector finds (a projection each; result.other_faces after the
    largest). paste_back=True warps each stylised face back into the photo (result.full: {label: photo})
    through a feathered mask (mask='hull' of the landmarks or 'ellipse'; feather: the soft edge's Gaussian
    sigma as a fraction of the crop), colours matched at the seam (color_match; align.paste_face)."""
    if blended is None and styled is None:
        raise ValueError('give the styled generator (styled=...) or a ready blend (blended=...)')
    if paste_back:
        check_feather(feather)                            # before minutes of projection, not after
    for other in (styled, blended):
        if other is not None:
            check_same_architecture(base, other)
    device = default_device(device)
    base, styled, blended, D = (on_device(net, device) for net in (base, styled, blended, D))
    size = base.img_resolution
    faces = align_face_with_transform(photo, size=size, all_faces=True) if align else [centre_crop_with_transform(photo, size)]
    if blended is not None:
        generators = {'blended': blended}
    else:
        swaps = [resolution] if resolution is not None else base.synthesis.block_resolutions[:-1]
        generators = {f'swap {r}': blend(base, styled, r, width=width, mapping=mapping) for r in swaps}
    results = [_stylize_face(face, base, generators, steps=steps, loss=loss, D=D, w_plus=w_plus, progress=progress,
                             callback=callback, identity=identity, device=device)
               for face in (faces if all_faces else faces[:1])]
    first = results[0]
    first.other_faces = results[1:]
    if paste_back:
        first.full, first.mask = paste_faces(photo, results, shape=mask, feather=feather, color_match=color_match)
    return first

def _stylize_face(face, base, generators, steps, loss, D, w_plus, progress, callback, identity, device):
    """One aligned face (align.AlignedFace): projected into `base`, rendered by each of {label: generator}."""
    aligned = face.image
    projection = project(base, np.asarray(aligned), steps=steps, loss=loss, D=D, w_plus=w_plus, progress=progress,
                         callback=callback)
    renders = {label: _render(G, projection) for label, G in generators.items()}
    projected = _render(base, projection)
    tiles = images.enlarge(np.stack([np.asarray(t) for t in [aligned, projected, *renders.values()]]), 96)
    grid = images.make_grid(tiles, cols=len(tiles))
    strip = Image.fromarray(images.add_column_labels(grid, ['photo', 'projected', *renders], tile_width=tiles.shape[2]))
    measured = identity_to_photo(aligned, {'projected': projected, **renders}) if identity else {}
    return Stylized(aligned, projected, renders, strip, _on_cpu(projection), describe_device(device), measured,
                    transform=face.transform)

def paste_faces(photo, faces, shape='hull', feather=0.04, color_match=True):
    """({label: the photo with every face's render of that label pasted back}, [H, W] mask: the faces' union)."""
    photo = as_rgb(photo)
    masks = [face_mask(face.transform, shape=shape, feather=feather) for face in faces]
    full, union = {}, np.zeros((photo.height, photo.width), np.float32)
    for label in faces[0].stylized:
        out = photo
        for face, m in zip(faces, masks):
            out, where = paste_face(out, face.stylized[label], face.transform, mask=m, color_match=color_match)
            union = np.maximum(union, where)
        full[label] = out
    return full, union

def _on_cpu(projection):
    return dataclasses.replace(projection, ws=projection.ws.cpu(), noise=[v.cpu() for v in projection.noise])
