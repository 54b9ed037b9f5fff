"""Functions of the controlled center-out configs (``simulation_configs/
arm26_center_out_controlled.json`` on the MuJoCo arm, ``arm26_center_out_learned.json`` on
its learned twin): the center-out trials and the shipped ControllerNet setting ``ctrl``.

List this file under DataPackProcessingFunctions and as the StatusFunction.
"""

from pathlib import Path

from neuroloop.plugins.transceivers.center_out import CenterOutTrials
from neuroloop.plugins.transceivers.center_out_controller import ControllerFunction

TRAINED = Path(__file__).resolve().parents[1] / "experiments" / "surrogates" / "arm26"
"""The shipped ArmNet (``armnet/``) and the ControllerNet trained through it (``controller/``)."""

cue, to_body, status = CenterOutTrials().functions()
controller = ControllerFunction(TRAINED / "controller", TRAINED / "armnet").function()
