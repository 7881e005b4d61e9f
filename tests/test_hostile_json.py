"""The JSON files the library reads back (a run's scores.json, an aligned folder's faces.json): whatever they
hold, a ValueError naming the file (or, for the explorer's cache, the cache ignored), never another exception,
and nothing read past the size bound."""

import json

import numpy as np
import pytest

from stylegan2_lib import align, files
from stylegan2_lib.evaluate import Scores, load_scores
from stylegan2_lib.run_scores import cached_scores

HOSTILE = {
    'not json': b'\x00\xffnot json',
    'truncated': b'{"labels": ["a"',
    'a list': b'[1, 2, 3]',
    'deep': b'[' * 100000 + b']' * 100000,
    'wrong keys': b'{"x": 1}',
    'wrong types': json.dumps({'labels': 3, 'choices': 'x', 'style_kid': {'a': 1}, 'likeness': None}).encode(),
    'entry not a dict': json.dumps({'a.png': 5}).encode(),
    'bad quad': json.dumps({'a.png': {'photo': 'p.jpg', 'quad': [[1, 2]], 'photo_size': [4, 4]}}).encode(),
}


def good_scores():
    return Scores(labels=['s'], choices=[('all high', 0), ('all low', 8)], style_kid=np.array([[0.1, 0.2]]),
                  likeness=np.array([[0.3, 1.0]]), likeness_method='structural',
                  copying=[{'fraction': 0.0, 'median_ratio': 1.0, 'flagged': False}], features='pixels',
                  comparable=False, num_images=4, num_style=4, min_likeness=0.4)


@pytest.mark.parametrize('case', sorted(HOSTILE))
def test_scores_json(tmp_path, case):
    path = tmp_path / 'scores.json'
    path.write_bytes(HOSTILE[case])
    with pytest.raises(ValueError, match='scores.json'):
        load_scores(path)


@pytest.mark.parametrize('case', sorted(HOSTILE))
def test_faces_json(tmp_path, case):
    (tmp_path / align.FACES_FILE).write_bytes(HOSTILE[case])
    with pytest.raises(ValueError, match='faces.json'):
        align.read_face_transforms(tmp_path)


def test_oversized_json_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / 'scores.json'
    path.write_bytes(b' ' * 2048 + b'{}')
    monkeypatch.setattr(files, 'MAX_JSON_BYTES', 1024)
    monkeypatch.setattr(files.read_json_object, '__defaults__', (1024,))
    with pytest.raises(ValueError, match='too large'):
        load_scores(path)


def test_a_damaged_cache_is_ignored_and_a_good_one_read(tmp_path):
    class Views:
        labels, choices = ['s'], [('all high', 0), ('all low', 8)]
    good_scores().save(tmp_path / 'scores')
    assert cached_scores(tmp_path, Views()).labels == ['s']           # the round trip works
    (tmp_path / 'scores.json').write_bytes(HOSTILE['truncated'])
    with pytest.warns(UserWarning, match='ignoring the cached scores'):
        assert cached_scores(tmp_path, Views()) is None
