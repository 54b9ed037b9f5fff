"""neuroloop: close the loop between a simulated body and a neural-network brain.

``neuroloop.load_brain(RUN_DIR | WEIGHTS)`` gives a trained brain to step in Python
(imported on first use, so ``import neuroloop`` stays free of TensorFlow).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from neuroloop.training.export import load_brain

__all__ = ["load_brain"]


def __getattr__(name: str) -> Any:
    if name == "load_brain":
        from neuroloop.training.export import load_brain

        return load_brain
    raise AttributeError(f"module 'neuroloop' has no attribute {name!r}")
