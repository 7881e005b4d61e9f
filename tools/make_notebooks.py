"""Write the notebooks in notebooks/ from the cell sources below (one place for the shared set-up cell,
badges and parameter conventions), so they stay small, consistent and reviewable as Python.

    python tools/make_notebooks.py           # (re)write notebooks/*.ipynb
    python tools/make_notebooks.py --check   # exit 1 if a committed notebook differs from what this writes

Conventions every notebook follows: an "Open in Colab" badge; a set-up cell that installs the library from
the repository unless it is already importable (Colab's torch is kept: the library asks for torch>=2.0
only), then reports the GPU; one cell tagged `parameters` (papermill) holding the knobs and `SMOKE = False`;
with SMOKE = True every notebook runs offline on the bundled demo pair and stylegan2_lib.samples (a photo
matplotlib ships, a dataset the demo pair draws) in a few minutes on a 2-core CPU, with nothing installed
beyond `pip install -e ".[align,anime,notebook,video]"` (tests/test_notebooks.py runs them so). Logic lives in the library; cells call it in a few lines.
"""

import argparse
import inspect
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
REPO = 'stylegan2-lib/stylegan2_lib'             # GitHub owner/name: the badges and the set-up cell use it
BRANCH = 'main'

# Notebooks that ask Colab for a GPU runtime (metadata); the others run well on a CPU runtime.
GPU_NOTEBOOKS = ('02_transfer_training.ipynb', '04_stylize_photo.ipynb', '05_one_shot.ipynb')

def install_requirement(repo, branch):
    """What the set-up cell pip-installs (this function's source is pasted into the cell): the library with
    the notebook extra (widgets, plots, ninja for the CUDA kernels, gdown for Drive links), the video extra
    (imageio-ffmpeg: MP4 rather than animated GIF), face alignment, drawn-face detection (anime) and the
    standard FID/KID features (metrics: torch-fidelity, over the runtime's own torchvision);
    where a dlib imports already (Colab ships one) the alignment extra without dlib-bin, which would replace it."""
    try:
        import dlib  # noqa: F401
        align = 'align-without-dlib'
    except ImportError:
        align = 'align'
    return f'stylegan2_lib[{align},anime,metrics,notebook,video] @ git+https://github.com/{repo}@{branch}'

SETUP = f'''\
# Set-up: install stylegan2_lib with its face-alignment, drawn-face, metrics, notebook and video extras, unless it
# is importable already (a local checkout: `pip install -e ".[align,anime,notebook,video]"`). Colab's torch and dlib are kept.
import importlib.util, subprocess, sys
{inspect.getsource(install_requirement).strip()}

if importlib.util.find_spec('stylegan2_lib') is None:
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', install_requirement({REPO!r}, {BRANCH!r})], check=True)
from pathlib import Path
import stylegan2_lib as sg
from stylegan2_lib import notebook as nb
print(nb.runtime_report())'''

def badge(name):
    url = f'https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/notebooks/{name}'
    return f'[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})'

def doc(page):
    """A markdown link to docs/<page> on GitHub (a relative link would not open from Colab)."""
    return f'[docs/{page}](https://github.com/{REPO}/blob/{BRANCH}/docs/{page})'

#----------------------------------------------------------------------------

