"""Likeness: for the same w, how much of the base model's face survives in a blend.

Pairs are image i of the base with image i of the blend. Where dlib finds faces (photographic faces), the
score is the identity similarity of dlib's face-recognition descriptors, with the 68-point landmark error and
the share of faces still found beside it; where it finds none (drawn faces, the tiny demo pair) a structural
similarity at low resolution is used instead, and labelled so.

Identity similarity from dlib's 128-d descriptor distance d (dlib_face_recognition_resnet_model_v1, from
face_recognition_models, the `align` extra's model package):
    identity = clip(1 - d / 1.2, 0, 1)
so identical images give 1, dlib's same-person threshold d = 0.6 maps to 0.5 (above 0.5: dlib would call them
one person), and d >= 1.2 (far apart) gives 0. Measured on FFHQ-aligned 256 px crops: Grace Hopper against a
copy resized to 0.8x / 0.5x and back d = 0.05 (identity 0.96), to 0.25x and back d = 0.25 (0.79), mirrored
d = 0.15 (0.88); against scikit-image's astronaut (Eileen Collins) d = 0.69 (0.43). The landmark errors of
the same pairs: 0.013, 0.015, 0.023, 0.034 and 0.044 (aligned crops put every face's landmarks in about the
same place, so this number sees changes of pose and shape, not of identity).

Structural similarity (when faces are not found): images compared through D's coarse features (the outputs of
its blocks at 8x8 px and below, unit-normalised over channels, as perceptual.py's discriminator distance), or
without D through 16x16 greyscale copies; the mean distance of the true pairs is divided by the mean distance
of mismatched pairs (base i, blend j != i):
    structural = clip(1 - mean_i d(base_i, blend_i) / mean_{i != j} d(base_i, blend_j), 0, 1)
1: the blend keeps each base image's layout exactly; 0: it is no more like its own base image than like an
unrelated one. It needs at least 2 pairs.
"""

import dataclasses
from typing import List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..align import AlignmentUnavailable, face_landmarks
from ..devices import on_device
from .features import as_uint8_batch, discriminator_block_outputs, discriminator_input, to_nchw

SAME_PERSON_DISTANCE = 0.6      # dlib's threshold for its face-recognition descriptors
FACE_METHOD_SHARE = 0.5         # faces are used when found in at least this share of the base images
COARSE_RESOLUTION = 8           # structural: D's block outputs at this resolution and below
GREY_SIZE = 16                  # structural without D: greyscale copies of this size

@dataclasses.dataclass
class Likeness:
    identity:       Optional[float]     # mean identity similarity over pairs with a face in both, or None
    landmark_error: Optional[float]     # mean 68-point distance / outer-eye-corner distance, same pairs, or None
    face_rate:      Optional[float]     # share of blend images with a face, of those whose base image has one
    structural:     Optional[float]     # structural similarity (see the module docstring), None with < 2 pairs
    method:         str                 # 'faces' or 'structural': what `score` is
    note:           str = ''            # why the method was chosen, in a few words

    @property
    def score(self):
        """The one number in [0, 1]: faces: identity x face_rate (the mean identity similarity over the pairs
        whose base image shows a face, a face lost in the blend counting 0); structural: the structural
        similarity (None with a single pair)."""
        if self.method == 'faces':
            return (self.identity or 0.0) * self.face_rate
        return self.structural

#----------------------------------------------------------------------------
# Faces: landmarks (align.py's dlib detector and 68-point predictor) and the face-recognition descriptor.

@dataclasses.dataclass
class Face:
    landmarks:  np.ndarray      # [68, 2] pixels
    descriptor: np.ndarray      # [128] dlib face-recognition descriptor

_RECOGNIZER = None

def _recognizer():
    global _RECOGNIZER
    if _RECOGNIZER is None:
        try:
            import dlib
            import face_recognition_models
            path = face_recognition_models.face_recognition_model_location()
        except ImportError:
            raise AlignmentUnavailable('face likeness needs dlib and face_recognition_models: '
                                       'pip install "stylegan2_lib[align]"') from None
        _RECOGNIZER = dlib.face_recognition_model_v1(path)
    return _RECOGNIZER

