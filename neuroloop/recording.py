"""Record every datapack exchanged in a simulation, for later analysis.

``.jsonl``: one JSON object per datapack (time, direction, engine, name, and the value;
tensors as ``{"dtype", "shape", "data"}`` with nested lists). ``.npz``: for each
``direction/engine/name`` the stacked values (when shapes agree) and a ``.../time_ns`` array.
Both stream to disk as the simulation runs (``NpzStream``), so a long recording does not
grow in memory; only values that are not tensors of one shape are kept until the end.
"""

from __future__ import annotations

import abc
import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any, Self

import numpy as np

from neuroloop.datapack import DataPackValue, is_tensor_value

SUFFIXES = (".jsonl", ".npz")
LAYER_PREFIX = "layer:"
"""A brain engine publishes a recorded layer's activations as datapack ``layer:<name>``."""
COPY_CHUNK_BYTES = 1 << 20


class _Closable(abc.ABC):
    """A writer used as a context manager: leaving the block closes it."""

    @abc.abstractmethod
    def close(self) -> None:
        """Finish writing. Safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NpzStream:
    """Writes an ``.npz`` archive whose arrays grow row by row, without holding them in memory.

    Rows appended under a key go to a temporary file beside ``path``; ``close`` writes each
    key's rows as one array ``[rows, *row_shape]`` into the archive (``np.load`` reads it like
    any ``.npz``) and removes the temporary files.

    Args:
        path: The ``.npz`` file; opened here, so an unwritable path fails at once.

    Raises:
        OSError: If ``path`` (or a temporary file beside it) cannot be written.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._archive: IO[bytes] | None = self.path.open("wb")
        self._folder = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        self._files: dict[str, IO[bytes]] = {}
        self._layout: dict[str, tuple[np.dtype, tuple[int, ...], int]] = {}
        self._whole: dict[str, np.ndarray] = {}

    def layout(self, key: str) -> tuple[np.dtype, tuple[int, ...], int] | None:
        """``(dtype, row shape, rows)`` of the rows appended under ``key`` so far."""
        return self._layout.get(key)

    def append(self, key: str, rows: np.ndarray) -> None:
        """Append ``rows`` ``[n, *row_shape]``; every append to a key has its dtype and shape.

        Raises:
            ValueError: If the dtype or row shape differs from the key's first rows.
        """
        rows = np.ascontiguousarray(rows)
        known = self._layout.get(key)
        if known is None:
            self._files[key] = (self._folder / f"{len(self._files)}.bin").open("wb")
            known = (rows.dtype, rows.shape[1:], 0)
        dtype, shape, count = known
        if rows.dtype != dtype or rows.shape[1:] != shape:
            raise ValueError(
                f"[recording] {key}: expected rows of {dtype} with shape {shape}. "
                f"Received: {rows.dtype} with shape {rows.shape[1:]}"
            )
        self._files[key].write(rows.tobytes())
        self._layout[key] = (dtype, shape, count + len(rows))

    def take(self, key: str) -> np.ndarray:
        """Remove ``key``'s rows from the stream and return them (e.g. to store them another
        way)."""
        dtype, shape, count = self._layout.pop(key)
        stream = self._files.pop(key)
        stream.close()
        return np.fromfile(stream.name, dtype=dtype).reshape(count, *shape)

    def put(self, key: str, array: np.ndarray) -> None:
        """Store a whole, small array (labels, constants) under ``key``."""
        self._whole[key] = np.asarray(array)

    def close(self) -> None:
        """Write the archive and remove the temporary files. Safe to call twice."""
        if self._archive is None:
            return
        try:
            with zipfile.ZipFile(self._archive, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
                for key, (dtype, shape, count) in self._layout.items():
                    self._files[key].close()
                    header = {
                        "descr": np.lib.format.dtype_to_descr(dtype),
                        "fortran_order": False,
                        "shape": (count, *shape),
                    }
                    with (
                        zf.open(f"{key}.npy", "w", force_zip64=True) as member,
                        open(self._files[key].name, "rb") as rows,
                    ):
                        np.lib.format.write_array_header_2_0(member, header)
                        shutil.copyfileobj(rows, member, COPY_CHUNK_BYTES)
                for key, array in self._whole.items():
                    with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, array, allow_pickle=False)
        finally:
            for stream in self._files.values():
                stream.close()
            shutil.rmtree(self._folder, ignore_errors=True)
            self._archive.close()
            self._archive = None


