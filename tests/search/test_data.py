"""Datasets and loaders (`data`): the built-in sets, user datasets, the sequence splitter
and user collates."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import sparsemod_dsl as sm
from sparsemod_dsl.search.batching import SequenceChunks, loader
from sparsemod_dsl.search.data import DataError, load_dataset, resolve, stratified_split
from sparsemod_dsl.search.train import TrainConfig, default_trainer

USER_MODULE = "sm_test_userdata"

USER_SOURCE = '''
import numpy as np
import torch
from torch.utils.data import TensorDataset

def images(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    sets = [TensorDataset(torch.rand(n, 3, 5, 6, generator=g), torch.arange(n) % 3)
            for _ in range(3)]
    return (*sets, 3)

def sequences():
    data = [(np.ones((7 + i, 4)), i % 2) for i in range(6)]
    return data, data, data, 2

def not_a_tuple():
    return "data"

def three():
    return [(torch.zeros(2, 2), 0)], [(torch.zeros(2, 2), 0)], 2

def bad_classes():
    data = [(torch.zeros(2, 2), 0)]
    return data, data, data, 2.5

def float_labels():
    data = [(torch.zeros(2, 2), 0.5)]
    return data, data, data, 2

def big_label():
    data = [(torch.zeros(2, 2), 4)]
    return data, data, data, 2

def flat():
    data = [(torch.zeros(1, 1, 1, 5), 0)]
    return data, data, data, 2

def empty():
    data = [(torch.zeros(2, 2), 0)]
    return data, [], data, 2

def unpaired():
    data = [torch.zeros(2, 2)]
    return data, data, data, 2

def mismatched():
    return [(torch.zeros(1, 4, 4), 0)], [(torch.zeros(1, 5, 5), 0)], [(torch.zeros(1, 4, 4), 0)], 2

def broken():
    raise RuntimeError("disk full")

def stack_collate(batch):
    seen.append([len(x) for x, _ in batch])
    return np.stack([x for x, _ in batch]), [y for _, y in batch]

def cut_collate(batch, max_len=None):
    seen.append([len(x) for x, _ in batch])
    x = torch.stack([torch.as_tensor(x[:max_len]) for x, _ in batch])
    return x, torch.tensor([y for _, y in batch])

def bad_collate(batch):
    return batch

seen = []
NOT_CALLABLE = 3
'''


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The module `USER_SOURCE`, importable as `USER_MODULE` (fresh for each test)."""
    (tmp_path / f"{USER_MODULE}.py").write_text(USER_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, USER_MODULE, raising=False)
    yield importlib.import_module(USER_MODULE)
    sys.modules.pop(USER_MODULE, None)


# --- digits --------------------------------------------------------------------------------------


def test_digits_are_images_split_60_20_20() -> None:
    data = load_dataset("digits")
    assert (data.kind, data.input_shape, data.classes, data.collate) == ("image", (1, 8, 8), 10,
                                                                          None)
    sizes = [len(split) for split in (data.train, data.val, data.test)]
    assert sum(sizes) == 1797
    assert sizes == pytest.approx([0.6 * 1797, 0.2 * 1797, 0.2 * 1797], abs=6)
    x, y = data.train.tensors
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() == 0.0 and x.max() == 1.0


def test_the_split_is_stratified_disjoint_and_complete() -> None:
    all_labels = load_digits().target.tolist()
    train, val, test = stratified_split(all_labels, seed=3)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(len(all_labels)))
    for label in range(10):
        n = all_labels.count(label)
        counts = [sum(all_labels[i] == label for i in part) for part in (train, val, test)]
        assert counts == pytest.approx([0.6 * n, 0.2 * n, 0.2 * n], abs=1)


def test_digits_are_reproducible_for_a_seed() -> None:
    a, b, c = load_dataset("digits", seed=1), load_dataset("digits", seed=1), load_dataset("digits")
    for x, y in zip(a.val.tensors, b.val.tensors):
        assert torch.equal(x, y)
    assert not torch.equal(a.val.tensors[0], c.val.tensors[0])


# --- sequences -----------------------------------------------------------------------------------


def test_sequences_are_balanced_and_reproducible() -> None:
    data = load_dataset("sequences", seed=2)
    assert (data.kind, data.input_shape, data.classes) == ("sequence", (100, 8), 4)
    assert [len(s) for s in (data.train, data.val, data.test)] == [720, 240, 240]
    assert torch.bincount(data.train.tensors[1]).tolist() == [180] * 4
    again = load_dataset("sequences", seed=2)
    assert torch.equal(data.train.tensors[0], again.train.tensors[0])