def _shape(landmarks):
    import dlib
    lo, hi = np.floor(landmarks.min(axis=0)).astype(int), np.ceil(landmarks.max(axis=0)).astype(int)
    rect = dlib.rectangle(int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1]))
    return dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y))) for x, y in landmarks])

def describe_faces(images) -> List[Optional[Face]]:
    """The largest face of each image (uint8 [N, H, W, 3] or [H, W, 3]) as landmarks and descriptor, or None
    where dlib finds no face. Raises AlignmentUnavailable without dlib or its models."""
    out = []
    for img in as_uint8_batch(images):
        found = face_landmarks(img)
        if not found:
            out.append(None)
            continue
        desc = _recognizer().compute_face_descriptor(np.ascontiguousarray(img), _shape(found[0]))
        out.append(Face(found[0], np.asarray(desc, dtype=np.float64)))
    return out

def identity_similarity(a: Face, b: Face):
    """clip(1 - d / (2 x 0.6), 0, 1) of dlib's descriptor distance d (module docstring)."""
    d = float(np.linalg.norm(a.descriptor - b.descriptor))
    return float(np.clip(1 - d / (2 * SAME_PERSON_DISTANCE), 0, 1))

def landmark_error(a: Face, b: Face):
    """Mean distance of b's 68 landmarks from a's, over a's outer-eye-corner distance (points 36 and 45)."""
    interocular = float(np.linalg.norm(a.landmarks[36] - a.landmarks[45]))
    return float(np.linalg.norm(b.landmarks - a.landmarks, axis=1).mean() / max(interocular, 1e-6))

#----------------------------------------------------------------------------
# Structural similarity at low resolution.

def _coarse_d_features(D, images, device):
    return _coarse(discriminator_block_outputs(D, discriminator_input(to_nchw(images, device), D)))

def _coarse(outs):
    """The structural measure's features from D's block outputs (highest resolution first)."""
    coarse = [h.float() for h in outs if h.shape[-1] <= COARSE_RESOLUTION] or [outs[-1].float()]
    return torch.cat([(h / (h.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)).flatten(1) / np.sqrt(h.shape[-1] * h.shape[-2])
                      for h in coarse], dim=1)

