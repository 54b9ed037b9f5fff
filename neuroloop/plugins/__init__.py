"""What ships with neuroloop, installed here from the repository's top-level folders.

``neuroloop.plugins.engines`` (``engines/``), ``.brains`` (``brains/``), ``.transceivers``
(``transceivers/``), ``.experiments`` (``experiments/``, with recipes and trained weights) and
``.simulation_configs`` (``simulation_configs/``). The core never imports them: configs name
them, and ``neuroloop.shipped`` finds them by name.
"""
