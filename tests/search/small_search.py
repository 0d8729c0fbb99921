"""A search small enough for tests that run, break and kill real searches.

`write_search` writes a tiny space, a dataset module of 48 random 8x8 images and an
experiment file into a folder: one epoch per network, a second or so per trial. The
dataset module (`smalldata`) also holds datasets and trainers that misbehave in the
ways a user's code can, for the tests of failing trials.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ARCH = '''\
arch small(input: image(1, 8, 8), classes = 2)

train {
    batch_size = choice[16, 32] ordered
    learning_rate = float[0.003..0.02] log
}

network {
    conv2d(filters = int[2..8] step 2, kernel = 3) relu
    optional pool {
        maxpool(2)
    }
    global_avg_pool
    linear(classes)
}
'''

MODULE = '''\
"""Datasets and trainers for the tests: one good of each, and broken ones."""

import sys

import torch
from torch.utils.data import Dataset, TensorDataset

from sparsemod_dsl.search.train import default_trainer


def images(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    data = TensorDataset(torch.rand(n, 1, 8, 8, generator=g), torch.arange(n) % 2)
    return data, data, data, 2


class Broken(Dataset):
    """40 samples: sample 0 raises (`first`), a later one does (`index`), or has a label
    out of range (`label`)."""

    def __init__(self, how):
        self.how = how

    def __len__(self):
        return 40

    def __getitem__(self, i):
        if self.how == "first" or (i > 0 and self.how == "index"):
            raise IndexError(f"no sample {i}")
        return torch.zeros(1, 8, 8), 7 if i > 0 and self.how == "label" else 0


def broken(how):
    return Broken(how), Broken(how), Broken(how), 2


def exits():
    sys.exit(3)


def every_third(net, data, config):
    """Trials 2, 5, 8, ... raise (the experiment's seed is 0: config.seed is the id)."""
    if config.seed % 3 == 2:
        raise TypeError(f"simulated failure of trial {config.seed}")
    return default_trainer(net, data, config)


def _hang(name):
    """Write this process's id to `pids/NAME` beside this module, then wait to be killed."""
    import os
    import time
    from pathlib import Path

    pids = Path(__file__).parent / "pids"
    pids.mkdir(exist_ok=True)
    (pids / f"{name}.tmp").write_text(str(os.getpid()))
    (pids / f"{name}.tmp").rename(pids / name)
    time.sleep(600)


def killed(net, data, config):
    """Trial 1 hangs in every process that runs it, trial 2 in the first one only; a
    test kills the processes whose ids appear in `pids/`."""
    from pathlib import Path

    tries = Path(__file__).parent / "pids"
    if config.seed == 1:
        _hang(f"trial-1-{len(list(tries.glob('trial-1-*'))) if tries.exists() else 0}")
    if config.seed == 2 and not (tries / "trial-2").exists():
        _hang("trial-2")
    return default_trainer(net, data, config)


def slow(net, data, config):
    """The default trainer, two seconds slower: trials in flight long enough to kill."""
    import time

    time.sleep(2)
    return default_trainer(net, data, config)


def returns_none(net, data, config):
    return None


def type_error(net, data, config):
    return default_trainer(net, data, config, 1)


def calls_exit(net, data, config):
    sys.exit(4)
'''

STAGES = "[stages]\nsobol = 3\nbo_rounds = 2\nbo_batch = 2\nmorph_rounds = 2\n" \
         "morph_candidates = 4\nepochs = [1, 1, 1]\n"


def write_search(folder: Path, dataset: str = "images", trainer: str | None = None,
                 stages: str = STAGES, strategy: str = "sobol", options: str = "",
                 execution: str = "") -> Path:
    """Write the space, `smalldata.py` and `experiment.toml` into `folder`; returns the
    experiment file. `dataset` and `trainer` are functions of `smalldata`, `options` the
    inline table of the dataset's options, `execution` the keys of an `[execution]`
    section. Results go to `folder/results`; the seed is 0."""
    (folder / "small.arch").write_text(ARCH)
    (folder / "smalldata.py").write_text(MODULE)
    training = "[training]\npruning = false\nquantization = \"none\"\n"
    if trainer:
        training += f'trainer = "smalldata:{trainer}"\n'
    path = folder / "experiment.toml"
    path.write_text(f'arch = "small.arch"\nresults = "results"\nseed = 0\n\n'
                    f'[data]\ndataset = "smalldata:{dataset}"\n'
                    f'{f"options = {{ {options} }}" if options else ""}\n\n'
                    f'{stages.replace("[stages]", f"[stages]{chr(10)}strategy = {strategy!r}")}'
                    f"\n{training}"
                    f"{f'{chr(10)}[execution]{chr(10)}{execution}{chr(10)}' if execution else ''}")
    return path


def sparsemodc(*args: str) -> list[str]:
    """The command line of the installed `sparsemodc` with `args`."""
    return [str(Path(sys.executable).with_name("sparsemodc")), *args]


def environment(folder: Path) -> dict[str, str]:
    """The environment of a `sparsemodc` process that imports `smalldata` from `folder`."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])])}


def start(folder: Path, experiment: Path) -> subprocess.Popen[bytes]:
    """`sparsemodc search experiment` in `folder`, its output in `folder/log-N.txt`."""
    log = folder / f"log-{len(list(folder.glob('log-*.txt')))}.txt"
    with log.open("wb") as out:
        return subprocess.Popen(sparsemodc("search", str(experiment)), cwd=folder,
                                stdout=out, stderr=subprocess.STDOUT, env=environment(folder))


def importable(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `folder`'s `smalldata` the one this process imports (fresh for each test)."""
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "smalldata", raising=False)
