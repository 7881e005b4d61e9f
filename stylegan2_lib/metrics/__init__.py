"""Measurements for choosing a snapshot and a swap point: feature extractors, FID, KID, the copying score and
likeness to the base model.

    feats = inception()(images)                  # [N, 2048]; or discriminator_features(D) offline
    fid(feats_a, feats_b), kid(feats_a, feats_b)
    copying(gen_feats, train_feats)              # CopyScore: fraction, median_ratio, flagged, ...
    likeness(base_images, blend_images, D)       # Likeness: identity, landmark_error, face_rate, structural, score
    base = likeness_base(base_images, D)         # the base's faces and features once, then likeness(base, blend)

Images are uint8 numpy [N, H, W, 3] (what images.to_uint8 gives) or one [H, W, 3].
"""

from .features import (Features, discriminator_features, inception, inception_weights, read_inception_state,
                       pixel_features, pick_features, FEATURE_CHOICES, INCEPTION_URL, INCEPTION_FILE, INCEPTION_SHA256_PREFIX)
from .similarity import (Face, Likeness, LikenessBase, describe_faces, features_and_likeness, identity_similarity,
                         landmark_error, likeness, likeness_base, structural_similarity)
from .scores import CopyScore, copying, fid, kid

__all__ = [
    'Features', 'inception', 'inception_weights', 'read_inception_state', 'discriminator_features', 'pixel_features',
    'pick_features', 'FEATURE_CHOICES',
    'INCEPTION_URL', 'INCEPTION_FILE', 'INCEPTION_SHA256_PREFIX',
    'fid', 'kid', 'copying', 'CopyScore',
    'likeness', 'Likeness', 'likeness_base', 'LikenessBase', 'Face', 'describe_faces', 'identity_similarity', 'landmark_error', 'structural_similarity',
    'features_and_likeness',
]
