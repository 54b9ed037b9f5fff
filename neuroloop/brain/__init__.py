"""The brain contract, shared by the brain engine, training, evaluation and analysis.

- ``contract``: ``Brain``, the policy, value and joint Keras models built together.
- ``loading``: ``build_brain`` from a name, ``file.py:builder`` or ``module:builder``.
- ``distributions``: the policy's action distributions (Beta, Gaussian, multicategorical).
- ``layers``: ``RunningNormalization``, observation statistics inside the brain.
- ``activations``: ``LIFRate``, LIF-derived activations (``"lif"``, ``"soft_lif"``).
- ``normalization``: ``RunningMeanStd``, exact running statistics that merge across ranks.
- ``weights``: the flat weight layout that travels between processes.

Submodules are imported explicitly so that importing this package imports no TensorFlow.
"""
