"""Offscreen pictures of MuJoCo worlds: the MuJoCo engine's ``camera`` datapack.

A model camera, or a free camera that may follow a body, renders every world or one chosen
world; goal markers (positions the engine is sent as its ``markers`` datapack) are drawn as
small spheres into the picture, never into the physics. The free camera's framing comes from
the engine's ``Camera`` settings, falling back on the Body file's ``View``.

With ``Fast`` (the vision configs) a picture costs what a brain's input needs: no
multisampling, an offscreen buffer of the picture's size, no shadows, reflections, skybox, fog
or haze, and no sites (sensor zones and markers of the model, not things an eye sees). On
Mesa's software renderer (llvmpipe, no GPU) every triangle is shaded on the CPU whatever the
picture's size, so what is drawn, and how many samples a pixel has, is what costs.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

from neuroloop.errors import EngineError

GL_ERRORS = (mujoco.FatalError, AttributeError, ImportError, OSError, RuntimeError)
"""What creating an offscreen renderer raises when no OpenGL backend is usable."""

FREE_CAMERA_SETTINGS = {"Distance": "distance", "Azimuth": "azimuth", "Elevation": "elevation"}
"""``Camera`` keys that adjust the free camera (``mujoco.MjvCamera`` attributes)."""

VIEW_KEYS = ("Track", "LookAt", *FREE_CAMERA_SETTINGS)
"""Free-camera keys a Body file's ``View`` gives defaults for."""

MARKER_COLOURS = (
    (1.0, 0.0, 0.0, 1.0),
    (0.0, 0.8, 0.0, 1.0),
    (0.0, 0.0, 1.0, 1.0),
    (1.0, 0.9, 0.0, 1.0),
    (1.0, 0.0, 1.0, 1.0),
)
"""RGBA of marker i (cycled): HandReach's target colours, one per fingertip in order."""

IDENTITY_FRAME = np.eye(3).reshape(-1)
"""Orientation of a marker sphere (any orientation draws the same sphere)."""

FAST_OFF = (
    mujoco.mjtRndFlag.mjRND_SHADOW,
    mujoco.mjtRndFlag.mjRND_REFLECTION,
    mujoco.mjtRndFlag.mjRND_SKYBOX,
    mujoco.mjtRndFlag.mjRND_FOG,
    mujoco.mjtRndFlag.mjRND_HAZE,
)
"""Scene effects a ``Fast`` camera turns off."""

MAX_SCENE_GEOMS = 10_000
"""Room in the scene for the model's geoms, sites, decorations and goal markers."""

FONT_SCALE = mujoco.mjtFontScale.mjFONTSCALE_100
"""The renderer's font (MuJoCo's smallest; no text is drawn into pictures)."""

STAGES = ("scene", "draw", "read")
"""Where a picture's time goes: ``mjv_updateScene`` (and markers), ``mjr_render`` (the GL
calls; a software renderer rasterizes lazily, at the next read), ``mjr_readPixels``."""


@dataclass(frozen=True)
class CameraSettings:
    """The engine's ``Camera`` settings with the Body file's ``View`` filled in."""

    name: str | None
    """A model camera, or None for the free camera."""
    width: int
    """Picture width (px)."""
    height: int
    """Picture height (px)."""
    world: int | None
    """The one world rendered, or None for every world."""
    track: str | None
    """Body whose position the free camera looks at (LookAt is then an offset from it)."""
    look_at: tuple[float, float, float] | None
    """Point (or offset from the tracked body) the free camera looks at."""
    free: Mapping[str, float]
    """``MjvCamera`` attributes (distance, azimuth, elevation) to set."""
    marker_radius: float
    """Radius (m) of the goal-marker spheres."""
    fast: bool = False
    """No multisampling, a buffer of the picture's size, no effects, no sites."""
    mesh_cell: float | None = None
    """Grid cell (m) mesh vertices are snapped to for drawing, or None: meshes as loaded."""

    @classmethod
    def merge(cls, camera: Mapping[str, Any], view: Mapping[str, Any]) -> CameraSettings:
        """``Camera`` (schema defaults filled) over the Body file's ``View``."""

        def pick(key: str) -> Any:
            value = camera.get(key)
            return view.get(key) if value is None and camera.get("Name") is None else value

        look_at = pick("LookAt")
        return cls(
            name=camera.get("Name"),
            width=int(camera["Width"]),
            height=int(camera["Height"]),
            world=camera.get("World"),
            track=pick("Track"),
            look_at=None
            if look_at is None
            else (float(look_at[0]), float(look_at[1]), float(look_at[2])),
            free={
                attribute: float(pick(key))
                for key, attribute in FREE_CAMERA_SETTINGS.items()
                if pick(key) is not None
            },
            marker_radius=float(camera["MarkerRadius"]),
            fast=bool(camera.get("Fast", False)),
            mesh_cell=None if camera.get("MeshCell") is None else float(camera["MeshCell"]),
        )


