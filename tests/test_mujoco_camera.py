"""The engine's camera with ``Fast`` settings: the same worlds, upright, without sites;
``MeshCell``: nearly the same picture from fewer triangles.

The camera runs in a child process with ``MUJOCO_GL=egl`` (the backend is chosen when MuJoCo's
rendering is first imported), on the reach model and the Shadow Hand body's view.
"""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from tests.processes import last_json_line_with_egl

CAMERA_SCRIPT = textwrap.dedent(
    """
    import copy
    import json
    import mujoco
    import numpy as np
    from neuroloop.plugins.engines.mujoco_camera import CameraSettings, WorldCamera
    from neuroloop.plugins.engines.mujoco_engine import shipped_model_folder

    model = mujoco.MjModel.from_xml_path(str(shipped_model_folder() / "reach.xml"))
    datas = [mujoco.MjData(model) for _ in range(3)]
    for world, data in enumerate(datas):  # three different hand postures
        data.qpos[:] = model.qpos0 + 0.15 * world
        mujoco.mj_forward(model, data)
    palm = datas[0].xpos[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "robot0:palm")]
    view = {"Track": None, "LookAt": palm.tolist(), "Distance": 0.5, "Azimuth": 90,
            "Elevation": -5, "MarkerRadius": 0.02, "Width": 40, "Height": 30}

    def camera(**changes):
        settings = CameraSettings.merge({**view, **changes}, {})
        return WorldCamera(model, settings, "[test]")

    def keep(world):
        pass

    fast, one, full = camera(Fast=True), camera(Fast=True, World=2), camera()
    coarse = camera(Fast=True, MeshCell=0.004)
    batch = fast.render(datas, None, keep)
    alone = one.render(datas, None, keep)
    faces = model.mesh_facenum.copy()
    tinted = copy.copy(model)  # world 1 owns a model whose geoms are all green
    tinted.geom_rgba[:] = [0.0, 1.0, 0.0, 1.0]
    tinted.geom_matid[:] = -1
    own = fast.render(datas, None, keep, [model, tinted, model]).astype(int)
    greener = [float((own[w, ..., 1] - own[w, ..., 0]).mean()) for w in range(3)]
    error = np.abs(coarse.render(datas, None, keep).astype(int) - batch).max(axis=-1)
    coarse.close()
    # A red sphere above the look-at point, then one below it, in every world.
    above = np.tile(palm + [0.0, 0.0, 0.08], (3, 1, 1))
    below = np.tile(palm - [0.0, 0.0, 0.08], (3, 1, 1))
    rows = []
    for markers in (above, below):
        picture = fast.render(datas, markers, keep)[0].astype(int)
        red = (picture[..., 0] > 150) & (picture[..., 1] < 60) & (picture[..., 2] < 60)
        rows.append(float(np.flatnonzero(red.any(axis=1)).mean()) if red.any() else None)
    before = {"fast": batch[0], "full": full.render(datas, None, keep)[0]}
    model.site_rgba[:] = [1.0, 0.0, 1.0, 1.0]  # every site opaque magenta, and large
    model.site_size[:] *= 4.0
    after = {"fast": fast.render(datas, None, keep)[0], "full": full.render(datas, None, keep)[0]}
    for each in (fast, one, full):
        each.close()
    print(json.dumps({
        "shape": list(batch.shape),
        "std": float(batch.std()),
        "alone_is_world_2": bool(np.array_equal(alone[0], batch[2])),
        "worlds_differ": [not np.array_equal(batch[0], batch[w]) for w in (1, 2)],
        "red_rows": rows,
        "sites_change": {k: not np.array_equal(before[k], after[k]) for k in before},
        "coarse_mean_error": float(error.mean()),
        "coarse_pixels_off": float((error > 32).mean()),
        "physics_faces_kept": bool(np.array_equal(faces, model.mesh_facenum)),
        "own_models_green_minus_red": greener,
    }))
    """
)


@pytest.fixture(scope="module")
def pictures() -> dict[str, Any]:
    """What ``CAMERA_SCRIPT`` found (one child process for the module's tests)."""
    result: dict[str, Any] = last_json_line_with_egl(CAMERA_SCRIPT)
    return result


def test_fast_pictures_are_each_worlds_upright_and_draw_no_sites(pictures: dict[str, Any]) -> None:
    result = pictures
    assert result["shape"] == [3, 30, 40, 3]
    assert result["std"] > 10  # a picture, not a blank frame
    assert result["alone_is_world_2"]  # the batch holds each world's own picture, in order
    assert result["worlds_differ"] == [True, True]
    above, below = result["red_rows"]
    assert above is not None and below is not None
    assert above < 15 < below  # row 0 is the top: a point above the hand is drawn high
    assert result["sites_change"] == {"fast": False, "full": True}


def test_coarse_meshes_draw_nearly_the_same_picture_and_leave_the_model_alone(
    pictures: dict[str, Any],
) -> None:
    result = pictures
    assert 0 < result["coarse_mean_error"] < 4  # of 255: not the same triangles, same hand
    assert result["coarse_pixels_off"] < 0.05
    assert result["physics_faces_kept"]


def test_worlds_that_own_a_model_are_drawn_with_its_colours(pictures: dict[str, Any]) -> None:
    plain, tinted, other = pictures["own_models_green_minus_red"]
    assert tinted > plain + 20 and tinted > other + 20
