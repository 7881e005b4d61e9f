"""Drawn (anime / cartoon) face detection: AnimeFace 2009's detector (nvxs 1.0.2 by nagadomi, NYSL licence), the
library the `animeface` wheel ships (`pip install "stylegan2_lib[anime]"`; Apache-2.0 wrapper, about 3 MB,
offline: its neural networks are compiled into the library). Each face comes with its detector score
(likelihood), its box and the boxes of both eyes, the mouth, and the nose and chin points: what the drawn-face
alignment (align.drawn_quad) needs.

The library is called here through ctypes with numpy pixel buffers, not through `animeface.detect`: that
function's extension reads Pillow's internal image struct with the layout of Pillow 4 to 11, and with Pillow 12
or newer it silently finds no face at all. The calls and parameters are those of animeface's own binding
(`_nvxs.c`): grey image, 5x5 Gaussian, Laplacian edges, both integral images, then `nv_face_detect` with a 4 px
step, a 1.095 scale factor and a 42.592 px smallest window.
"""

import ctypes
import dataclasses
import importlib.metadata
import threading

import numpy as np

MIN_FACE = 42.592               # px: the detector's smallest window; smaller faces are never found
MAX_SIDE = 1600                 # px: larger images are shrunk for detection (memory ~ 40 bytes per pixel there)
# nv_face_detect keeps at most 8192 candidate windows (NV_FACE_DETECT_MAX_CANDIDATES in nv_face_detect.c), sorts them
# by area, SMALLEST first, and turns only the first `maxface` into faces: a smaller maxface silently drops the largest
# faces of a busy image (a page of small faces and one big one). With maxface = 8192 nothing is cut, and the library
# never writes more than min(candidates, maxface) entries into our array (8192 x 100 bytes, on the heap).
_MAX_FACES = 8192

class DetectorUnavailable(ImportError):
    """The animeface wheel (its nvxs library) is not installed or not usable on this machine."""

#----------------------------------------------------------------------------
# The C structures the library's API uses (nv_core_matrix.h, nv_core_util.h, nv_face_detect.h of nvxs 1.0.2).

class _Matrix(ctypes.Structure):
    _fields_ = [('list', ctypes.c_int), ('list_step', ctypes.c_uint), ('n', ctypes.c_int), ('m', ctypes.c_int),
                ('rows', ctypes.c_int), ('cols', ctypes.c_int), ('step', ctypes.c_int), ('alias', ctypes.c_int),
                ('v', ctypes.POINTER(ctypes.c_float))]

class _Rect(ctypes.Structure):
    _fields_ = [('x', ctypes.c_int), ('y', ctypes.c_int), ('width', ctypes.c_int), ('height', ctypes.c_int)]

class _FacePosition(ctypes.Structure):
    _fields_ = [('likelihood', ctypes.c_float), ('face', _Rect), ('left_eye', _Rect), ('right_eye', _Rect),
                ('nose', _Rect), ('mouth', _Rect), ('chin', _Rect)]

_MatrixP = ctypes.POINTER(_Matrix)

def _library_path():
    try:
        dist = importlib.metadata.distribution('animeface')
    except importlib.metadata.PackageNotFoundError:
        raise DetectorUnavailable('drawn-face detection needs the animeface wheel: pip install "stylegan2_lib[anime]" '
                                  '(or animeface)') from None
    if not dist.version.startswith('2.'):
        raise DetectorUnavailable(f'animeface {dist.version} is installed; the drawn-face detector is written for the '
                                  f'nvxs 1.0.2 library of animeface 2.x: pip install "animeface>=2,<3"')
    libs = [f for f in dist.files or [] if f.name.startswith('libnvxs') and ('.so' in f.name or f.name.endswith('.dylib'))]
    if not libs:
        raise DetectorUnavailable('the animeface wheel installed here carries no nvxs library (a source build links '
                                  'the system one): install a prebuilt animeface wheel (they exist for Linux x86-64 and macOS arm64)')
    return str(dist.locate_file(sorted(libs, key=lambda f: len(f.name))[-1]))

_LIB = None
# One detection at a time. nvxs 1.0.2 keeps no mutable statics (its MLPs are read only, nv_face_detect's buffers are
# local), but a build with OpenMP (the Linux wheel has none) runs omp_get_num_procs() threads per call whatever
# OMP_NUM_THREADS says (nv_face_detect.c): concurrent calls would multiply them. ctypes releases the GIL meanwhile.
_LOCK = threading.Lock()

