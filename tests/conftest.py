"""Shared test set-up."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _single_intra_op_thread():
    """One intra-op thread for the whole suite, restored afterwards: on shared 2-core machines a
    second OpenMP thread competing with other jobs makes training steps up to 100x slower. No
    test here measures speed; benchmarks set their own thread count."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
