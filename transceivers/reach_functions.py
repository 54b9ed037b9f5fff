"""Functions of simulation_configs/shadow_hand_reach.json: the reach task's closed loop."""

from neuroloop.plugins.transceivers.shadow_hand_loop import HandTaskLoop

EPISODE_STEPS = 50
"""Control steps per episode: 2 s at the config's 0.04 s control timestep (as HandReach)."""

observe, to_brain, to_body, status = HandTaskLoop("reach", episode_steps=EPISODE_STEPS).functions()
