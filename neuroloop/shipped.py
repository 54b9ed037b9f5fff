"""What ships with neuroloop, found by name: simulation configs, training recipes, weights.

They live in the installed ``neuroloop.plugins`` folders (the repository's
``simulation_configs/``, ``experiments/`` and ``experiments/trained/``), so
``neuroloop run shadow_hand_reach`` works from an installed wheel anywhere. A path that
exists always wins over a name.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from neuroloop.errors import UsageError

ANCHOR_PACKAGE = "neuroloop.plugins.experiments"
"""A shipped package whose folder's parent holds every shipped folder."""


@dataclass(frozen=True)
class Kind:
    """One kind of shipped file."""

    label: str
    """What the CLI calls one, e.g. ``"simulation config"``."""
    plural: str
    """What the CLI calls several."""
    folder: str
    """Folder under the shipped root."""
    suffixes: tuple[str, ...]
    """File endings that mark this kind; the name is the file name without it."""


CONFIG = Kind(
    "simulation config", "simulation configs", "simulation_configs", (".json", ".yaml", ".yml")
)
RECIPE = Kind("training recipe", "training recipes", "experiments", (".yaml", ".yml"))
WEIGHTS = Kind("trained weights file", "trained weights", "experiments/trained", (".weights.h5",))
KINDS = (CONFIG, RECIPE, WEIGHTS)


def shipped_root() -> Path:
    """The folder holding ``simulation_configs/``, ``experiments/``, ... as installed."""
    spec = importlib.util.find_spec(ANCHOR_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"neuroloop is installed without its shipped files ({ANCHOR_PACKAGE})")
    return Path(next(iter(spec.submodule_search_locations))).parent


def shipped(kind: Kind) -> dict[str, Path]:
    """Every shipped file of ``kind`` by name, sorted by name."""
    folder = shipped_root() / kind.folder
    found = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        for suffix in kind.suffixes:
            if path.is_file() and path.name.endswith(suffix):
                found[path.name[: -len(suffix)]] = path
    return found


def resolve(kind: Kind, name_or_path: str | Path) -> Path:
    """The file a command-line argument means: an existing path, else a shipped name.

    Raises:
        UsageError: If it is neither, naming what ships.
    """
    path = Path(name_or_path)
    if path.exists():
        return path
    found = shipped(kind).get(str(name_or_path))
    if found is None:
        raise UsageError(
            f"{name_or_path}: expected a {kind.label} file or the name of a shipped one "
            f"{sorted(shipped(kind))}. Received: no such file or name"
        )
    return found