class WorldCamera:
    """Renders worlds of one model offscreen.

    Args:
        model: The worlds' model (its offscreen buffer is set to fit the picture).
        settings: What to render and how.
        context: Prefix of error messages, e.g. ``"[physics] initialize"``.

    Raises:
        ValueError: If the camera or tracked body is not in the model.
        EngineError: If no OpenGL backend is usable.
    """

    def __init__(self, model: mujoco.MjModel, settings: CameraSettings, context: str) -> None:
        self.settings = settings
        self.seconds = dict.fromkeys(STAGES, 0.0)
        """Wall seconds spent so far in each of ``STAGES`` (for benchmarks)."""
        self._model = model
        self._track = -1
        self._camera = mujoco.MjvCamera()
        if settings.name is None:
            free = self._camera
            mujoco.mjv_defaultFreeCamera(model, free)
            for attribute, value in settings.free.items():
                setattr(free, attribute, value)
            if settings.track is not None:
                self._track = _named(
                    model, mujoco.mjtObj.mjOBJ_BODY, settings.track, "Track", context
                )
                if settings.look_at is None:
                    free.lookat[:] = 0.0
            if settings.look_at is not None:
                free.lookat[:] = settings.look_at
            self._offset = np.array(free.lookat)
        else:
            self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
            self._camera.fixedcamid = _named(
                model, mujoco.mjtObj.mjOBJ_CAMERA, settings.name, "Name", context
            )
        if settings.fast:
            model.vis.quality.offsamples = 0
            model.vis.global_.offwidth = settings.width
            model.vis.global_.offheight = settings.height
        else:
            model.vis.global_.offwidth = max(model.vis.global_.offwidth, settings.width)
            model.vis.global_.offheight = max(model.vis.global_.offheight, settings.height)
        self._option = mujoco.MjvOption()
        self._scene = mujoco.MjvScene(model, maxgeom=MAX_SCENE_GEOMS)
        if settings.fast:
            self._option.sitegroup[:] = 0
            for flag in FAST_OFF:
                self._scene.flags[flag] = 0
        self._viewport = mujoco.MjrRect(0, 0, settings.width, settings.height)
        # An OpenGL context is current in one thread at a time, and the engine server answers
        # calls on any of its threads: every GL call goes through this one thread.
        self._gl_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="camera-gl")
        try:
            self._gl, self._context = self._gl_thread.submit(self._open_gl).result()
        except GL_ERRORS as error:
            self._gl_thread.shutdown()
            raise EngineError(
                f"{context}: Camera needs an OpenGL backend for offscreen rendering; set "
                f"MUJOCO_GL=egl (GPU or Mesa EGL) or MUJOCO_GL=osmesa (software) before the "
                f"engine process starts. Received: MUJOCO_GL="
                f"{os.environ.get('MUJOCO_GL', '')!r}, "
                f"{type(error).__name__}: {error}"
            ) from None

    def _open_gl(self) -> tuple[Any, mujoco.MjrContext]:
        """An offscreen OpenGL context, current in the GL thread, and MuJoCo's on it."""
        model = self._model
        if self.settings.mesh_cell is not None:
            model = coarse_meshes(model, self.settings.mesh_cell)
        gl = mujoco.GLContext(model.vis.global_.offwidth, model.vis.global_.offheight)
        gl.make_current()
        context = mujoco.MjrContext(model, FONT_SCALE)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, context)
        return gl, context

    def worlds(self, n_worlds: int) -> list[int]:
        """The worlds each picture shows, in order."""
        return list(range(n_worlds)) if self.settings.world is None else [self.settings.world]

    def render(
        self,
        datas: Sequence[mujoco.MjData],
        markers: np.ndarray | None,
        prepare: Callable[[int], None],
        models: Sequence[mujoco.MjModel] | None = None,
    ) -> np.ndarray:
        """Pictures ``[n, Height, Width, 3]`` ``uint8`` of the rendered worlds.

        Args:
            datas: Every world's data.
            markers: Goal-marker positions ``[W, M, 3]`` (m, world frame), or None.
            prepare: Called with a world's index before it is drawn (e.g. to pose markers).
            models: Every world's model where worlds own one (domain randomisation: colours,
                sizes and lights come from it); None: the camera's model for all. Meshes and
                textures are the camera's model's.
        """
        return self._gl_thread.submit(self._render, datas, markers, prepare, models).result()

    def _render(
        self,
        datas: Sequence[mujoco.MjData],
        markers: np.ndarray | None,
        prepare: Callable[[int], None],
        models: Sequence[mujoco.MjModel] | None,
    ) -> np.ndarray:
        worlds = self.worlds(len(datas))
        settings = self.settings
        # OpenGL's rows run bottom to top: read into the batch, flip it once at the end.
        frames = np.empty((len(worlds), settings.height, settings.width, 3), dtype=np.uint8)
        seconds = self.seconds
        for frame, world in zip(frames, worlds, strict=True):
            started = time.perf_counter()
            prepare(world)
            data = datas[world]
            if self._track >= 0:
                self._camera.lookat[:] = data.xpos[self._track] + self._offset
            mujoco.mjv_updateScene(
                self._model if models is None else models[world],
                data,
                self._option,
                None,
                self._camera,
                mujoco.mjtCatBit.mjCAT_ALL,
                self._scene,
            )
            if markers is not None:
                self._draw_markers(markers[world])
            drawn = time.perf_counter()
            mujoco.mjr_render(self._viewport, self._scene, self._context)
            read = time.perf_counter()
            mujoco.mjr_readPixels(frame, None, self._viewport, self._context)
            seconds["scene"] += drawn - started
            seconds["draw"] += read - drawn
            seconds["read"] += time.perf_counter() - read
        return np.ascontiguousarray(frames[:, ::-1])

    def close(self) -> None:
        """Free the OpenGL context and its thread."""
        self._gl_thread.submit(self._close_gl).result()
        self._gl_thread.shutdown()

    def _close_gl(self) -> None:
        self._context.free()
        self._gl.free()

    def _draw_markers(self, positions: np.ndarray) -> None:
        scene = self._scene
        radius = self.settings.marker_radius
        for index, position in enumerate(positions):
            if scene.ngeom >= scene.maxgeom:
                return
            mujoco.mjv_initGeom(
                scene.geoms[scene.ngeom],
                mujoco.mjtGeom.mjGEOM_SPHERE,
                np.array([radius, 0.0, 0.0]),
                np.asarray(position, dtype=np.float64),
                IDENTITY_FRAME,
                np.array(MARKER_COLOURS[index % len(MARKER_COLOURS)], dtype=np.float32),
            )
            scene.ngeom += 1


