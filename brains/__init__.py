"""Keras brain builders that ship with neuroloop: ``mlp``, ``lstm``, ``gru``, ``wide``,
``cortical``.

Each is an entry point of the group ``neuroloop.brains`` (``setup.cfg``), so configs and
recipes name them (``Brain: lstm``) and ``neuroloop.brain.loading.build_brain`` builds them;
``blocks`` holds the pieces they share.
"""