def test_sequences_take_size_options() -> None:
    data = load_dataset("sequences", options={"samples": 40, "steps": 30, "features": 3})
    assert data.input_shape == (30, 3)
    assert sum(len(s) for s in (data.train, data.val, data.test)) == 40
    with pytest.raises(DataError, match="sequences: unknown option"):
        load_dataset("sequences", options={"length": 3})


def test_a_linear_model_on_the_mean_fails_on_sequences() -> None:
    data = load_dataset("sequences")
    (x, y), (xv, yv) = data.train.tensors, data.val.tensors
    model = LogisticRegression(max_iter=1000).fit(x.mean(1).numpy(), y.numpy())
    assert 1 - model.score(xv.mean(1).numpy(), yv.numpy()) > 0.5


@pytest.mark.parametrize("body", ["conv1d(filters = 16, kernel = 5) relu global_avg_pool",
                                  "lstm(hidden = 16)"])
def test_small_networks_learn_sequences(body: str) -> None:
    space = sm.compile_text(f"arch seq(input: sequence(100, 8), classes = 4)\n"
                            f"network {{\n {body}\n linear(classes)\n}}\n")
    torch.manual_seed(0)
    result = default_trainer(space.build({}), load_dataset("sequences"),
                             TrainConfig(epochs=5, learning_rate=0.01))
    assert result.val_error < 0.3


# --- user datasets -------------------------------------------------------------------------------


def test_a_user_image_dataset(user: Any) -> None:
    data = load_dataset(f"{USER_MODULE}:images", seed=4, options={"n": 9})
    assert (data.kind, data.input_shape, data.classes) == ("image", (3, 5, 6), 3)
    assert len(data.train) == 9
    expected = torch.rand(9, 3, 5, 6, generator=torch.Generator().manual_seed(4))
    assert torch.equal(data.train.tensors[0], expected)  # the seed reached the function


def test_a_user_sequence_dataset_of_arrays(user: Any) -> None:
    data = load_dataset(f"{USER_MODULE}:sequences")
    assert (data.kind, data.input_shape, data.classes) == ("sequence", (7, 4), 2)