def _library():
    global _LIB
    if _LIB is None:
        lib = ctypes.CDLL(_library_path())
        lib.nv_matrix3d_alloc.restype = _MatrixP
        lib.nv_matrix3d_alloc.argtypes = [ctypes.c_int] * 3
        lib.nv_matrix_zero.argtypes = [_MatrixP]
        lib.nv_matrix_free.argtypes = [ctypes.POINTER(_MatrixP)]
        lib.nv_gray.argtypes = [_MatrixP, _MatrixP]
        lib.nv_gaussian5x5.argtypes = [_MatrixP, ctypes.c_int, _MatrixP, ctypes.c_int]
        lib.nv_laplacian1.argtypes = [_MatrixP, _MatrixP, ctypes.c_float]
        lib.nv_integral.argtypes = [_MatrixP, _MatrixP, ctypes.c_int]
        lib.nv_face_detect.restype = ctypes.c_int
        lib.nv_face_detect.argtypes = [ctypes.POINTER(_FacePosition), ctypes.c_int, _MatrixP, _MatrixP,
                                       ctypes.POINTER(_Rect), ctypes.c_void_p, ctypes.c_void_p,
                                       ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_void_p,
                                       ctypes.c_float, ctypes.c_float, ctypes.c_float]
        _LIB = lib
    return _LIB

def available():
    """'' when drawn-face detection can run here, else the reason it cannot."""
    try:
        _library()
    except (DetectorUnavailable, OSError) as e:
        return str(e)
    return ''

#----------------------------------------------------------------------------

@dataclasses.dataclass
class DrawnFace:
    """One detected drawn face, in the pixel coordinates of the image given to detect() (pixel i's centre at i,
    as dlib's landmarks). eye_left is the eye on the image's left (the character's right eye)."""
    likelihood: float           # the detector's score, 0..1
    box:        np.ndarray      # [4]: x, y, width, height of the face
    eye_left:   np.ndarray      # [2]: centre of the eye box on the image's left
    eye_right:  np.ndarray      # [2]
    mouth:      np.ndarray      # [2]: centre of the mouth box
    nose:       np.ndarray      # [2]
    chin:       np.ndarray      # [2]

    @property
    def size(self):
        """The face box's side in pixels (the box is square)."""
        return float(max(self.box[2], self.box[3]))

    def to_dict(self):
        return {k: (float(v) if k == 'likelihood' else np.asarray(v).tolist()) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d):
        return cls(float(d['likelihood']), *(np.asarray(d[k], np.float64).reshape(n) for k, n in
                                             [('box', 4), ('eye_left', 2), ('eye_right', 2), ('mouth', 2), ('nose', 2), ('chin', 2)]))

def _centre(r):
    return np.array([r.x + (r.width - 1) / 2, r.y + (r.height - 1) / 2], np.float64)

def _matrix(lib, mats, channels, rows, cols):
    """A zeroed matrix, appended to `mats` (freed by the caller on every path). nv_matrix_alloc (nv_core_matrix.c)
    lays rows * cols vectors of `step` = n floats (no padding: its SSE2 padding is commented out) and computes the
    byte size in an int: fine for MAX_SIDE, but it must never be asked for more than 2**31 bytes (it would wrap and
    then be written past); nv_matrix3d_alloc dereferences a failed malloc, so sizes stay bounded by MAX_SIDE here."""
    m = lib.nv_matrix3d_alloc(channels, rows, cols)
    if not m:
        raise MemoryError(f'nvxs could not allocate a {channels} x {rows} x {cols} matrix')
    mats.append(m)
    if m.contents.rows != rows or m.contents.cols != cols or m.contents.n != channels or m.contents.step != channels:
        raise DetectorUnavailable('the nvxs library does not lay out its matrices as version 1.0.2 does')
    lib.nv_matrix_zero(m)
    return m

def _pixels(m):
    """A numpy view [rows, cols, step] of a matrix's float buffer."""
    c = m.contents
    return np.ctypeslib.as_array(c.v, shape=(c.rows, c.cols, c.step))

