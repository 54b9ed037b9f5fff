"""Functions of the center-out configs (``simulation_configs/arm26_center_out.json``).

List this file under DataPackProcessingFunctions and as the StatusFunction; the config's
``Task`` section (``center_out`` and its options) sets radius, targets and timing.
"""

from neuroloop.plugins.transceivers.center_out import CenterOutTrials

cue, to_body, status = CenterOutTrials().functions()