@pytest.mark.parametrize("spec, message", [
    ("no_colon",
     r"not a built-in dataset \(digits, sequences, frames, frame_anomalies\) nor a "
     r"'package.module:function'"),
    ("sm_no_such_module:f", "cannot import 'sm_no_such_module'"),
    (f"{USER_MODULE}:missing", f"'{USER_MODULE}' has no attribute 'missing'"),
    (f"{USER_MODULE}:NOT_CALLABLE", "'NOT_CALLABLE' is a int, not a function"),
    (f"{USER_MODULE}:not_a_tuple", r"must return \(train, val, test, classes\), not str"),
    (f"{USER_MODULE}:three", r"must return \(train, val, test, classes\), not tuple of 3"),
    (f"{USER_MODULE}:bad_classes", "classes must be an integer of at least 2, not 2.5"),
    (f"{USER_MODULE}:float_labels",
     r"labels must be integers \(or float vectors, for regression\); a train label is 0.5"),
    (f"{USER_MODULE}:big_label", r"a train label is 4, outside 0..1"),
    (f"{USER_MODULE}:flat", r"a train sample has shape \(1, 1, 1, 5\): expected \(C, H, W\)"),
    (f"{USER_MODULE}:empty", "the val set is empty"),
    (f"{USER_MODULE}:unpaired", r"must be a pair \(x, label\), not Tensor"),
    (f"{USER_MODULE}:mismatched", r"a val sample has shape \(1, 5, 5\), a train sample"),
    (f"{USER_MODULE}:broken", "the dataset function failed: RuntimeError: disk full"),
])
def test_bad_user_datasets_are_named_errors(user: Any, spec: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as error:
        load_dataset(spec)
    assert str(error.value).startswith(spec)


def test_a_user_module_that_fails_to_import(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sm_test_broken.py").write_text("1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DataError, match="importing 'sm_test_broken' failed: ZeroDivisionError"):
        resolve("sm_test_broken:f")


def test_a_user_module_that_exits_on_import(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """sys.exit in user code ended the whole command with its code and no message."""
    (tmp_path / "sm_test_exits.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DataError, match=r"importing 'sm_test_exits' failed: it called "
                                        r"sys.exit\(3\)"):
        resolve("sm_test_exits:f")


@pytest.mark.parametrize("options, message", [
    ({"samples": 0}, "sequences: option samples must be a positive integer, found 0"),
    ({"steps": 2.5}, "sequences: option steps must be a positive integer, found 2.5"),
    ({"features": True}, "sequences: option features must be a positive integer, found True"),
    ({"samples": 12}, "sequences: 12 samples leave the test split empty: every class needs "
                      "at least 4 samples"),
    ({"steps": 10**6}, "sequences: 1200 samples x 1000000 steps x 8 features are more than "
                       "the 100,000,000 values it makes"),
])
def test_bad_sequences_options_are_named_errors(options: dict[str, Any], message: str) -> None:
    """`samples = 0` was an internal error (the max of an empty tensor)."""
    with pytest.raises(DataError) as error:
        load_dataset("sequences", options=options)
    assert str(error.value) == message


def test_unknown_options_of_a_user_function(user: Any) -> None:
    with pytest.raises(DataError, match="unknown option"):
        load_dataset(f"{USER_MODULE}:sequences", options={"n": 3})


# --- loaders and the sequence splitter -----------------------------------------------------------


def ragged() -> list[tuple[torch.Tensor, int]]:
    """Sequences of 250, 100 and 30 steps (3 features), step t holding t + 1."""
    return [(torch.arange(1, t + 1, dtype=torch.float32)[:, None].repeat(1, 3), label)
            for t, label in ((250, 0), (100, 1), (30, 2))]


def test_the_splitter_cuts_chunks_and_pads() -> None:
    chunks = SequenceChunks(ragged(), max_len=100)
    assert len(chunks) == 5  # 3 of the 250 steps (the last ends at 250), 1, 1 padded
    samples = [chunks[i] for i in range(5)]
    assert [label for _, label in samples] == [0, 0, 0, 1, 2]
    assert all(x.shape == (100, 3) for x, _ in samples)
    assert samples[1][0][0, 0] == 101 and samples[1][0][-1, 0] == 200
    assert samples[2][0][0, 0] == 151 and samples[2][0][-1, 0] == 250  # no step dropped
    padded = samples[4][0]
    assert padded[29, 0] == 30 and not padded[30:].any()


def test_a_loader_batches_chunks() -> None:
    x, y = next(iter(loader(ragged(), batch_size=8, shuffle=False, max_len=50)))
    assert x.shape == (5 + 2 + 1, 50, 3) and x.dtype == torch.float32
    assert y.tolist() == [0] * 5 + [1] * 2 + [2] and y.dtype == torch.int64


def test_the_splitter_refuses_images() -> None:
    with pytest.raises(DataError, match=r"max_len cuts sequences \(T, F\)"):
        loader([(torch.zeros(1, 4, 4), 0)], batch_size=1, shuffle=False, max_len=2)


def test_sequences_of_different_lengths_need_max_len() -> None:
    with pytest.raises(DataError, match="set train.max_len"):
        next(iter(loader(ragged(), batch_size=3, shuffle=False)))


def test_loaders_shuffle_reproducibly() -> None:
    data = [(torch.full((2,), float(i)), i) for i in range(40)]

    def order(seed: int) -> list[int]:
        return [int(i) for _, y in loader(data, 8, shuffle=True, seed=seed) for i in y]

    assert order(1) == order(1) != order(2)
    assert sorted(order(1)) == list(range(40))


def test_batch_size_is_capped_and_last_batches_dropped() -> None:
    data = [(torch.zeros(2), 0)] * 5
    assert [len(y) for _, y in loader(data, 64, shuffle=False)] == [5]
    assert [len(y) for _, y in loader(data, 2, shuffle=False, drop_last=True)] == [2, 2]


def test_a_collate_without_max_len_gets_chunks(user: Any) -> None:
    data = load_dataset(f"{USER_MODULE}:sequences",
                        options={"collate": f"{USER_MODULE}:stack_collate"})
    assert data.collate is user.stack_collate
    x, y = next(iter(loader(ragged(), 8, shuffle=False, max_len=100, collate=data.collate)))
    assert user.seen == [[100] * 5]
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (5, 100, 3)


def test_a_collate_with_max_len_gets_whole_sequences(user: Any) -> None:
    batches = loader(ragged()[:2], 8, shuffle=False, max_len=60, collate=user.cut_collate)
    x, y = next(iter(batches))
    assert user.seen == [[250, 100]]
    assert x.shape == (2, 60, 3) and y.tolist() == [0, 1]


def test_a_collate_with_max_len_without_a_max_len(user: Any) -> None:
    x, _ = next(iter(loader(ragged()[1:2], 8, shuffle=False, collate=user.cut_collate)))
    assert x.shape == (1, 100, 3)


def test_a_collate_must_return_a_pair(user: Any) -> None:
    with pytest.raises(DataError, match=r"the collate bad_collate must return \(x, y\)"):
        next(iter(loader(ragged(), 3, shuffle=False, collate=user.bad_collate)))


def test_a_bad_collate_reference() -> None:
    with pytest.raises(DataError, match="sm_no_such_module"):
        load_dataset("digits", options={"collate": "sm_no_such_module:f"})
