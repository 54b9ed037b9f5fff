"""Functions of simulation_configs/shadow_hand_manipulate_block.json: in-hand reorientation.

Episodes end when the cube drops, when a goal has not been reached within 8 s, or after
50 goals (the task's own limits); the status reports consecutive goals reached (CGR).
"""

from neuroloop.plugins.transceivers.shadow_hand_loop import HandTaskLoop

observe, to_brain, to_body, status = HandTaskLoop("manipulate_block").functions()
