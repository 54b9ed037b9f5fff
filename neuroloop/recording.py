"""Record every datapack exchanged in a simulation, for later analysis.

``.jsonl``: one JSON object per datapack (time, direction, engine, name, and the value;
tensors as ``{"dtype", "shape", "data"}`` with nested lists). ``.npz``: for each
``direction/engine/name`` the stacked values (when shapes agree) and a ``.../time_ns`` array.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from neuroloop.datapack import DataPackValue, is_tensor_value

SUFFIXES = (".jsonl", ".npz")


class DataPackRecorder:
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
        self._archive: IO[bytes] | None = None
        self._series: dict[str, list[tuple[int, Any]]] = defaultdict(list)
        if self.path.suffix == ".jsonl":
            self._stream = self.path.open("w", encoding="utf-8")
        else:
            self._archive = self.path.open("wb")

    def __enter__(self) -> DataPackRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

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
        else:
            self._series[f"{direction}/{engine}/{name}"].append((time_ns, value))

    def close(self) -> None:
        """Flush everything to ``path``. Safe to call twice."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        elif self._archive is not None:
            arrays: dict[str, np.ndarray] = {}
            for key, series in self._series.items():
                arrays[f"{key}/time_ns"] = np.array([t for t, _ in series], dtype=np.int64)
                values = [v for _, v in series]
                if (
                    all(is_tensor_value(v) for v in values)
                    and len({np.shape(v) for v in values}) == 1
                ):
                    arrays[key] = np.stack([np.asarray(v) for v in values])
                else:
                    arrays[key] = np.array([json.dumps(_jsonable(v)) for v in values])
            np.savez_compressed(self._archive, **arrays)  # type: ignore[arg-type]
            self._series.clear()
            self._archive.close()
            self._archive = None


def _jsonable(value: DataPackValue) -> Any:
    if is_tensor_value(value):
        array = np.asarray(value)
        return {"dtype": array.dtype.str, "shape": list(array.shape), "data": array.tolist()}
    return value