NOTEBOOKS = {
'01_data_prep.ipynb': [
('md', '''# 1. Data preparation: images or film clips -> faces -> a training zip

Collect a few hundred images of the style you want (anime, cartoon, painted faces), or a few film clips, cut
the faces out the way the source network's training data was cut (FFHQ's alignment: eyes level, a quarter of
the crop apart; for drawn faces from AnimeFace's detector), look through them, leave out near-duplicates
(consecutive frames, re-uploads, mirrored copies: they make a small set look larger than it is and it overfits
sooner), and pack the zip that `02_transfer_training.ipynb` trains on. More in
''' + doc('data.md') + '''.

**Needs:** no GPU. About a second per photo for face alignment on Colab's CPU, a fraction of one per drawn face;
a few MB of disk per hundred 256x256 faces.'''),
('code', SETUP),
('params', '''\
SOURCE = 'upload'            # 'upload' (a file picker in the browser, Colab), a folder of images or of film clips
                             # (.mp4 .mkv .mov .webm ...; e.g. on Drive), or a zip of them: a path, a URL or a
                             # Google Drive share link
MOUNT_DRIVE = False          # mount Google Drive first, to read SOURCE from it / write OUT_ZIP to it
MODE = 'anime'               # 'anime': find drawn (anime / cartoon) faces and align them like FFHQ
                             # 'photo': find real faces and align them as FFHQ was made (photos, live-action film)
                             # 'crop':  the centred square of each image (faces already cropped; drawings that
                             #          the detector misses)
RESOLUTION = 256             # the resolution of the source network (256 for the NVlabs FFHQ transfer source)
ALLOW_UPSCALE = False        # keep faces smaller than RESOLUTION in their image (upscaled: blurry) instead of
                             # leaving them out
EVERY = 0.5                  # film clips: one frame every EVERY seconds
MAX_FRAMES = 300             # film clips: at most this many frames from each
FRAMES = 'data/frames'       # the frames sampled from the clips land here
FACES = 'data/faces'         # the cut-out faces land here: look through them and delete bad ones
DEDUPE = True                # leave near-duplicate faces out of the zip (one of each group is kept)
OUT_ZIP = 'data/style-256.zip'
SMOKE = False                # True: an offline run on a clip of two drawings the library ships (tests use it)'''),
('code', '''\
if SMOKE:   # offline and small: a 2-second clip of two shots, one of each drawing the library ships, at 64x64
    from stylegan2_lib import samples
    SOURCE, MODE, RESOLUTION = str(samples.drawn_clip('smoke/clips/drawn.mp4').parent), 'anime', 64
    FRAMES, FACES, OUT_ZIP = 'smoke/frames', 'smoke/faces', 'smoke/faces-64.zip'
drive = nb.mount_drive() if MOUNT_DRIVE else None      # then e.g. SOURCE = str(drive / 'anime')
if SOURCE == 'upload':
    nb.upload_files('data/uploaded')
    SOURCE = 'data/uploaded'
SOURCE = str(nb.input_path(SOURCE, unzip=True))        # a URL / Drive link is downloaded, a zip unpacked
'''),
('md', '## Film clips: sample frames\nSkipped when SOURCE holds no clips.'),
('code', '''\
from stylegan2_lib import frames
from stylegan2_lib.align import PHOTO_EXTENSIONS
clips = frames.videos_in(SOURCE)
if clips:
    sampled = frames.sample_frames(clips, FRAMES, every=EVERY, max_frames=MAX_FRAMES)
    for clip in sampled.clips:
        print(f'{Path(clip.video).name}: {clip.count} frames')
    images_too = [p for p in Path(SOURCE).rglob('*') if p.suffix.lower() in PHOTO_EXTENSIONS] if Path(SOURCE).is_dir() else []
    if images_too:
        print(f'note: the {len(images_too)} image(s) beside the clips in SOURCE are left out: the faces are cut from '
              f'the frames only (run the notebook again on a folder of the images)')
    SOURCE = FRAMES                                     # the faces are cut out of the frames
'''),
('md', '## Cut out the faces'),
('code', '''\
from stylegan2_lib.align import align_folder
result = align_folder(SOURCE, FACES, size=RESOLUTION, mode={'crop': 'centre'}.get(MODE, MODE), allow_upscale=ALLOW_UPSCALE)
print(f'{len(result.written)} faces written to {FACES}')
print(f'no face found in {len(result.faceless)} image(s): {", ".join(result.faceless[:20]) or "none"}')
print(f'{len(result.too_small)} face(s) smaller than {RESOLUTION} px left out: '
      + (", ".join(f["photo"] for f in result.too_small[:20]) or "none"))'''),
('code', '''\
from stylegan2_lib.data import load_image
nb.show(sg.make_grid([load_image(p, min(RESOLUTION, 128)) for p in result.written[:48]], cols=8))'''),
('md', '''## Look through them: near-duplicates, doubtful detections, a contact sheet
Each row of the first picture is one group of near-duplicates, the one kept first; the second shows the drawn
faces the detector was least sure of, lowest score first (false detections, such as a hand or a background
shape, end up there). Delete faces you do not want from FACES and re-run from here.'''),
('code', '''\
from stylegan2_lib import dedupe
scan = dedupe.scan(FACES)
print(dedupe.summary(scan))
groups, doubtful = dedupe.groups_sheet(scan), dedupe.lowest_scores_sheet(scan)
nb.show(groups if groups is not None else dedupe.contact_sheet(scan))
if doubtful is not None:
    nb.show(doubtful)'''),
('md', '## Pack the training zip\nRe-run this cell after deleting faces you do not want.'),
('code', '''\
scan = dedupe.scan(FACES, progress=False)
left_out = scan.duplicates if DEDUPE else []
written, skipped = sg.prepare_dataset(FACES, OUT_ZIP, RESOLUTION, exclude=left_out)
print(f'{OUT_ZIP}: {written} images ({len(left_out)} near-duplicates left out, {skipped} unreadable skipped).')
print(f'Next: 02_transfer_training.ipynb with DATA = {OUT_ZIP!r}')'''),
],

'02_transfer_training.ipynb': [
('md', '''# 2. Transfer training: fine-tune an FFHQ generator on your faces

Start from a pretrained real-face generator (NVlabs's FFHQ 256x256 transfer-learning network is
downloaded and checksum-checked, or use any checkpoint file) and fine-tune a copy on the zip from
`01_data_prep.ipynb`. Small sets overfit within tens of epochs, so a snapshot is kept every `SNAP` kimg and
scored (`METRICS`): KID / FID of its images to the training images, and whether it copies them. Samples, the
loss / augmentation curves and the scores over epochs update below while it trains, with the best snapshot so
far named: the lowest KID among the snapshots not flagged for copying (a snapshot that reproduces its training
images scores a good KID, so a flagged one is never picked). `03_blend_explorer.ipynb` lets you look at them.
After a Colab disconnect, run the notebook again: with `RESUME = True` it continues the newest run of the same
data in `OUTDIR` from its last snapshot, with the options it started with (`METRICS` included).

**Needs:** a GPU (Runtime > Change runtime type). NVlabs report 21.6-24.2 s/kimg at 256x256 on one V100, so
40 kimg is roughly 15 minutes there; expect a few times longer on a T4. Scoring a snapshot generates
`METRICS_IMAGES` images and embeds them (seconds on a GPU; the training images once per run). Disk: about
280 MB per 256x256 snapshot (G, D and G_ema in float32), so keep `OUTDIR` on Drive and `SNAP` not too small.'''),
('code', SETUP),
('params', '''\
SOURCE_NETWORK = 'ffhq256'   # 'ffhq256' / 'ffhq1024' (downloaded from NVlabs), a URL, a Google Drive share link,
                             # or a checkpoint file
SOURCE_SHA256 = None         # pin the sha256 of the file (the first download prints it and records it)
DATA = 'data/style-256.zip'  # from 01_data_prep.ipynb; or a URL / Google Drive share link of such a zip
OUTDIR = 'runs'              # on Drive (MOUNT_DRIVE) the snapshots survive a disconnect
MOUNT_DRIVE = False
RESUME = True                # continue the newest run of DATA in OUTDIR, if there is one
KIMG = 40                    # length in thousands of images shown (tens of epochs of a few hundred images)
SNAP = 4                     # a snapshot every SNAP kimg: the snapshot slider of the explorer
BATCH = 8
GAMMA = None                 # R1 weight, None = the NVlabs auto value for the resolution and batch
FREEZED = 0                  # FreezeD: freeze this many discriminator blocks (try 4 for very small sets)
MIRROR = True                # also train on left-right flipped images
WORKERS = 2                  # data-loading processes
METRICS = ['kid', 'copy']    # scored at every snapshot: any of 'kid', 'fid', 'copy' ([] for none)
METRICS_FEATURES = 'auto'    # 'auto': the standard Inception FID network when torch-fidelity imports (the set-up
                             # installs it; its weights download once, ~100 MB), else the source network's
                             # discriminator (offline; its numbers compare only with each other), or 'inception',
                             # 'discriminator', 'pixels'
METRICS_IMAGES = 500         # images generated per snapshot (and at most as many training images)
VIDEO_HOLD = 6               # the snapshots video: frames each snapshot is shown (12 a second)
SMOKE = False                # True: an offline run on the bundled 32x32 demo base (tests use it)'''),
('code', '''\
if SMOKE:   # offline and small: fine-tune the demo base on 32 images drawn by the demo's fine-tuned model
    from stylegan2_lib import samples
    from stylegan2_lib.assets import DEMO_BASE
    SOURCE_NETWORK, DATA, OUTDIR = str(DEMO_BASE), str(samples.demo_dataset('smoke/toon-32.zip')), 'smoke/runs'
    KIMG, SNAP, BATCH, WORKERS = 0.5, 0.25, 8, 0
    METRICS, METRICS_FEATURES, METRICS_IMAGES = ['kid', 'fid', 'copy'], 'pixels', 16   # the demo base has no D
    VIDEO_HOLD = 1
drive = nb.mount_drive() if MOUNT_DRIVE else None      # then e.g. OUTDIR = str(drive / 'stylegan2-runs')
source = nb.source_network(SOURCE_NETWORK, sha256=SOURCE_SHA256)
DATA = str(nb.input_path(DATA))                         # a URL / Drive link is downloaded (checksum pinned)
print(sg.ImageDataset(DATA, sg.load(source).G_ema.img_resolution))'''),
('md', '## Train (re-run after a disconnect to continue)'),
('code', '''\
from stylegan2_lib.train import latest_run
previous = latest_run(OUTDIR, Path(DATA).stem) if RESUME else None
print(f'continuing {previous}' if previous else f'a new run in {OUTDIR}, starting from {source.name}')
opts = sg.TrainOptions(data=DATA, outdir=OUTDIR, resume=str(previous or source), kimg=KIMG, snap=SNAP,
                       tick=min(1.0, SNAP / 2), batch=BATCH, gamma=GAMMA, freezed=FREEZED, mirror=MIRROR, workers=WORKERS,
                       metrics=METRICS, metrics_features=METRICS_FEATURES, metrics_images=METRICS_IMAGES)
run_dir = sg.train(opts, callback=nb.TrainingMonitor())'''),
('md', '''## The snapshots and their scores
KID and FID fall while the fine-tune learns the style; with a few hundred images they are noisy, so read the
trend. A snapshot flagged for copying (red cross) is closer to single training images than they are to each
other: its good KID is memorisation. The best snapshot: the lowest KID among those not flagged (circled).'''),
('code', '''\
from stylegan2_lib.train.state import read_metrics
print(nb.snapshot_table(run_dir))
nb.plot_metrics(read_metrics(run_dir), run_dir / 'metrics.png')
print(nb.best_snapshot_text(run_dir))
best = nb.best_snapshot(run_dir)
print(f'Next: 03_blend_explorer.ipynb with BASE = {str(source)!r} and RUN = {str(run_dir)!r}'
      + (f', and 04_stylize_photo.ipynb with STYLED = {str(best.path)!r}' if best and best.path else ''))'''),
('md', '''## The fine-tuning as a film
The same nine seeds through every snapshot, oldest first, each labelled: the style arrives, and where the faces
start to look like single training images, overfitting has begun. Written into the run (on Drive with it).'''),
('code', '''\
from stylegan2_lib import video
snapshots_video = video.snapshot_video(run_dir / 'snapshots.mp4', run_dir, seeds=range(9), hold=VIDEO_HOLD)
video.inline(snapshots_video)'''),
],

'03_blend_explorer.ipynb': [
('md', f'''# 3. Blend explorer: pick a swap resolution and a snapshot, download the stylizer

The low-resolution layers of one generator carry pose and face shape, the high-resolution layers colour
and texture. Slide the swap point ('all high' .. 'all low'), the fine-tuning snapshot, the blend width and
the truncation; 'compare swaps' shows every swap point at once. 'Export blend' writes the current blend
(NVlabs `.pkl`, rosinality `.pt` or safetensors) and downloads it. As a web app outside Colab:
`voila notebooks/03_blend_explorer.ipynb --VoilaConfiguration.file_allowlist="['.*\\.(png|pkl|pt|safetensors|mp4|gif)']"`
(the allowlist lets Voila serve the exported files).

**Choosing by measurement.** When the run was trained with `METRICS` (notebook 02) or has a `scores.json`, each
snapshot's label shows its KID (lower: closer to the style images) and 'copying' where it reproduces its
training images. The 'scores' view shows the heat map, snapshot x swap point, of the style KID (how far the
blend's images are from the style images) and the likeness (how much of the base's face survives), with the
current choice framed. 'Compute scores' measures every snapshot x swap point against the run's training
images (or `STYLE_DATA` if given): minutes on a CPU, cached in the run, where the next explorer finds them.
'Jump to recommended' sets the sliders to the recommended point: the most stylised blend whose likeness and
copying stay within stated thresholds. {doc('scores.md')} explains the numbers and their limits.

**Needs:** no GPU for a look: a slider move re-renders only what changed (about a third of a second for a new
swap point of a 64x64 network on a 2-core CPU, instant for one seen before; a 256x256 one does twice the work per
image, fine on a GPU). 'Compute scores' renders 64 images per snapshot x swap point and embeds them: about 5 s
per snapshot on a GPU at 256x256, minutes per snapshot on a CPU. Disk: one checkpoint per export: at 256x256
about 100 MB as safetensors (G_ema only), about 280 MB as NVlabs `.pkl` (their loader wants G, D and G_ema).'''),
('code', SETUP),
('params', '''\
BASE = 'ffhq256'             # the source network: a known name, a URL, a Google Drive link or a file (as in 02)
RUN = 'runs/00000-style-256' # a training run directory (all its snapshots), or a list of checkpoint files
STYLE_DATA = None            # the style images the scores compare with: a folder or zip (a path, URL or Drive link);
                             # None: the run's own training images (its options.json names them)
SEEDS = '0-3'
OUTDIR = 'exports'
MOUNT_DRIVE = False          # mount Google Drive and keep OUTDIR there (MyDrive/OUTDIR): it outlives the session
SWAP_FRAMES = 48             # the swap video: frames from all base to all fine-tuned (24 a second)
WALK_STEPS = 24              # the latent walk: frames from one seed to the next
SMOKE = False                # True: the bundled 32x32 demo pair, offline (tests use it)'''),
('code', '''\
score_options = None         # evaluate()'s defaults: Inception features where torch-fidelity is installed, 64 images a cell
if SMOKE:   # the bundled demo pair: demo-base and its fine-tuned copy demo-toon; the faces demo-toon draws as style
    from stylegan2_lib import samples
    from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON
    BASE, RUN, OUTDIR = str(DEMO_BASE), [str(DEMO_TOON)], 'smoke/exports'
    STYLE_DATA = str(samples.demo_dataset('smoke/toon-32.zip'))
    score_options = dict(features='pixels', seeds=range(8))      # offline and small: seconds, not minutes
    SWAP_FRAMES, WALK_STEPS = 8, 2
drive = nb.mount_drive() if MOUNT_DRIVE else None
OUTDIR = str(drive / OUTDIR) if drive is not None else OUTDIR
from stylegan2_lib.explorer import BlendExplorer
explorer = BlendExplorer(nb.source_network(BASE), RUN, seeds=SEEDS, outdir=OUTDIR,
                         style_data=None if STYLE_DATA is None else str(nb.input_path(STYLE_DATA)),
                         score_options=score_options)
explorer'''),
('md', '''## The scores as one figure
What the 'scores' view shows, for the run's cached scores (press 'Compute scores' above first; a SMOKE run
computes them here, as the button does).'''),
('code', '''\
if SMOKE:
    explorer.compute_scores(progress=False)
if explorer.scores is None:
    print('No scores yet: press Compute scores in the explorer above, then run this cell again.')
else:
    print(f'Recommended: {explorer.scores.recommendation_text()}')
    figure = explorer.scores.heatmap()
    sg.save_image(Path(OUTDIR) / 'scores.png', figure)
    nb.show(figure)'''),
('md', '## Every snapshot x every swap point, as one figure'),
('code', '''\
figure = explorer.views.epoch_swap_grid(seed=int(SEEDS.split('-')[0].split(',')[0]))
sg.save_image(Path(OUTDIR) / 'epoch-x-swap.png', figure)
nb.show(figure)'''),
('md', '## Export without the widget\nThe same as the button, for the explorer\'s current settings.'),
('code', '''\
path = explorer.export()
G = sg.load(path).G_ema           # read back: the file loads, in this library and in NVlabs's legacy loader
print(f'{path}: {path.stat().st_size / 2**20:.1f} MiB, a {G.img_resolution}x{G.img_resolution} generator')'''),
('md', '''## The chosen blend as videos
The swap video: the explorer's seeds with the swap point sliding from all base (first frame) to all fine-tuned
(last frame), a smooth blend, so you see which layers bring which part of the style. The latent walk: a path
through the seeds rendered by the chosen blend, the base beside it. Both are written next to the exports and
offered for download.'''),
('code', '''\
from IPython.display import HTML, display
from stylegan2_lib import video
v = explorer.state()
swap_path = video.swap_video(Path(OUTDIR) / 'swap.mp4', explorer.views.base, explorer.views.generator(v.snapshot),
                             seeds=v.seeds, frames=SWAP_FRAMES)
walk_path = video.interp_video(Path(OUTDIR) / 'walk.mp4', explorer.views.blended(v), seeds=v.seeds,
                               steps=WALK_STEPS, truncation_psi=v.truncation_psi, base=explorer.views.base)
for p in (swap_path, walk_path):
    display(video.inline(p), HTML(nb.offer_download(p)))'''),
],

'04_stylize_photo.ipynb': [
('md', '''# 4. Stylize a photo

Upload a photo: the face is aligned as FFHQ was made, projected into the base (real-face) generator, and the
projected latent is rendered with the blend of the base and your fine-tuned generator at every swap
resolution, as a strip. Under the strip: how much of the person each render keeps, as the identity similarity
of dlib's face descriptors to the aligned photo (1 the same face; above 0.5 dlib would call it the same
person; none where no face is found, as often on drawn faces). The swap point trades this likeness for style.
Then the whole photo: every face (`ALL_FACES`, a projection each) stylised and warped back into it through a
feathered mask of the face, its colours matched to the photo's at the seam.

**Needs:** a GPU for NVlabs's 1000 projection steps at 256x256 (a few minutes; far longer on a CPU). The
VGG16 perceptual distance downloads torchvision's VGG16 weights once (528 MB, checksum-checked);
`LOSS = 'discriminator'` uses the checkpoint's discriminator instead and needs no download.'''),
('code', SETUP),
('params', '''\
PHOTO = 'upload'             # 'upload' (a file picker in the browser), a path, a URL or a Google Drive share link
BASE = 'ffhq256'             # the real-face generator the photo is projected into (as in 02)
STYLED = 'runs/00000-style-256'  # the fine-tuned generator: a checkpoint, or a run directory (its newest snapshot)
STEPS = 1000                 # projection steps (the NVlabs default; 300 is a fair preview)
LOSS = 'vgg'                 # 'vgg' (LPIPS-style, downloads VGG16 once), 'discriminator', 'pixel' or 'auto'
W_PLUS = False               # one w per layer: a closer fit, less like the faces the generator makes itself
DEVICE = 'auto'              # 'auto' (the GPU when there is one, else the CPU), 'cuda' or 'cpu'
ALL_FACES = True             # stylize every face in the photo (False: the largest only)
FULL = None                  # the swap resolution pasted back into the whole photo (None: the middle of the strip)
MASK = 'hull'                # the pasted region: 'hull' of the face landmarks (with the forehead) or 'ellipse'
OUTDIR = 'stylized'
SMOKE = False                # True: a sample photo and the bundled 32x32 demo pair, offline (tests use it)'''),
('code', '''\
if SMOKE:   # offline and small: a sample photo, the demo pair, a short projection on pixels
    from stylegan2_lib import samples
    from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON
    PHOTO = str(samples.sample_photos('smoke/photos') / 'grace_hopper.jpg')
    BASE, STYLED, STEPS, LOSS, OUTDIR = str(DEMO_BASE), str(DEMO_TOON), 20, 'pixel', 'smoke/stylized'
PHOTO = str(nb.upload_files('photos')[0] if PHOTO == 'upload' else nb.input_path(PHOTO))
device = sg.default_device(DEVICE)       # the networks load straight onto it
print(f'photo work runs on {sg.describe_device(device)}')
base = sg.load(nb.source_network(BASE), device=device)
styled = sg.load(nb.fine_tuned(STYLED), device=device).G_ema'''),
('md', '## Align, project, render with every blend'),
('code', '''\
from stylegan2_lib.align import read_photo
result = sg.stylize(read_photo(PHOTO), base.G_ema, styled=styled, steps=STEPS, loss=LOSS, D=base.D, w_plus=W_PLUS,
                    device=device, all_faces=ALL_FACES, paste_back=True, mask=MASK)
print(f'projected on {result.device} with the {result.projection.method} distance')
for i, face in enumerate([result, *result.other_faces], 1):
    print(f'face {i}:')
    nb.show(face.strip)
    print(face.identity_text())'''),
('md', '## The whole photo, every face stylized'),
('code', '''\
labels = list(result.full)
label = f'swap {FULL}' if FULL else labels[len(labels) // 2]
print(f'{1 + len(result.other_faces)} face(s) stylized with {label} and pasted back')
nb.show(result.full[label])'''),
('md', '## Save and download'),
('code', '''\
import numpy as np
out = Path(OUTDIR)
for name, img in [('aligned.png', result.aligned), ('projected.png', result.projected), ('strip.png', result.strip),
                  ('full.png', result.full[label])]:
    sg.save_image(out / name, np.asarray(img))
sg.save_projected_w(out / 'projected_w.npz', result.projection.ws)
print(sorted(p.name for p in out.iterdir()))
from IPython.display import HTML
HTML(nb.offer_download(out / 'strip.png'))'''),
],

'05_one_shot.ipynb': [
('md', f'''# 5. One-shot stylisation: a stylizer from 1-5 style images in minutes

No dataset, no hours of training: upload one to five pictures of a style (drawn, painted or photographed
faces). Each is aligned as FFHQ was made (a real face, or a drawn one the drawn-face detector finds) or else
centre-cropped, and projected into the base generator, and a copy of the base is fine-tuned so that the picture's latents, with
their fine layers swapped for random ones, still draw the picture, compared in the frozen discriminator's
features (JoJoGAN's recipe, Chong & Forsyth 2022; {doc('oneshot.md')}). While it trains, the preview shows the
references' latents and three fixed samples through the network as it learns, beside the loss. The result is a
network like a fine-tuned snapshot: it is saved with what it was made from, opened in the blend explorer beside
the base, used to stylize a photo, and exported.

**Needs:** a GPU: a default run at 256x256 (100 projection steps per image, 300 fine-tuning steps) took 24 s on
an H200; expect a minute or two on Colab's GPU, about 7 minutes on a 2-core CPU. The loss needs the base's
discriminator: NVlabs's FFHQ file has one; a base without one (the bundled demo pair, in the SMOKE run) trains
against a seeded random discriminator, with a warning, and learns less. Stylizing the photo projects it as
notebook 04 does (the VGG16 distance downloads 528 MB of weights once, or `LOSS = 'discriminator'`). Disk:
about 100 MB per 256x256 one-shot network (safetensors, G_ema only), up to 280 MB per exported `.pkl`.'''),
('code', SETUP),
('params', '''\
STYLE = 'upload'             # 'upload' (a file picker in the browser: 1-5 images), an image, or a folder or zip of
                             # them: a path, a URL or a Google Drive share link
BASE = 'ffhq256'             # the generator to fine-tune, with its discriminator (as in 02)
STEPS = 300                  # fine-tuning steps (JoJoGAN's notebook: 300; its Replicate model: 200)
ALPHA = 1.0                  # style strength in [0, 1]: how far the fine layers move toward random ones
PRESERVE_COLOR = False       # True: samples keep their own colours (only structure and texture are learnt)
ALIGN = 'auto'               # 'auto': FFHQ alignment where a real face is found, else where a drawn face is,
                             # else the centre crop; 'face', 'anime', 'centre', or 'off' (images as they are)
PROJECT_STEPS = 100          # W+ projection steps per style image (a rough latent is enough)
PHOTO = 'upload'             # the photo to stylize: 'upload', a path, a URL or a Google Drive share link
PHOTO_STEPS = 300            # its projection steps (NVlabs: 1000)
LOSS = 'vgg'                 # its projection distance: 'vgg' (downloads VGG16 once), 'discriminator', 'pixel'
SEEDS = '0-3'                # the explorer's rows
OUTDIR = 'oneshot'
MOUNT_DRIVE = False          # mount Google Drive and keep OUTDIR there (MyDrive/OUTDIR): it outlives the session
DEVICE = 'auto'              # 'auto' (the GPU when there is one, else the CPU), 'cuda' or 'cpu'
SMOKE = False                # True: the bundled 32x32 demo pair and a sample photo, offline (tests use it)'''),
('code', '''\
if SMOKE:   # offline and small: the demo base learns one face the demo's fine-tuned model draws; a sample photo
    from stylegan2_lib import samples
    from stylegan2_lib.assets import DEMO_BASE, DEMO_TOON
    toon, STYLE = sg.load(DEMO_TOON).G_ema, 'smoke/style/demo-toon-5.png'
    sg.save_image(STYLE, sg.to_uint8(sg.generate_images(toon, [5], truncation_psi=0.7, progress=False))[0])
    PHOTO = str(samples.sample_photos('smoke/photos') / 'grace_hopper.jpg')
    BASE, STEPS, PROJECT_STEPS, PHOTO_STEPS, LOSS, OUTDIR = str(DEMO_BASE), 30, 20, 20, 'pixel', 'smoke/oneshot'
drive = nb.mount_drive() if MOUNT_DRIVE else None
OUTDIR = str(drive / OUTDIR) if drive is not None else OUTDIR
if STYLE == 'upload':
    nb.upload_files('style')
    STYLE = 'style'
style_files = nb.image_files(nb.input_path(STYLE, unzip=True), most=5)   # a URL / Drive link downloaded, a zip unpacked
print(f'{len(style_files)} style image(s): {", ".join(p.name for p in style_files)}')
device = sg.default_device(DEVICE)       # the networks load straight onto it
print(f'one-shot training runs on {sg.describe_device(device)}')
base = sg.load(nb.source_network(BASE), device=device)'''),
('md', '''## Train
The preview (the references' latents, then three fixed samples) and the loss curve update every 25 steps.
The bundled demo base holds no discriminator: the SMOKE run warns and trains against a seeded random one.'''),
('code', '''\
from stylegan2_lib.align import read_photo
from stylegan2_lib.oneshot import train_oneshot
r = train_oneshot(base.G_ema, base.D, [read_photo(p) for p in style_files], steps=STEPS, alpha=ALPHA,
                  preserve_color=PRESERVE_COLOR, align=ALIGN, project_steps=PROJECT_STEPS,
                  callback=nb.OneShotMonitor(STEPS), device=device)
print(f'references {", ".join(x["prepared"] for x in r.meta["oneshot"]["references"])}; projection '
      f'{r.seconds["projection"]:.1f} s, fine-tuning {r.seconds["training"]:.1f} s; loss {r.loss[0]:.4g} -> {r.loss[-1]:.4g}')'''),
('md', '''## Save it, and see it beside the base
The file records the recipe and the references (sha256 of their pixels). The figure: each reference and its
inversion in the base, then for a few seeds the base | its blends with the one-shot network at every swap
resolution | the one-shot network.'''),
('code', '''\
from stylegan2_lib.oneshot import oneshot_preview
path = Path(OUTDIR) / f'oneshot-{style_files[0].stem}.safetensors'
sg.save(path, G_ema=r.G, meta=r.meta)
preview = oneshot_preview(base.G_ema, r)
sg.save_image(path.with_suffix('.png'), preview)
nb.show(preview)
print(f'saved {path} ({path.stat().st_size / 2**20:.1f} MiB); next to it the preview, {path.with_suffix(".png").name}')'''),
('md', '''## The blend explorer on the result
The one-shot network is a snapshot like any: the base gives the layers up to the swap resolution (pose, face
shape), the one-shot network those above it (colour, texture): swap higher to keep more of the base's faces, lower
for more of the style. 'Export blend' writes and downloads the blend shown.'''),
('code', '''\
from stylegan2_lib.explorer import BlendExplorer
explorer = BlendExplorer(nb.source_network(BASE), [str(path)], seeds=SEEDS, outdir=OUTDIR)
explorer'''),
('md', '''## Stylize a photo
As notebook 04, with the one-shot network as the styled one: the photo aligned, projected into the base, and
rendered with the blend at every swap resolution; under the strip, how much of the person each render keeps.'''),
('code', '''\
PHOTO = str(nb.upload_files('photos')[0] if PHOTO == 'upload' else nb.input_path(PHOTO))
result = sg.stylize(read_photo(PHOTO), base.G_ema, styled=r.G, steps=PHOTO_STEPS, loss=LOSS, D=base.D, device=device)
sg.save_image(Path(OUTDIR) / 'strip.png', result.strip)
nb.show(result.strip)
print(result.identity_text())'''),
('md', '''## Export and download
The explorer's current blend (as its button does, in the format its menu shows: NVlabs `.pkl` by default), then
the one-shot network itself (safetensors, with its recipe).'''),
('code', '''\
blend_path = explorer.export()
print(f'{blend_path}: {blend_path.stat().st_size / 2**20:.1f} MiB')
from IPython.display import HTML
HTML(nb.offer_download(path))'''),
],
}

