"""The explorer in a real browser: 03_blend_explorer.ipynb (SMOKE = True injected) served by Voila on
localhost, driven by Playwright in Debian's Chromium. Moving the swap slider must change the blended image
the page shows, and 'Export blend' must offer a link that downloads the file it wrote. A screenshot is kept in test-artifacts/ (or $STYLEGAN2_LIB_ARTIFACTS).

Skipped when chromium, voila or playwright are missing, unless STYLEGAN2_LIB_REQUIRE_BROWSER=1 (as .ci/run
sets, after installing them): then their absence is a failure."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urljoin
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', '--no-first-run', '--disable-quic']
REQUIRED = os.environ.get('STYLEGAN2_LIB_REQUIRE_BROWSER') == '1'


def need(ok, what):
    if not ok:
        if REQUIRED:
            pytest.fail(f'{what} (STYLEGAN2_LIB_REQUIRE_BROWSER=1)')
        pytest.skip(what)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def voila_page(tmp_path):
    """URL of the explorer notebook rendered by a Voila server of this Python, with its own kernelspec."""
    need(os.path.exists(CHROMIUM), f'no chromium at {CHROMIUM} (apt-get install chromium)')
    for module in ('voila', 'playwright'):
        need(__import__('importlib').util.find_spec(module) is not None, f'{module} is not installed')
    import nbformat
    kernels = tmp_path / 'jupyter' / 'kernels' / 'sg-browser'
    kernels.mkdir(parents=True)
    (kernels / 'kernel.json').write_text(json.dumps({'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
                                                     'display_name': 'sg', 'language': 'python'}))
    nb = nbformat.read(ROOT / 'notebooks' / '03_blend_explorer.ipynb', as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if 'parameters' in c.metadata.get('tags', []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell('SMOKE = True'))         # as papermill injects it
    nb.metadata['kernelspec'] = {'name': 'sg-browser', 'display_name': 'sg', 'language': 'python'}
    work = tmp_path / 'work'
    work.mkdir()
    nbformat.write(nb, work / 'explorer.ipynb')
    port = free_port()
    env = dict(os.environ, JUPYTER_PATH=str(tmp_path / 'jupyter'), JUPYTER_RUNTIME_DIR=str(tmp_path / 'runtime'))
    log = open(tmp_path / 'voila.log', 'w')
    from stylegan2_lib.notebook import VOILA_ALLOWLIST
    server = subprocess.Popen([sys.executable, '-m', 'voila', 'explorer.ipynb', f'--port={port}', '--no-browser',
                               '--Voila.ip=127.0.0.1', f'--VoilaConfiguration.file_allowlist={VOILA_ALLOWLIST}'],
                              cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}/'
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(url + 'api', timeout=2)
                break
            except OSError as e:
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f'voila did not start: {e}\n' + (tmp_path / 'voila.log').read_text()[-3000:]) from None
                if getattr(e, 'code', None):              # an HTTP error means the server is up
                    break
                time.sleep(0.5)
        yield url, work
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_swap_slider_changes_the_shown_blend_and_export_downloads_it(voila_page):
    url, work = voila_page
    from playwright.sync_api import sync_playwright
    artifacts = Path(os.environ.get('STYLEGAN2_LIB_ARTIFACTS', ROOT / 'test-artifacts'))
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={'width': 1200, 'height': 900})
            page.goto(url, timeout=120_000)
            blend = page.locator('.sg-image-blend')
            blend.wait_for(state='visible', timeout=120_000)
            page.wait_for_function("document.querySelector('.sg-image-blend').naturalWidth > 0", timeout=60_000)
            before = blend.screenshot()
            label_before = page.locator('.sg-swap .widget-readout').inner_text()

            handle = page.locator('.sg-swap .noUi-handle')              # ipywidgets 8 sliders are noUiSliders
            handle.focus()
            page.keyboard.press('ArrowLeft')                              # one step: swap at 16 -> 8
            page.wait_for_function(f"document.querySelector('.sg-swap .widget-readout').innerText.trim() != {label_before.strip()!r}",
                                   timeout=30_000)
            label_after = page.locator('.sg-swap .widget-readout').inner_text()
            deadline = time.time() + 60
            while (after := blend.screenshot()) == before and time.time() < deadline:
                time.sleep(0.25)
            page.screenshot(path=str(artifacts / 'explorer-voila.png'), full_page=True)

            # Export the blend now shown (swap at 8) and follow the link the page offers.
            page.get_by_role('button', name='Export blend').click()
            link = page.locator('a[download="blend-demo-toon-swap8.pkl"]')
            link.wait_for(timeout=60_000)
            response = page.request.get(urljoin(url, link.get_attribute('href')))
            downloaded = response.body() if response.ok else None
        finally:
            browser.close()
    assert (label_before.strip(), label_after.strip()) == ('16', '8')
    assert after != before, 'the blended image did not change after the swap slider moved'
    assert downloaded == (work / 'smoke' / 'exports' / 'blend-demo-toon-swap8.pkl').read_bytes()