class DataPackRecorder(_Closable):
    """Collects datapacks and writes them to ``path`` (format chosen by its suffix).

    The file is opened here, before anything is recorded, so a path that cannot be written
    fails before a simulation starts.

    Args:
        path: A ``.jsonl`` or ``.npz`` file.

    Raises:
        ValueError: If the suffix is neither.
        OSError: If the file cannot be opened for writing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.suffix not in SUFFIXES:
            raise ValueError(
                f"--record: expected a file ending in {' or '.join(SUFFIXES)}. "
                f"Received: {self.path}"
            )
        self.count = 0
        self._stream: IO[str] | None = None
        self._archive: NpzStream | None = None
        self._texts: dict[str, list[str]] = {}
        """Series kept as JSON texts (values that are not tensors of one shape)."""
        if self.path.suffix == ".jsonl":
            self._stream = self.path.open("w", encoding="utf-8")
        else:
            self._archive = NpzStream(self.path)

    def record(
        self, time_ns: int, direction: str, engine: str, name: str, value: DataPackValue
    ) -> None:
        if value is None:
            return
        self.count += 1
        if self._stream is not None:
            entry = {
                "time_ns": time_ns,
                "direction": direction,
                "engine": engine,
                "name": name,
                "value": _jsonable(value),
            }
            self._stream.write(json.dumps(entry) + "\n")
        elif self._archive is not None:
            key = f"{direction}/{engine}/{name}"
            self._archive.append(f"{key}/time_ns", np.array([time_ns], dtype=np.int64))
            self._append(self._archive, key, value)

    def _append(self, archive: NpzStream, key: str, value: DataPackValue) -> None:
        """Stream a tensor of the key's shape; keep anything else as JSON text."""
        if key not in self._texts and is_tensor_value(value):
            rows = np.asarray(value)[None]
            layout = archive.layout(key)
            if layout is None or layout[:2] == (rows.dtype, rows.shape[1:]):
                archive.append(key, rows)
                return
        if key not in self._texts:
            earlier = archive.take(key) if archive.layout(key) is not None else None
            self._texts[key] = (
                [] if earlier is None else [json.dumps(_jsonable(v)) for v in earlier]
            )
        self._texts[key].append(json.dumps(_jsonable(value)))

    def close(self) -> None:
        """Flush everything to ``path``. Safe to call twice."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        elif self._archive is not None:
            for key, texts in self._texts.items():
                self._archive.put(key, np.array(texts))
            self._texts.clear()
            self._archive.close()
            self._archive = None


def _jsonable(value: DataPackValue) -> Any:
    if is_tensor_value(value):
        array = np.asarray(value)
        return {"dtype": array.dtype.str, "shape": list(array.shape), "data": array.tolist()}
    return value


EPISODE, STEP, WORLD = "episode", "step", "world"
"""Keys of the row index of a step recording: each row is one world at one control step."""
COLUMNS = "columns/"
"""``columns/<key>``: the label of every column of array ``<key>``."""
META = "meta/"
"""``meta/<name>``: what produced the recording (brain config, weights, control step)."""


def column_labels(key: str, row_shape: tuple[int, ...]) -> np.ndarray:
    """Labels of the columns of ``key``'s rows: ``name`` for scalars, ``name[i]`` (or
    ``name[i,j]``) for arrays, where ``name`` is the last part of the key."""
    name = key.rsplit("/", 1)[-1]
    if not row_shape:
        return np.array([name])
    return np.array([f"{name}[{','.join(map(str, i))}]" for i in np.ndindex(*row_shape)])


class StepRecorder(_Closable):
    """Writes named per-step arrays of a batch of worlds as rows of an ``.npz`` recording.

    Each ``add`` takes one stretch of steps ``[T, W, ...]`` per key (a gathering) and the
    steps where episodes start; rows are written episode by episode (world-major), with an
    ``episode`` id (counted across stretches), the ``step`` within it and the ``world``. Every
    key gets ``columns/<key>`` labels. Rows stream to disk (``NpzStream``).

    Args:
        path: The ``.npz`` file.

    Raises:
        ValueError: If ``path`` does not end in ``.npz``.
        OSError: If it cannot be written.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.suffix != ".npz":
            raise ValueError(f"--record: expected a file ending in .npz. Received: {self.path}")
        self._stream = NpzStream(self.path)
        self.episodes = 0
        self.rows = 0

    def meta(self, name: str, value: np.ndarray | str) -> None:
        """Store ``meta/<name>`` (a string or a small array)."""
        self._stream.put(f"{META}{name}", np.asarray(value))

    def add(self, arrays: dict[str, np.ndarray], episode_start: np.ndarray) -> None:
        """Append a stretch of steps.

        Args:
            arrays: ``{key: [T, W, ...]}``.
            episode_start: ``[T, W]`` bool; the first step of the stretch starts an episode.
        """
        starts = np.asarray(episode_start, dtype=bool).T.copy()  # [W, T]
        starts[:, 0] = True
        worlds, steps = starts.shape
        episode = np.cumsum(starts.ravel()) - 1 + self.episodes
        begun = np.maximum.accumulate(np.where(starts, np.arange(steps), 0), axis=1)
        step = (np.arange(steps) - begun).ravel()
        stream = self._stream
        stream.append(EPISODE, episode.astype(np.int64))
        stream.append(STEP, step.astype(np.int64))
        stream.append(WORLD, np.repeat(np.arange(worlds), steps).astype(np.int64))
        for key, values in arrays.items():
            values = np.asarray(values)
            rows = values.swapaxes(0, 1).reshape(worlds * steps, *values.shape[2:])
            if stream.layout(key) is None:
                stream.put(f"{COLUMNS}{key}", column_labels(key, rows.shape[1:]))
            stream.append(key, rows)
        self.episodes = int(episode[-1]) + 1
        self.rows += worlds * steps

    def close(self) -> None:
        """Write the recording. Safe to call twice."""
        self._stream.close()


