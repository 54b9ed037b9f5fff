"""The installable package: a wheel built from the checkout runs shipped files by name.

The wheel goes into a fresh virtual environment outside the checkout. Its dependencies
(TensorFlow, MuJoCo, ...) come from this test environment: its site-packages through a path
file, which adds them to ``sys.path`` without running this environment's own path files (so
the checkout's editable install stays invisible: what runs is the wheel), and the files the
``mpich`` wheel puts beside the interpreter (``lib/libmpi*``, ``lib/mpich``, ``bin/mpiexec*``) as
links.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = (
    "neuroloop/plugins/simulation_configs/shadow_hand_reach.json",
    "neuroloop/plugins/experiments/reach.yaml",
    "neuroloop/plugins/experiments/trained/reach_lstm.weights.h5",
    "neuroloop/plugins/transceivers/shadow_hand_task_functions.py",
    "neuroloop/plugins/experiments/bodies/shadow_hand.yaml",
    "neuroloop/plugins/engines/mujoco_engine.schema.json",
    "neuroloop/plugins/engines/mujoco_engine.py",
    "neuroloop/schemas/simulation.schema.json",
)


NOT_SOURCE = (".git", ".venv", "build", "runs", "*.egg-info", "__pycache__", ".*_cache")
"""What the copy of the checkout that the wheel is built from leaves out."""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy, so the build leaves nothing in the checkout.
    source = shutil.copytree(REPO, out / "source", ignore=shutil.ignore_patterns(*NOT_SOURCE))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(source)],
        check=True, capture_output=True, cwd=out,
    )  # fmt: skip
    (built,) = out.glob("neuroloop-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment outside the checkout with the wheel installed."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    here = Path(sys.prefix)
    for pattern in ("lib/libmpi*", "lib/mpich", "bin/mpiexec*", "bin/hydra_*"):
        for path in here.glob(pattern):
            (env_dir / path.relative_to(here)).symlink_to(path)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-index", str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    return env_dir


def run_installed(env_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [str(env_dir / "bin" / "neuroloop"), *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=600,
    )  # fmt: skip


def test_the_wheel_adds_only_neuroloop_and_nrp_names(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top_level == {"neuroloop", "nrp_core", "nrp_protobuf"}
    missing = [path for path in SHIPPED if path not in names]
    assert not missing, missing


def test_the_installed_wheel_runs_shipped_files_by_name(installed: Path, tmp_path: Path) -> None:
    where = run_installed(installed, "list", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert str(REPO) not in where.stdout  # the shipped files are the wheel's
    assert "shadow_hand_reach" in where.stdout and "reach_lstm" in where.stdout

    ran = run_installed(installed, "run", "shadow_hand_reach", "--steps", "20", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "simulated    0.800 s in 20 loop steps" in ran.stdout

    run_dir = tmp_path / "reach_run"
    trained = run_installed(
        installed, "train", "reach", "--cycles", "1", "--run-dir", str(run_dir), "--quiet",
        cwd=tmp_path,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert (run_dir / "checkpoints" / "latest.npz").is_file()

    evaluated = run_installed(
        installed, "evaluate", "reach", "--weights", "reach_lstm", "--episodes", "4",
        "--deterministic", cwd=tmp_path,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.stdout.startswith("return ")


def test_setup_cfg_lists_every_package() -> None:
    """``packages`` is an explicit list (the plugin folders are mapped into neuroloop)."""
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    listed = set(parser["options"]["packages"].split())
    mapped = dict(
        line.split(" = ") for line in parser["options"]["package_dir"].strip().splitlines()
    )
    found = set()
    for init in REPO.glob("**/__init__.py"):
        parts = init.parent.relative_to(REPO).parts
        if parts[0] in ("neuroloop", "nrp_core", "nrp_protobuf"):
            found.add(".".join(parts))
    found |= {name for name, folder in mapped.items() if (REPO / folder).is_dir()}
    assert found == listed, (sorted(found - listed), sorted(listed - found))
