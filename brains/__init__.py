"""neuroloop brains: loaded by name from simulation configs.

``build_brain("lstm", input_shapes={"proprioception": (24,)}, action_dim=20)`` returns a
``Brain`` holding policy, value and joint Keras models (see ``brains.registry`` for their
inputs and outputs). Importing this package registers the built-in brains: ``mlp``,
``lstm``, ``gru`` and ``wide``.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from brains import mlp, recurrent, wide  # registers the built-in brains
from brains.registry import Brain, build_brain, known_brains, register_brain

__all__ = ["Brain", "build_brain", "known_brains", "mlp", "recurrent", "register_brain", "wide"]
