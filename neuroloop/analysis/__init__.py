"""Analysis of what a brain computes, from recordings: RSA, decoding, PCA, SINDy, fixed points.

Needs the ``analysis`` extra (``pip install -e '.[analysis]'``). Each method is a plain
function on numpy arrays, validated on ground truths in ``tests/test_analysis.py``:

- ``rsa.rsa``: RDMs of layers against model RDMs of task variables (rsatoolbox);
- ``decoding.decode``: cross-validated linear decoding, folds split by episode (scikit-learn);
- ``dynamics.principal_components`` and ``dynamics.fit_sindy``: PCA of a recurrent state and
  SINDy on its leading components, scored on held-out trajectories (pysindy);
- ``fixed_points.find_fixed_points``: fixed points of a recurrent update, their Jacobian
  eigenvalues and stability.

``report.analyze_recording`` runs them all on a step recording (``neuroloop.recording``)
for ``neuroloop analyze`` (``command``).
"""