def _grey_features(images):
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
    grey = (x * torch.tensor([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    return F.adaptive_avg_pool2d(grey, GREY_SIZE).flatten(1) / GREY_SIZE

class _Structure:
    """How the structural measure embeds images: D's coarse features, or 16x16 greyscale without D."""
    def __init__(self, D=None, device=None):
        self.device = torch.device(device) if device is not None else (next(D.parameters()).device if D is not None else None)
        self.source = D                                     # the D given (features_and_likeness compares it)
        self.D = on_device(D, self.device)                  # left as it is (see discriminator_features)

    @torch.no_grad()
    def __call__(self, images, batch_size=16):
        if self.D is None:
            return _grey_features(images).double()
        return torch.cat([_coarse_d_features(self.D, images[i: i + batch_size], self.device).double().cpu()
                          for i in range(0, len(images), batch_size)])

def _structural(fa, fb):
    if len(fa) < 2:
        return None
    d = torch.cdist(fa, fb).square().numpy()                          # [N, N] squared distances
    true_pairs = np.diag(d).mean()
    mismatched = (d.sum() - np.trace(d)) / (len(d) * (len(d) - 1))
    return float(np.clip(1 - true_pairs / mismatched, 0, 1)) if mismatched > 0 else 1.0

def structural_similarity(base_images, blend_images, D=None, device=None):
    """clip(1 - mean true-pair distance / mean mismatched-pair distance, 0, 1) in D's coarse features (or in
    16x16 greyscale without D); None with fewer than 2 pairs."""
    embed = _Structure(D, device)
    return _structural(embed(as_uint8_batch(base_images)), embed(as_uint8_batch(blend_images)))

#----------------------------------------------------------------------------

@dataclasses.dataclass
class LikenessBase:
    """What likeness needs of the base images, computed once (likeness_base) to score many blends against."""
    images:    np.ndarray                   # uint8 [N, H, W, 3]
    faces:     Optional[list]               # describe_faces(images), or None where dlib is not available
    note:      str                          # what was found, or why faces are not measured
    structure: torch.Tensor = dataclasses.field(repr=False)    # the images' structural features
    embed:     _Structure = dataclasses.field(repr=False)

def likeness_base(base_images, D=None, device=None):
    """The base images' faces and structural features, for likeness(base, blend_images) on many blends.
    D, device: as for likeness (the structural measure's discriminator and where it runs)."""
    a = as_uint8_batch(base_images)
    embed = _Structure(D, device)
    try:
        faces = describe_faces(a)
        note = f'dlib found a face in {sum(f is not None for f in faces)} of {len(a)} base images'
    except AlignmentUnavailable as e:
        faces, note = None, f'faces not measured ({e})'
    return LikenessBase(a, faces, note, embed(a), embed)

def _face_scores(base_faces, blend_images):
    """(identity, landmark error, face rate) over the pairs whose base image has a face (at least one)."""
    with_face = [i for i, f in enumerate(base_faces) if f is not None]
    blend_faces = describe_faces(blend_images[with_face])
    pairs = [(base_faces[i], g) for i, g in zip(with_face, blend_faces) if g is not None]
    if not pairs:
        return None, None, 0.0
    identity = float(np.mean([identity_similarity(f, g) for f, g in pairs]))
    error = float(np.mean([landmark_error(f, g) for f, g in pairs]))
    return identity, error, len(pairs) / len(with_face)

def features_and_likeness(extractor, base, blend_images, batch_size=16):
    """(extractor(blend_images), likeness(base, blend_images)) for a prepared base (likeness_base). Where the
    extractor is discriminator_features of the same D the base's structural measure uses, D runs once over the
    images for both (its pooled block outputs are the features, its coarse ones the structure) instead of twice."""
    shared = getattr(extractor, 'discriminator', None)
    if shared is None or base.embed.D is None or base.embed.source is not shared:
        return extractor(blend_images), likeness(base, blend_images)
    b = as_uint8_batch(blend_images)
    D, device = base.embed.D, base.embed.device
    feats, coarse = [], []
    with torch.no_grad():
        for i in range(0, len(b), batch_size):
            outs = discriminator_block_outputs(D, discriminator_input(to_nchw(b[i: i + batch_size], device), D))
            feats.append(extractor.pool(outs).double().cpu())
            coarse.append(_coarse(outs).double().cpu())
    return torch.cat(feats).numpy(), likeness(base, b, structure=torch.cat(coarse))

def likeness(base_images, blend_images, D=None, device=None, structure=None):
    """Likeness of blend_images to base_images (uint8 [N, H, W, 3], pairs by index; see the module docstring).

    base_images: the images, or likeness_base(images, D, device) computed once for many blends (then D and
                 device here are not used: the prepared base's are);
    D:           a discriminator for the structural measure (e.g. the base network's); None: 16x16 greyscale;
    device:      where D runs (None: where D is);
    structure:   the blend images' structural features when already computed (features_and_likeness)."""
    base = base_images if isinstance(base_images, LikenessBase) else likeness_base(base_images, D, device)
    b = as_uint8_batch(blend_images)
    if len(base.images) != len(b):
        raise ValueError(f'likeness compares pairs: {len(base.images)} base images but {len(b)} blend images')
    structural = _structural(base.structure, base.embed(b) if structure is None else structure)
    found = sum(f is not None for f in base.faces) if base.faces is not None else 0
    if found == 0 or found < FACE_METHOD_SHARE * len(b):
        return Likeness(None, None, None, structural, 'structural', base.note)
    return Likeness(*_face_scores(base.faces, b), structural, 'faces', base.note)
