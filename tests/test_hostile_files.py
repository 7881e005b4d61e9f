"""Issue 14's contract for sg.load, whatever the bytes: a Checkpoint or a one-line CheckpointError naming the file;
never a crash, a hang, a memory blow-up, a payload run, a change to numpy, or NaN/inf weights loaded silently.

Every file is loaded in a child process (tests/hostile_corpus.py: a 20 s wall-clock limit, the address space
capped at what the child maps after its imports plus 1 GiB), so a SIGSEGV or a hang fails its own case, not
pytest. The corpus has a case per root cause of the issue and per format; the fuzz tests load seeded mutants of
the reference files and of small files of every format. NaN/inf weights (expect 'nonfinite') may be refused
with a CheckpointError or loaded with a stylegan2_lib.checkpoints.NonFiniteWeightsWarning naming the tensor.
The longer fuzz run for releases: python tools/fuzz_loaders.py --n 5000.
"""

import os
import subprocess
import sys

import pytest

import hostile_corpus as hc

TIMEOUT = 20
MEM_GIB = 1.0
FUZZ_PER_SOURCE = int(os.environ.get('HOSTILE_FUZZ_N', 40))
FUZZ_SEED = int(os.environ.get('HOSTILE_FUZZ_SEED', 14))
CONTROLS = ('tiny32-nvlabs', 'rosi32-zip', 'small-tf', 'small-rosinality-legacy', 'small-native')


def _selected(request, fixture):
    return [item.callspec.params for item in request.session.items
            if fixture in getattr(item, 'fixturenames', ()) and hasattr(item, 'callspec')]


def _run(jobs, tmp):
    return hc.run_jobs(jobs, timeout=TIMEOUT, mem_gib=MEM_GIB, workers=hc.default_workers(), logdir=tmp)


@pytest.fixture(scope='session')
def sources(tmp_path_factory):
    return hc.fuzz_sources(tmp_path_factory.mktemp('fuzz-sources'))


@pytest.fixture(scope='session')
def corpus_results(request, tmp_path_factory, sources):
    """Every selected corpus case and control, built and loaded in one batch of sandboxed children."""
    root = tmp_path_factory.mktemp('hostile')
    jobs = []
    for params in _selected(request, 'corpus_results'):
        if 'case' in params:
            c = params['case']
            jobs.append(hc.Job(c.id, str(c.build(root / c.id)), c.expect, c.names))
        else:
            name = params['control']
            folder = root / f'control-{name}'
            folder.mkdir()
            path = folder / sources[name].name
            path.write_bytes(sources[name].read_bytes())      # a folder of its own: new files there are payloads
            jobs.append(hc.Job(f'control-{name}', str(path), 'load'))
    return _run(jobs, root)


@pytest.fixture(scope='session')
def fuzz_results(request, tmp_path_factory, sources):
    root = tmp_path_factory.mktemp('fuzz')
    wanted = {params['source'] for params in _selected(request, 'fuzz_results')}
    jobs = []
    for job_id, name, kind, data in hc.mutants({k: v for k, v in sources.items() if k in wanted}, FUZZ_PER_SOURCE, FUZZ_SEED):
        folder = root / job_id
        folder.mkdir()
        path = folder / f'mutant{sources[name].suffix}'
        path.write_bytes(data)
        jobs.append(hc.Job(job_id, str(path), 'any'))
    return _run(jobs, root)


def _report(results):
    return '\n'.join(f'{r.job.id} ({r.job.path}): ' + '; '.join(r.problems) for r in results if r.problems)

#----------------------------------------------------------------------------

@pytest.mark.parametrize('case', hc.CASES, ids=lambda c: f'{c.cause}-{c.id}')
def test_hostile_file(case, corpus_results):
    res = corpus_results[case.id]
    assert not res.problems, f'{hc.CAUSES[case.cause]} / {case.format}: ' + '; '.join(res.problems)


@pytest.mark.parametrize('control', CONTROLS)
def test_good_files_load_in_the_sandbox(control, corpus_results):
    # The cap and the limit leave room for real loads: a failing corpus case is the loader's, not the sandbox's.
    res = corpus_results[f'control-{control}']
    assert res.outcome == 'loaded' and not res.problems, res.problems or res.summary()


@pytest.mark.parametrize('source', hc.FUZZ_SOURCES)
def test_fuzzed_files(source, fuzz_results):
    results = [r for r in fuzz_results.values() if r.job.id.startswith(source + '-')]
    assert len(results) == FUZZ_PER_SOURCE
    failed = [r for r in results if r.problems]
    assert not failed, f'{len(failed)} of {len(results)} mutants broke the contract:\n' + _report(failed)


def test_the_sandbox_reports_hangs_and_crashes_per_file(tmp_path, sources):
    # The harness itself: a file still loading at the deadline is reported as a timeout and its child killed; the
    # next file gets a fresh child. (A crash is reported the same way: hostile_corpus._worker.)
    jobs = [hc.Job(f'slow-{i}', str(sources['rosi32-zip']), 'load') for i in range(2)]
    results = hc.run_jobs(jobs, timeout=0.01, workers=1, logdir=tmp_path)
    assert [r.outcome for r in results.values()] == ['timeout', 'timeout']
    crash = hc.problems(jobs[0], 'crash', {'error': 'crash: the child was killed by SIGSEGV'})
    assert crash == ['crash: the child was killed by SIGSEGV']


def test_running_out_of_memory_under_the_cap_is_a_memory_problem(tmp_path):
    detail = dict(outcome='refused', message=f'{tmp_path}: out of memory while reading the file', names_file=True,
                  one_line=True, length=40, cause={'type': 'MemoryError', 'message': '', 'where': 'x.py:1'}, peak_growth=0, memory_bound=1,
                  warnings=[], new_files=[], numpy_changed=[])
    assert hc.problems(hc.Job('x', str(tmp_path)), 'refused', detail)[0].startswith('memory:')


def test_the_release_fuzz_tool_runs(tmp_path):
    # tools/fuzz_loaders.py shares this module's code; one mutant per source keeps it from rotting (the contract
    # itself is the other tests' job, so a failing mutant, exit status 1, is not this test's failure).
    tool = hc.TESTS.parent / 'tools' / 'fuzz_loaders.py'
    r = subprocess.run([sys.executable, str(tool), '--n', '7', '--seed', '1', '--out', str(tmp_path / 'failures')],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), r.stderr[-2000:]
    assert 'source  kind' in r.stdout and 'inputs broke the contract' in r.stdout, r.stdout[-2000:]
