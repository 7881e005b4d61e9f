"""stylegan2_lib.samples: the offline inputs of first tries, SMOKE runs and tests. They need nothing beyond
the align and notebook extras (no scikit-image), and are what they say: photos with one face each, a
training zip of the demo's cartoon faces."""

import sys

import numpy as np
import pytest
from PIL import Image

import stylegan2_lib as sg
from stylegan2_lib import samples

pytest.importorskip('matplotlib', reason='the sample photo comes with matplotlib (the notebook extra)')


def test_sample_photos_need_no_scikit_image(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'skimage', None)                  # `import skimage` fails from here on
    folder = samples.sample_photos(tmp_path / 'photos')
    assert sorted(p.name for p in folder.iterdir()) == ['grace_hopper-mirrored.jpg', 'grace_hopper.jpg']
    photo, mirrored = (np.asarray(Image.open(folder / n).convert('RGB'), np.float32)
                       for n in ('grace_hopper.jpg', 'grace_hopper-mirrored.jpg'))
    assert photo.shape == (600, 512, 3) and np.abs(photo[:, ::-1] - mirrored).mean() < 3      # (JPEG's error)
    assert np.array_equal(np.asarray(samples.grace_hopper()), photo.astype(np.uint8))


def test_each_sample_photo_has_one_face(tmp_path):
    pytest.importorskip('dlib', reason='alignment needs the [align] extra')
    from stylegan2_lib.align import align_folder
    result = align_folder(samples.sample_photos(tmp_path / 'photos'), tmp_path / 'faces', size=64, progress=False)
    assert sorted(p.name for p in result.written) == ['grace_hopper-mirrored_00.png', 'grace_hopper_00.png']
    assert result.faceless == []


def test_demo_dataset_is_a_training_zip_of_the_demo_faces(tmp_path):
    path = samples.demo_dataset(tmp_path / 'toon.zip', count=5, seed=7)
    data = sg.ImageDataset(path, None)
    assert path == tmp_path / 'toon.zip' and len(data) == 5 and data.resolution == 32
    assert len({data[i].sum().item() for i in range(5)}) == 5                          # five different faces
