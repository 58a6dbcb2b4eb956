"""The notebooks in ``notebooks/``: committed without outputs, and executed end to end with small
settings (``QUADRANAS_SMALL=1``) in a fresh kernel of this interpreter, in order — notebook 03
reads the search run notebook 01 made (``QUADRANAS_RUN_DIR``); notebook 04 searches a folder of PNG
files the test writes (``QUADRANAS_DATA_DIR``) and classifies a new one (``QUADRANAS_NEW_IMAGE``)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
import pytest

from support import REPO

ROOT = REPO  # the repository root
NOTEBOOKS = ROOT / "notebooks"
EXPECTED = ("01_quickstart.ipynb", "02_predictors.ipynb", "03_quadratic_vs_first_order.ipynb",
            "04_your_own_data.ipynb")
CELL_TIMEOUT_S = 600


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def test_expected_notebooks_exist():
    missing = [n for n in EXPECTED if not (NOTEBOOKS / n).is_file()]
    assert not missing, f"notebooks missing from {NOTEBOOKS}: {missing}"


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cells"
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} hold outputs or an execution count; clear them before "
                       f"committing (e.g. `jupyter nbconvert --clear-output --inplace {path.name}`)")
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def _first_code_cell(nb: nbformat.NotebookNode) -> str:
    return next(c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("name", EXPECTED)
def test_first_code_cell_reads_the_settings(name):
    source = _first_code_cell(_read(name))
    assert "QUADRANAS_SMALL" in source and "QUADRANAS_OUT" in source


def test_kernel_runs_this_interpreter():
    """The ``python3`` kernel nbclient starts is this interpreter (the project's venv), not
    whatever ``python`` is first on PATH: jupyter_client swaps a bare ``python`` for sys.executable."""
    from jupyter_client.manager import KernelManager

    cmd = KernelManager(kernel_name="python3").format_kernel_cmd()
    assert Path(cmd[0]) == Path(sys.executable), cmd


# ---- executed notebooks ----------------------------------------------------------------------------------


class _Executed:
    """Runs notebooks one after another in fresh kernels and remembers how long each took."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.seconds: dict[str, float] = {}

    def out(self, name: str) -> Path:
        return self.base / Path(name).stem

    def run(self, name: str, **env: str) -> nbformat.NotebookNode:
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError

        nb = _read(name)
        kernel_env = {k: v for k, v in os.environ.items() if not k.startswith("QUADRANAS_")}
        kernel_env.update({"QUADRANAS_SMALL": "1", "QUADRANAS_OUT": str(self.out(name)), **env})
        client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                resources={"metadata": {"path": str(ROOT)}})
        t0 = time.perf_counter()
        try:
            client.execute(env=kernel_env)
        except CellExecutionError as err:  # names the cell, its source and the traceback
            pytest.fail(f"{name} failed:\n{err}", pytrace=False)
        finally:  # the executed copy, outputs and all, for a look after a failure
            (self.base / "executed").mkdir(exist_ok=True)
            nbformat.write(nb, self.base / "executed" / name)
        self.seconds[name] = time.perf_counter() - t0
        print(f"{name}: {self.seconds[name]:.1f} s")
        return nb


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    return _Executed(tmp_path_factory.mktemp("notebooks"))


def _outputs(nb: nbformat.NotebookNode) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def _text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for o in _outputs(nb):
        if o.output_type == "stream":
            parts.append(o.text)
        elif "data" in o:
            parts.append(o.data.get("text/plain", ""))
    return "\n".join(parts)


def _n_images(nb: nbformat.NotebookNode) -> int:
    return sum(1 for o in _outputs(nb) if "data" in o and "image/png" in o.data)


@pytest.mark.slow
def test_01_quickstart(executed):
    nb = executed.run("01_quickstart.ipynb")
    run_dir = executed.out("01_quickstart.ipynb") / "search"
    for f in ("summary.json", "pareto.csv", "picks.json", "pareto.png", "report.html"):
        assert (run_dir / f).is_file(), f
    assert any((run_dir / "exports").iterdir())
    assert _n_images(nb) >= 2  # pareto.png and the classified digits
    text = _text(nb)
    assert "exported model == supernet subnet" in text


@pytest.mark.slow
def test_02_predictors(executed):
    nb = executed.run("02_predictors.ipynb")
    out = executed.out("02_predictors.ipynb")
    for f in ("profiles_train.csv", "profiles_test.csv", "parity.png", "staircase/staircase.png",
              "staircase/staircase.json", "predictors/latency/predictor.json", "predictors/memory/predictor.json"):
        assert (out / f).is_file(), f
    assert _n_images(nb) >= 2  # parity and staircase plots
    assert "Spearman(latency, MACs)" in _text(nb)


@pytest.mark.slow
def test_03_quadratic_vs_first_order(executed):
    run_dir = executed.out("01_quickstart.ipynb") / "search"
    if not (run_dir / "summary.json").is_file():
        pytest.skip("notebook 01's run is missing (test_01_quickstart failed or was deselected)")
    nb = executed.run("03_quadratic_vs_first_order.ipynb", QUADRANAS_RUN_DIR=str(run_dir))
    out = executed.out("03_quadratic_vs_first_order.ipynb")
    assert not (out / "search").exists(), "notebook 03 searched again instead of reading notebook 01's run"
    for f in ("quadratic_by_stage.png", "accuracy_vs_quadratic.png"):
        assert (out / f).is_file(), f
    assert _n_images(nb) >= 2
    assert "Δ acc (points)" in _text(nb)
    total = sum(executed.seconds.values())
    print(f"notebooks executed in {total:.1f} s: " + ", ".join(f"{k} {v:.1f} s" for k, v in executed.seconds.items()))


@pytest.mark.slow
def test_04_your_own_data(executed, tmp_path):
    from PIL import Image

    from support.images import class_image, write_folder

    write_folder(tmp_path / "images", per_class=14, split_layout=True)
    new = tmp_path / "new.png"
    Image.fromarray(class_image(1, 99)).save(new)  # a "dog" the search never saw
    nb = executed.run("04_your_own_data.ipynb", QUADRANAS_DATA_DIR=str(tmp_path / "images"),
                      QUADRANAS_NEW_IMAGE=str(new))
    run_dir = executed.out("04_your_own_data.ipynb") / "search"
    cfg = __import__("json").loads((run_dir / "config.json").read_text())
    assert cfg["space"] == "s-3x16x16-3c" and cfg["dataset"] == "imagefolder"
    assert not (executed.out("04_your_own_data.ipynb") / "images").exists()  # the given folder, not the example
    text = _text(nb)
    assert "new.png: predicted class" in text and "ONNX Runtime and PyTorch agree" in text
    assert _n_images(nb) >= 2  # the Pareto plot and the new image