def coarse_meshes(model: mujoco.MjModel, cell: float) -> mujoco.MjModel:
    """A copy of ``model`` whose meshes have fewer triangles, for drawing only.

    Vertex clustering: each mesh vertex is replaced by the first vertex of the mesh that
    falls in the same cube of side ``cell`` (m, in the mesh's frame); triangles that collapse,
    and repeats, are dropped. The kept triangles use the mesh's own vertices, normals and
    texture coordinates, so the mesh keeps its frame and the copy needs no new arrays (the
    compiled model's sizes are fixed; a simplifier that makes new vertices would need a
    recompiled model, whose mesh frames could move). A cell about a pixel's footprint
    leaves the picture nearly unchanged and cuts the triangles llvmpipe shades on the CPU.
    """
    coarse = copy.copy(model)
    for mesh in range(model.nmesh):
        start, count = model.mesh_faceadr[mesh], model.mesh_facenum[mesh]
        first = model.mesh_vertadr[mesh]
        vertices = model.mesh_vert[first : first + model.mesh_vertnum[mesh]]
        _, firsts, cells = np.unique(
            np.floor(vertices / cell).astype(np.int64),
            axis=0,
            return_index=True,
            return_inverse=True,
        )
        faces = firsts[cells.reshape(-1)][model.mesh_face[start : start + count]]
        whole = (
            (faces[:, 0] != faces[:, 1])
            & (faces[:, 1] != faces[:, 2])
            & (faces[:, 0] != faces[:, 2])
        )
        _, distinct = np.unique(np.sort(faces[whole], axis=1), axis=0, return_index=True)
        kept = np.flatnonzero(whole)[np.sort(distinct)]
        end = start + len(kept)
        coarse.mesh_face[start:end] = faces[kept]
        coarse.mesh_facenormal[start:end] = model.mesh_facenormal[start + kept]
        if model.mesh_texcoordadr[mesh] >= 0:
            coarse.mesh_facetexcoord[start:end] = model.mesh_facetexcoord[start + kept]
        coarse.mesh_facenum[mesh] = len(kept)
    return coarse


def _named(model: mujoco.MjModel, kind: mujoco.mjtObj, name: str, key: str, context: str) -> int:
    """The id of the model's ``kind`` called ``name`` (``Camera.key`` names it).

    Raises:
        ValueError: If the model has none, listing those it has.
    """
    index = int(mujoco.mj_name2id(model, kind, name))
    if index < 0:
        count = model.ncam if kind == mujoco.mjtObj.mjOBJ_CAMERA else model.nbody
        names = [mujoco.mj_id2name(model, kind, i) for i in range(count)]
        raise ValueError(
            f"{context}: EngineExtraConfigs.Camera.{key}: expected one of the model's "
            f"{'cameras' if key == 'Name' else 'bodies'} {names} or absent (free camera). "
            f"Received: {name!r}"
        )
    return index
