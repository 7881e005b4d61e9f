"""Scores of a training run at every snapshot (`--metrics kid,fid,copy`): the snapshot's G_ema against the training
images, so the user sees when the fine-tune starts to copy its small training set instead of guessing.

    kid, fid          KID (NVlabs's kernel_inception_distance) and FID of `metrics_images` images of G_ema (seeds
                      0.., truncation 1: the same latents at every snapshot) to as many training images
    copy_fraction     metrics.copying: the share of generated images closer to one training image than that image
    copy_flagged      is to any other; flagged when the snapshot copies (see metrics.copying)

Features (metrics.pick_features): the standard Inception FID network ('inception', downloaded once), or offline the discriminator of the
network the run started from (the file given as --resume, before any training: one fixed feature space for
every snapshot), or small downsampled pixels when neither exists. 'auto' takes the first that works and the log
names it. With a few hundred training images KID and FID are noisy (docs/scores.md); the trend over snapshots is
what to read. Nothing here draws from torch's random generator, so a resumed run stays bitwise the same.
"""

import time

from .. import images, metrics
from ..checkpoints import load
from .options import TrainingError

KNOWN = ('kid', 'fid', 'copy')


def check_names(names):
    unknown = sorted(set(names) - set(KNOWN))
    if unknown:
        raise TrainingError(f'--metrics: unknown {", ".join(unknown)} (known: {", ".join(KNOWN)})')


class SnapshotMetrics:
    """Called with G_ema at every snapshot; the training images' features are computed once, on first use."""

    def __init__(self, opts, dataset, device):
        check_names(opts.metrics)
        self.names, self.opts, self.dataset, self.device = tuple(opts.metrics), opts, dataset, device
        self.extractor, self.train_feats = None, None

    def _source_D(self):
        source = self.opts.resume
        if source is None:
            return None
        try:
            return load(source).D
        except Exception:                   # noqa: BLE001 (a run directory, or a file gone since): no offline D
            return None

    def _prepare(self):
        reals = self.dataset.uint8_images(self.opts.metrics_images)
        self.extractor = metrics.pick_features(self.opts.metrics_features, self._source_D(), self.device)
        self.train_feats = self.extractor(reals)

    def __call__(self, G_ema):
        t = time.time()
        if self.extractor is None:
            self._prepare()
        fake = images.to_uint8(images.generate_images(G_ema, range(self.opts.metrics_images), truncation_psi=1.0,
                                                      progress=False))
        feats = self.extractor(fake)
        out = {}
        if 'kid' in self.names:
            out['kid'] = metrics.kid(feats, self.train_feats)
        if 'fid' in self.names:
            out['fid'] = metrics.fid(feats, self.train_feats)
        if 'copy' in self.names:
            copy = metrics.copying(feats, self.train_feats)
            out['copy_fraction'], out['copy_flagged'] = float(copy.fraction), bool(copy.flagged)
        out['metrics_features'] = self.extractor.name
        out['metrics_sec'] = time.time() - t
        return out

