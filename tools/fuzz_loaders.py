"""The long fuzz run of sg.load, for before releases (the test suite runs a short one: tests/test_hostile_files.py).

    python tools/fuzz_loaders.py --n 5000 [--seed S] [--timeout 20] [--mem-gib 1] [--workers 4] [--out fuzz-failures]
                                 [--corpus]

Makes --n seeded mutants in all (byte flips, truncations, chunk duplications, and for zips flips inside data.pkl
with the archive rebuilt) of the reference files in tests/data and of small files of every format, loads each in a
sandboxed child process (wall-clock limit, memory cap: see tests/hostile_corpus.py) and prints the outcomes by
source and kind of mutation. --corpus adds the hand-built hostile corpus. Every input that breaks the contract (a
crash, a hang, a memory blow-up, another exception than CheckpointError, a payload run, numpy changed, NaN/inf
loaded silently, a message that is not one line naming the file) is copied to --out with a .json beside it saying
what happened; `python -c "import stylegan2_lib as sg; sg.load('<file>')"` reproduces it. Exit status 1 when any did.
"""

import argparse
import collections
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tests'))
import hostile_corpus as hc  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--n', type=int, default=5000, help='mutants in all, spread over the sources (default 5000)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--timeout', type=float, default=20, help='seconds one load may take (default 20)')
    p.add_argument('--mem-gib', type=float, default=1.0, help='address space a child may add after its imports (default 1)')
    p.add_argument('--workers', type=int, default=hc.default_workers())
    p.add_argument('--out', default='fuzz-failures', help='folder for the inputs that broke the contract')
    p.add_argument('--corpus', action='store_true', help='also load the hand-built hostile corpus')
    return p.parse_args()


def fuzz_jobs(root, n, seed):
    sources = hc.fuzz_sources(root / 'sources')
    rows = {}
    jobs = []
    for job_id, name, kind, data in hc.mutants(sources, max(1, n // len(sources)), seed):
        path = root / job_id / f'mutant{sources[name].suffix}'
        path.parent.mkdir()
        path.write_bytes(data)
        jobs.append(hc.Job(job_id, str(path), 'any'))
        rows[job_id] = (name, kind)
    return jobs, rows


def corpus_jobs(root):
    jobs, rows = [], {}
    for c in hc.CASES:
        jobs.append(hc.Job(c.id, str(c.build(root / 'corpus' / c.id)), c.expect, c.names))
        rows[c.id] = (f'corpus: {hc.CAUSES[c.cause]}', c.format)
    return jobs, rows


def verdict(res):
    if res.problems:
        return 'FAILED'
    return 'refused' if res.outcome == 'refused' else 'loaded'


def print_table(results, rows):
    counts = collections.defaultdict(collections.Counter)
    for job_id, res in results.items():
        counts[rows[job_id]][verdict(res)] += 1
    cols = ('loaded', 'refused', 'FAILED')
    width = max(len(f'{a}  {b}') for a, b in counts) + 2
    print(f'{"source  kind":<{width}}' + ''.join(f'{c:>9}' for c in cols))
    for key in sorted(counts):
        print(f'{key[0] + "  " + key[1]:<{width}}' + ''.join(f'{counts[key][c]:>9}' for c in cols))
    total = collections.Counter(verdict(r) for r in results.values())
    print(f'{"all":<{width}}' + ''.join(f'{total[c]:>9}' for c in cols))


def save_failures(results, out):
    failed = [r for r in results.values() if r.problems]
    if not failed:
        return failed
    out.mkdir(parents=True, exist_ok=True)
    for res in failed:
        src = Path(res.job.path)
        dst = out / f'{res.job.id}{src.suffix}'
        if src.stat().st_blocks * 512 >= src.stat().st_size:          # sparse corpus files are not copied whole
            shutil.copyfile(src, dst)
        (out / f'{res.job.id}.json').write_text(json.dumps(
            {'file': str(dst), 'outcome': res.outcome, 'problems': res.problems, 'detail': res.detail}, indent=1, default=str))
        print(f'FAILED {res.job.id}: ' + '; '.join(res.problems)[:500])
    return failed


def main():
    args = parse_args()
    root = Path(tempfile.mkdtemp(prefix='fuzz-loaders-'))
    jobs, rows = fuzz_jobs(root, args.n, args.seed)
    if args.corpus:
        more, more_rows = corpus_jobs(root)
        jobs, rows = jobs + more, {**rows, **more_rows}
    t0 = time.monotonic()
    print(f'{len(jobs)} files, {args.workers} workers, {args.timeout} s and {args.mem_gib} GiB each; work folder {root}', flush=True)
    results = hc.run_jobs(jobs, timeout=args.timeout, mem_gib=args.mem_gib, workers=args.workers, logdir=root)
    print(f'done in {time.monotonic() - t0:.0f} s\n')
    print_table(results, rows)
    failed = save_failures(results, Path(args.out))
    print(f'\n{len(failed)} inputs broke the contract' + (f'; saved under {args.out}/' if failed else ''))
    shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
