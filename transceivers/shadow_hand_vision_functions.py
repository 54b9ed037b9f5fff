"""Functions of the Shadow Hand task configs with vision: the closed loop of the config's
``Task``, and the physics engine's ``camera`` frames sent to the brain as ``vision``.

List this file under DataPackProcessingFunctions and as the StatusFunction; the physics
engine needs a ``Camera`` and the brain a ``vision`` input of the frames' shape.
"""

from neuroloop.plugins.transceivers.shadow_hand_loop import HandTaskLoop

observe, to_brain, to_body, status = HandTaskLoop(vision=True).functions()
