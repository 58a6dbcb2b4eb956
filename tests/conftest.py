"""Shared test set-up: one intra-op thread, and the fixtures several test folders use — tiny
search spaces, synthetic profile tables (:mod:`support`) — instead of private copies."""

from __future__ import annotations

import pytest
import torch

from support.profiles import profile_table as _profile_table
from support.profiles import sample_archs as _sample_archs
from support.spaces import tiny_space as _tiny_space


@pytest.fixture(scope="session", autouse=True)
def _single_intra_op_thread():
    """One intra-op thread for the whole suite, restored afterwards: on shared 2-core machines a
    second OpenMP thread competing with other jobs makes training steps up to 100x slower. No
    test here measures speed; benchmarks set their own thread count."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session", autouse=True)
def _image_cache_in_tmp(tmp_path_factory):
    """Decoded-image caches go to a temporary folder, never the user's ~/.cache."""
    import os

    old = os.environ.get("QUADRANAS_CACHE_DIR")
    os.environ["QUADRANAS_CACHE_DIR"] = str(tmp_path_factory.mktemp("image-cache"))
    yield
    if old is None:
        os.environ.pop("QUADRANAS_CACHE_DIR", None)
    else:
        os.environ["QUADRANAS_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def tiny_space():
    """``tiny_space(**overrides)``: a small unregistered search space (:mod:`support.spaces`)."""
    return _tiny_space


@pytest.fixture(scope="session")
def sample_archs():
    """``sample_archs(space_name, n, *, seed)``: ``n`` distinct members of a registered space."""
    return _sample_archs


@pytest.fixture(scope="session")
def profile_table():
    """``profile_table(archs, batch_sizes=(1, 8), ...)``: a synthetic profile table with closed-form
    costs, one device (:mod:`support.profiles`)."""
    return _profile_table


def pytest_collection_modifyitems(config, items):
    """Every test that needs a CUDA device carries the ``cuda`` marker, so ``pytest -m cuda`` (what
    ``nas bench device-check`` runs on a GPU machine) selects them all: a test skipped for want of a
    CUDA device without the marker is a collection error naming it."""
    if torch.cuda.is_available():  # checked where the CUDA tests skip: on a machine without a GPU (CI)
        return
    unmarked = [item.nodeid for item in items if item.get_closest_marker("cuda") is None
                and any(m.args and m.args[0] is True and "CUDA" in str(m.kwargs.get("reason", ""))
                        for m in item.iter_markers("skipif"))]
    if unmarked:
        raise pytest.UsageError("tests that need a CUDA device lack @pytest.mark.cuda: " + ", ".join(unmarked))
