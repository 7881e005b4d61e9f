"""Imports point one way (DESIGN.md): ops <- layers <- networks <- checkpoints <- summary/cli.
A module may import only from its own layer or the layers below it; importing never compiles or
loads anything (no import-time side effects)."""

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / 'stylegan2_lib'

# The layers, as the README's "Imports point one way" paragraph lists them (test_readme_lists_the_layers).
LAYERS = {
    'ops': 0, 'netconfig': 0, 'files': 0, 'assets': 0, 'devices': 0, 'downloads': 0, 'anime_detect': 0,
    'layers': 1, 'images': 1, 'data': 1, 'dedupe': 1, 'frames': 1, 'align': 1, 'figures': 1,
    'generator': 2,
    'discriminator': 3,
    'checkpoints': 4, 'blend': 4, 'perceptual': 4,
    'project': 5, 'train': 5, 'summary': 5, 'blend_views': 5, 'notebook': 5, 'cli_common': 5, 'samples': 5, 'metrics': 5,
    'stylize': 6, 'cli_photo': 6, 'doctor': 6, 'explorer': 6, 'cli': 6, 'evaluate': 6, 'run_scores': 6, 'oneshot': 6,
    'video': 6, 'cli_video': 6, 'cli_frames': 6,
    '__main__': 7,
    '__init__': 8,
}


def _top(module_path):
    rel = module_path.relative_to(PKG)
    return rel.parts[0].removesuffix('.py')


def _imported_tops(path):
    return _imports(path.read_text(), path.relative_to(PKG).parts)


def _imports(source, here):
    """(top-level module, line) of every package import in `source`, the file at `here` (its path parts)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = list(here[:-1])[: len(here) - node.level] if node.level > 1 else list(here[:-1])
            target = base + (node.module.split('.') if node.module else [])
            if not target:  # `from . import a, b` at the package root: every name is a module
                for alias in node.names:
                    yield alias.name, node.lineno
                continue
            yield target[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('stylegan2_lib.'):
            yield node.module.split('.')[1], node.lineno


def test_every_module_is_in_a_layer():
    tops = {_top(p) for p in PKG.rglob('*.py')}
    assert tops <= set(LAYERS), sorted(tops - set(LAYERS))


def test_imports_point_down():
    wrong = []
    for path in PKG.rglob('*.py'):
        mine = LAYERS[_top(path)]
        for target, line in _imported_tops(path):
            if target in LAYERS and LAYERS[target] > mine:
                wrong.append(f'{path.relative_to(PKG)}:{line} imports {target}')
    assert wrong == []


def test_import_has_no_side_effects():
    code = ('import torch; before = (torch.get_default_dtype(), torch.get_num_threads()); '
            'import stylegan2_lib, sys; '
            'assert (torch.get_default_dtype(), torch.get_num_threads()) == before; '
            "assert not any(m.startswith('torch.utils.cpp_extension') for m in sys.modules if m not in ()), 'compiled at import'")
    subprocess.run([sys.executable, '-c', code], check=True, cwd=PKG.parent)


def test_readme_lists_the_layers():
    text = (PKG.parent / 'README.md').read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith('Layers, lowest first:'))
    listed = {}
    for level, group in enumerate(line.split(':', 1)[1].rstrip('.').split(';')):
        for name in group.split(','):
            listed[name.strip().strip('`')] = level
    assert listed == LAYERS


def test_every_name_of_a_package_import_is_checked():
    # `from . import a, b` must yield b too (it once yielded a alone).
    assert [n for n, _ in _imports('from . import images, checkpoints', ('cli.py',))] == ['images', 'checkpoints']
    assert [n for n, _ in _imports('from .. import files, layers', ('train', 'loop.py'))] == ['files', 'layers']
    assert [n for n, _ in _imports('from .common import x', ('ops', 'fast_modconv.py'))] == ['ops']
