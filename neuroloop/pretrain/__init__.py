"""Pretraining of brain modules on tasks of their own: the visual module on object pose.

- ``rotation``: the continuous 6-D rotation representation (Zhou et al. 2019).
- ``frames``: pose-labelled frames and the plugins (frame generators) that make them.
- ``vision``: the pose network cut from a brain at its visual module; training, errors
  beside the mean-pose baseline, saving the brain's weights as a component.
- ``command``: ``neuroloop pretrain vision``.
"""
