"""Functions of the Shadow Hand task configs: the closed loop of the config's ``Task``.

List this file under DataPackProcessingFunctions and as the StatusFunction; the config's
``Task`` section says which task runs, with which options and reward weights.
"""

from neuroloop.plugins.transceivers.shadow_hand_loop import HandTaskLoop

observe, to_brain, to_body, status = HandTaskLoop().functions()