def _detection_image(image):
    """(PIL RGB image of at most MAX_SIDE px, the scale [x, y] from it back to `image`)."""
    from PIL import Image
    if isinstance(image, Image.Image):
        img = image
        if img.mode == 'I' or img.mode.startswith('I;16'):
            # 16-bit (as data.to_rgb): PIL's own conversion clips at 255, which turns the drawing white.
            img = Image.fromarray(np.clip(np.rint(np.asarray(img, np.float64) / 257.0), 0, 255).astype(np.uint8), 'L')
    else:
        a = np.asarray(image)
        if a.dtype != np.uint8:     # NaN / inf / out-of-range floats have no defined cast to uint8
            a = np.clip(np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0), 0, 255).astype(np.uint8)
        img = Image.fromarray(a)    # shares the array's memory
    scale = max(img.size) / MAX_SIDE
    if scale <= 1:
        return img.convert('RGB'), np.ones(2)
    if img.mode not in ('RGB', 'L'):
        img = img.convert('RGB')
    # Shrunk before any full-size RGB copy: an 8000 x 6000 photo costs no second 144 MB buffer.
    full = np.array(img.size, np.float64)
    img = img.resize((max(round(img.size[0] / scale), 1), max(round(img.size[1] / scale), 1)), Image.BILINEAR)
    return img.convert('RGB'), full / img.size          # per axis: the sizes were rounded separately

def detect(image):
    """Every drawn face the detector finds in an RGB image (PIL image of any mode, or uint8 [H, W, 3] array),
    largest first, as DrawnFace. Images larger than MAX_SIDE are shrunk for detection and the results scaled back."""
    img, scale = _detection_image(image)
    a = np.asarray(img, np.float32)
    rows, cols = a.shape[:2]
    if min(rows, cols) < MIN_FACE:
        return []
    lib = _library()
    with _LOCK:
        mats = []
        try:
            bgr, gray, smooth, edge = (_matrix(lib, mats, n, rows, cols) for n in (3, 1, 1, 1))
            gray_sum, edge_sum = (_matrix(lib, mats, 1, rows + 1, cols + 1) for _ in range(2))
            _pixels(bgr)[...] = a[..., ::-1]                          # nvxs keeps colour as B, G, R
            lib.nv_gray(gray, bgr)
            lib.nv_gaussian5x5(smooth, 0, gray, 0)
            lib.nv_laplacian1(edge, smooth, 4.0)
            lib.nv_integral(gray_sum, gray, 0)
            lib.nv_integral(edge_sum, edge, 0)
            found = (_FacePosition * _MAX_FACES)()
            size = _Rect(0, 0, cols, rows)
            addr = lambda name: ctypes.addressof(ctypes.c_char.in_dll(lib, name))
            bagging = (ctypes.c_void_p * 3)(addr('nv_face_mlp_face_01'), addr('nv_face_mlp_face_02'), None)
            count = lib.nv_face_detect(found, _MAX_FACES, gray_sum, edge_sum, ctypes.byref(size),
                                       addr('nv_face_mlp_dir'), addr('nv_face_mlp_face_00'), bagging, 2,
                                       addr('nv_face_mlp_parts'), 4.0, 1.095, MIN_FACE)
        finally:
            for m in mats:
                lib.nv_matrix_free(ctypes.byref(m))
    px = lambda p: (np.asarray(p, np.float64) + 0.5) * scale - 0.5                # detection pixels -> image pixels
    faces = []
    for f in found[:max(0, min(count, _MAX_FACES))]:
        # the box spans pixels x .. x + w - 1, edges x - 0.5 and x + w - 0.5: mapped edge to edge, it starts at x * scale
        box = np.array([f.face.x, f.face.y, f.face.width, f.face.height], np.float64) * np.tile(scale, 2)
        # nvxs's left/right are the character's: its left eye lies on the image's right.
        # The nose and chin are points, reported as boxes of side d/16 around them (nv_face_detect.c: x = x1 +
        # d * (p - 1/32)): their centres, not their corners (animeface's binding reports the corner, d/32 up-left).
        faces.append(DrawnFace(float(f.likelihood), box, px(_centre(f.right_eye)), px(_centre(f.left_eye)),
                               px(_centre(f.mouth)), px(_centre(f.nose)), px(_centre(f.chin))))
    return sorted(faces, key=lambda d: -d.size)