#----------------------------------------------------------------------------

def build(name, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'},
                   'language_info': {'name': 'python'}, 'colab': {'provenance': []}}
    if name in GPU_NOTEBOOKS:                     # Colab opens these on a GPU runtime (T4: the free one)
        nb.metadata['accelerator'] = 'GPU'
        nb.metadata['colab']['gpuType'] = 'T4'
    nb.cells.append(nbformat.v4.new_markdown_cell(badge(name)))
    for kind, source in cells:
        if kind == 'md':
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            cell = nbformat.v4.new_code_cell(source.rstrip())
            if kind == 'params':
                cell.metadata['tags'] = ['parameters']
            nb.cells.append(cell)
    for i, cell in enumerate(nb.cells):          # stable ids, so a rewrite changes nothing unless a cell did
        cell['id'] = f'{Path(name).stem[:2]}-cell-{i:02d}'
    return nbformat.writes(nb) + '\n'

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--check', action='store_true', help='compare with the committed notebooks, write nothing')
    args = parser.parse_args()
    stale = []
    for name, cells in NOTEBOOKS.items():
        path, text = ROOT / 'notebooks' / name, build(name, cells)
        if args.check:
            stale += [name] if not path.exists() or path.read_text() != text else []
        else:
            path.write_text(text)
    if stale:
        print(f'out of date (run python tools/make_notebooks.py): {", ".join(stale)}', file=sys.stderr)
        return 1
    return 0

if __name__ == '__main__':
    sys.exit(main())