class Recording:
    """A step recording read back: arrays by key, their column labels, and its metadata.

    Args:
        path: An ``.npz`` written by ``StepRecorder``.

    Raises:
        ValueError: If the file is not such a recording.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                self._arrays = {key: archive[key] for key in archive.files}
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise ValueError(
                f"{self.path}: expected a step recording (.npz). Received: {error}"
            ) from None
        if EPISODE not in self._arrays:
            raise ValueError(
                f"{self.path}: expected a step recording with {EPISODE!r}, {STEP!r} and "
                f"{WORLD!r} arrays (neuroloop evaluate --record). Received: "
                f"{sorted(self._arrays)[:8]}"
            )

    def __getitem__(self, key: str) -> np.ndarray:
        return self._arrays[key]

    def __contains__(self, key: str) -> bool:
        return key in self._arrays

    def keys(self, prefix: str = "") -> list[str]:
        """Data keys (no labels, no metadata) starting with ``prefix``."""
        return [
            key
            for key in self._arrays
            if key.startswith(prefix) and not key.startswith((COLUMNS, META))
        ]

    def columns(self, key: str) -> list[str]:
        """The column labels of ``key``."""
        return [str(label) for label in self._arrays[f"{COLUMNS}{key}"]]

    def meta(self, name: str) -> np.ndarray | None:
        """``meta/<name>``, or ``None``."""
        return self._arrays.get(f"{META}{name}")

    @property
    def episode(self) -> np.ndarray:
        return self._arrays[EPISODE]

    @property
    def step(self) -> np.ndarray:
        return self._arrays[STEP]
