"""MPI for distributed PPO: the one module that knows whether other ranks exist.

The trainer calls these operations unconditionally; :func:`get_communicator` decides what
they do. Under ``mpiexec -n N`` (N > 1) they are MPI collectives over ``MPI.COMM_WORLD``;
in a plain ``python`` run, or when mpi4py cannot be imported, every operation is the
identity and no MPI call is made:

=========================== ============================================== =================
operation                   with N ranks                                   one process
=========================== ============================================== =================
``allreduce_mean(arrays)``  one float ``Allreduce(SUM)``, divided by N     the arrays
``allreduce_sum(values)``   one float64 ``Allreduce(SUM)``                 the values
``broadcast(array)``        buffer ``Bcast`` of root's array               the array
``broadcast_json(value)``   root's value, as UTF-8 JSON bytes              the value
``merge_running_stats``     exact pooled count, mean and variance (Chan)   the statistics
``barrier()``               ``Barrier``                                    nothing
``abort_on_error()``        an uncaught exception aborts every rank        re-raises
=========================== ============================================== =================

Nothing is pickled: arrays travel as raw buffers and small values as JSON.

Launching. ``mpiexec -n 4 neuroloop train ...`` with the ``mpiexec`` of the MPI that mpi4py
loads (the ``mpich`` wheel installs one next to ``python``; no hostfile, ssh or launcher
flag is needed on one machine). Set ``OMP_NUM_THREADS=1`` so N ranks do not oversubscribe
the cores.

Importing this module does not import mpi4py; :func:`get_communicator` does, and
``from mpi4py import MPI`` initialises MPI. In a plain ``python`` run the mpich wheel
initialises a one-rank "singleton" world without ``mpiexec``: about 0.1 s, one extra
thread and a shared-memory segment in ``/dev/shm`` that is removed at exit. A process
started *by* an MPI rank inherits ``PMI_*`` variables and aborts at that singleton
initialisation (``PMI_Init returned -1``), so engine processes must never call
:func:`get_communicator` (or the launcher must drop ``PMI_*`` from their environment).

Collectives assume every rank calls the same operations in the same order with
arrays of the same shapes; a rank that raises while the others wait in a collective
would hang the job, which is what :meth:`Communicator.abort_on_error` is for.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from neuroloop.errors import CollectiveError, CollectiveInterrupt

if TYPE_CHECKING:
    from mpi4py import MPI

LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
"""Environment variables in which MPICH/Intel MPI and Open MPI launchers give the world size."""


class Communicator(abc.ABC):
    """Collective operations of one rank, identical in signature with or without MPI.

    Every rank must call the same collectives in the same order; arrays passed to
    ``allreduce_mean`` and ``broadcast`` must have the same shapes and dtypes on all ranks.
    """

    @property
    @abc.abstractmethod
    def rank(self) -> int:
        """This process's rank, ``0 <= rank < size``."""

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """The number of ranks."""

    @property
    def is_root(self) -> bool:
        """True on rank 0, the rank that logs, checkpoints and broadcasts weights."""
        return self.rank == 0

    @abc.abstractmethod
    def allreduce_mean(self, arrays: Sequence[npt.ArrayLike]) -> list[np.ndarray]:
        """Element-wise mean over ranks of each array (for gradients).

        Args:
            arrays: floating-point arrays (``tf.Tensor`` works too); shapes may differ
                from each other but must match across ranks.

        Returns:
            One array per input, with the input's shape and dtype (float32 stays float32).
            The arrays are flattened into one buffer and reduced with a single Allreduce.
        """

    @abc.abstractmethod
    def allreduce_sum(self, values: npt.ArrayLike) -> np.ndarray:
        """Element-wise sum over ranks, in float64 (for episode statistics).

        Args:
            values: a number, a sequence of numbers or an array; same shape on every rank.

        Returns:
            A float64 array of the shape of ``values``.
        """

    @abc.abstractmethod
    def broadcast(self, array: npt.ArrayLike, root: int = 0) -> np.ndarray:
        """Rank ``root``'s array, on every rank (for flat float32 weight vectors).

        Args:
            array: on ``root`` the values to send; on other ranks an array of the same
                size and dtype (typically the local, stale weights).
            root: the rank whose values everyone receives.

        Returns:
            A new C-contiguous array with the local array's shape and root's values.

        Raises:
            ValueError: if this rank's array differs in size or dtype from root's.
        """

    @abc.abstractmethod
    def broadcast_json(self, value: object, root: int = 0) -> Any:
        """Rank ``root``'s small JSON-able value (a config, a seed list), on every rank.

        Args:
            value: on ``root`` anything ``json.dumps`` accepts; ignored on other ranks
                (pass ``None``).
            root: the rank whose value everyone receives.

        Returns:
            Root's value; with several ranks after a JSON round trip (tuples come back as
            lists), on every rank.
        """

    @abc.abstractmethod
    def merge_running_stats(
        self, count: float, mean: npt.ArrayLike, var: npt.ArrayLike
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Exact count, mean and (population) variance of the union of every rank's data.

        Chan et al.'s parallel formula: ``n = sum n_i``, ``mean = sum n_i mean_i / n``,
        ``M2 = sum (n_i var_i + n_i (mean_i - mean)^2)``, ``var = M2 / n``, computed in
        float64. Pass the statistics of data not yet merged (for example this cycle's
        observations), then combine the result with the shared running statistics, or
        data merged before is counted N times.

        Args:
            count: number of samples on this rank (may be 0 or fractional).
            mean: per-feature mean over this rank's samples.
            var: per-feature population variance (``ddof=0``), same shape as ``mean``.

        Returns:
            ``(count, mean, var)`` over all ranks; ``mean`` and ``var`` keep the dtype of
            the inputs' floating point type. With a total count of 0 both are zeros.

        Raises:
            ValueError: if ``mean`` and ``var`` shapes differ.
        """

    @abc.abstractmethod
    def barrier(self) -> None:
        """Wait until every rank has called ``barrier``."""

    @abc.abstractmethod
    def abort_on_error(self) -> contextlib.AbstractContextManager[None]:
        """Make an uncaught exception end every rank instead of hanging the others.

        Wrap a rank's whole program in it (``with comm.abort_on_error(): train()``):
        with several ranks the traceback is printed and ``MPI_Abort`` makes ``mpiexec``
        stop all ranks with a non-zero status; with one process the exception propagates.
        (Without it, mpi4py's ``MPI_Finalize`` at exit waits for the other ranks forever.
        ``MPI_Abort`` skips MPICH's cleanup, so its ``/dev/shm/mpich_shm_*`` segment of
        about 2 MB stays behind.)
        """


class SingleProcess(Communicator):
    """The only rank: every operation returns its input, and nothing calls MPI."""

    @property
    def rank(self) -> int:
        """Always 0."""
        return 0

    @property
    def size(self) -> int:
        """Always 1."""
        return 1

    def allreduce_mean(self, arrays: Sequence[npt.ArrayLike]) -> list[np.ndarray]:
        """The arrays themselves (``np.asarray``, no copy); see :class:`Communicator`."""
        return _float_arrays(arrays)

    def allreduce_sum(self, values: npt.ArrayLike) -> np.ndarray:
        """The values as a float64 array; see :class:`Communicator`."""
        return np.array(values, dtype=np.float64)

    def broadcast(self, array: npt.ArrayLike, root: int = 0) -> np.ndarray:
        """A C-contiguous copy of the array; see :class:`Communicator`."""
        _check_root(root, self.size, "broadcast")
        return np.array(array, order="C")

    def broadcast_json(self, value: object, root: int = 0) -> Any:
        """The value itself; see :class:`Communicator`."""
        _check_root(root, self.size, "broadcast_json")
        return value

    def merge_running_stats(
        self, count: float, mean: npt.ArrayLike, var: npt.ArrayLike
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """The statistics themselves, exactly; see :class:`Communicator`."""
        mean_array, var_array = _stats_arrays(mean, var)
        return float(count), mean_array, var_array

    def barrier(self) -> None:
        """Nothing to wait for."""

    @contextlib.contextmanager
    def abort_on_error(self) -> Iterator[None]:
        """Exceptions propagate as usual; see :class:`Communicator`."""
        yield


class MpiCommunicator(Communicator):
    """Collectives over an mpi4py intracommunicator with at least two ranks."""

    def __init__(self, comm: MPI.Intracomm) -> None:
        """Wrap ``comm`` (usually ``MPI.COMM_WORLD``); :func:`get_communicator` picks."""
        self._comm = comm
        self._rank = comm.Get_rank()
        self._size = comm.Get_size()

    @property
    def rank(self) -> int:
        """This process's rank in the communicator."""
        return self._rank

    @property
    def size(self) -> int:
        """The communicator's size."""
        return self._size

    def allreduce_mean(self, arrays: Sequence[npt.ArrayLike]) -> list[np.ndarray]:
        """One Allreduce(SUM) of all arrays flattened together, divided by ``size``."""
        inputs = _float_arrays(arrays)
        if not inputs:
            return []
        buffer = np.concatenate([a.ravel() for a in inputs], dtype=np.result_type(*inputs))
        self._sum_in_place(buffer)
        buffer /= self._size
        ends = np.cumsum([a.size for a in inputs])
        return [
            piece.reshape(a.shape).astype(a.dtype, copy=False)
            for a, piece in zip(inputs, np.split(buffer, ends[:-1]), strict=True)
        ]

    def allreduce_sum(self, values: npt.ArrayLike) -> np.ndarray:
        """One float64 Allreduce(SUM)."""
        buffer = np.array(values, dtype=np.float64, order="C")
        self._sum_in_place(buffer)
        return buffer

    def broadcast(self, array: npt.ArrayLike, root: int = 0) -> np.ndarray:
        """A size/dtype check, then one buffer ``Bcast`` of root's array."""
        _check_root(root, self._size, "broadcast")
        buffer = np.array(array, order="C")
        header = np.array(
            [buffer.size, ord(buffer.dtype.kind), buffer.dtype.itemsize], dtype=np.int64
        )
        root_header = header.copy()
        self._comm.Bcast(root_header, root=root)
        if not np.array_equal(header, root_header):
            raise ValueError(
                f"[mpi] broadcast: rank {self._rank} must pass an array of the size and "
                f"dtype of root {root}'s, which has {_describe(root_header)}. "
                f"Received: {_describe(header)}"
            )
        self._comm.Bcast(buffer, root=root)
        return buffer

    def broadcast_json(self, value: object, root: int = 0) -> Any:
        """Root's value as UTF-8 JSON: its length, then its bytes, by ``Bcast``."""
        _check_root(root, self._size, "broadcast_json")
        payload = json.dumps(value).encode() if self._rank == root else b""
        length = np.array([len(payload)], dtype=np.int64)
        self._comm.Bcast(length, root=root)
        buffer = np.zeros(int(length[0]), dtype=np.uint8)
        if self._rank == root:
            buffer[:] = np.frombuffer(payload, dtype=np.uint8)
        self._comm.Bcast(buffer, root=root)
        return json.loads(buffer.tobytes().decode())

    def merge_running_stats(
        self, count: float, mean: npt.ArrayLike, var: npt.ArrayLike
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Two float64 Allreduce(SUM): counts and weighted means, then M2 terms."""
        mean_array, var_array = _stats_arrays(mean, var)
        dtype = np.result_type(mean_array.dtype, var_array.dtype, np.float32)
        n = float(count)
        local_mean = mean_array.astype(np.float64).ravel()
        sums = np.concatenate([[n], n * local_mean])
        self._sum_in_place(sums)
        total = float(sums[0])
        if total == 0.0:
            zeros = np.zeros(mean_array.shape, dtype=dtype)
            return 0.0, zeros, zeros.copy()
        pooled_mean = sums[1:] / total
        m2 = n * var_array.astype(np.float64).ravel() + n * (local_mean - pooled_mean) ** 2
        self._sum_in_place(m2)
        return (
            total,
            pooled_mean.reshape(mean_array.shape).astype(dtype),
            (m2 / total).reshape(mean_array.shape).astype(dtype),
        )

    def barrier(self) -> None:
        """``MPI_Barrier`` on the communicator."""
        self._comm.Barrier()

    @contextlib.contextmanager
    def abort_on_error(self) -> Iterator[None]:
        """Print the traceback with the rank, then ``MPI_Abort`` the communicator."""
        try:
            yield
        except (CollectiveError, CollectiveInterrupt):
            raise
        except SystemExit as exit_:
            if exit_.code in (None, 0):
                raise
            self._abort(exit_.code if isinstance(exit_.code, int) else 1)
        except BaseException:
            self._abort(1)

    def _abort(self, errorcode: int) -> None:
        """Report the exception being handled, then end every rank."""
        print(f"[mpi] rank {self._rank} of {self._size} failed:", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        sys.stdout.flush()
        self._comm.Abort(errorcode)

    def _sum_in_place(self, buffer: np.ndarray) -> None:
        """``Allreduce(IN_PLACE, buffer, SUM)``; ``buffer`` is contiguous."""
        from mpi4py import MPI

        self._comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)


def get_communicator(comm: MPI.Intracomm | None = None) -> Communicator:
    """The communicator for this process: MPI with several ranks, else the single process.

    Args:
        comm: an mpi4py intracommunicator to use; ``None`` means ``MPI.COMM_WORLD``, if
            mpi4py can be imported (which initialises MPI).

    Returns:
        :class:`MpiCommunicator` if the communicator has more than one rank, otherwise
        :class:`SingleProcess`.

    Raises:
        RuntimeError: if a launcher started several ranks (``PMI_SIZE`` or
            ``OMPI_COMM_WORLD_SIZE`` > 1) but this process sees a world of one, which
            happens when ``mpiexec`` belongs to a different MPI than the one mpi4py loads
            or mpi4py is missing; each rank would otherwise train alone.
    """
    if comm is None:
        try:
            from mpi4py import MPI
        except ImportError:
            _check_launcher_size(1, "mpi4py cannot be imported")
            return SingleProcess()
        comm = MPI.COMM_WORLD
        _check_launcher_size(comm.Get_size(), f"MPI ({MPI.Get_library_version().split()[0]})")
    if comm.Get_size() == 1:
        return SingleProcess()
    return MpiCommunicator(comm)


def _check_launcher_size(size: int, seen_by: str) -> None:
    """Raise if the launcher's environment promises more ranks than MPI sees."""
    for variable in LAUNCHER_SIZE_VARIABLES:
        launched = os.environ.get(variable, "")
        if launched.isdigit() and int(launched) > 1 and size == 1:
            raise RuntimeError(
                f"[mpi] get_communicator: the launcher started {launched} ranks "
                f"({variable}={launched}) but {seen_by} sees a world of size {size}. Use the "
                f"mpiexec next to this Python ({os.path.dirname(sys.executable)}/mpiexec) "
                "or set MPI4PY_LIBMPI to the launcher's libmpi."
            )


def _float_arrays(arrays: Sequence[npt.ArrayLike]) -> list[np.ndarray]:
    """``np.asarray`` of each array; a ``TypeError`` naming the first non-float one."""
    result = [np.asarray(a) for a in arrays]
    for index, array in enumerate(result):
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(
                f"[mpi] allreduce_mean: arrays must be floating point. "
                f"Received: arrays[{index}].dtype={array.dtype}"
            )
    return result


def _stats_arrays(mean: npt.ArrayLike, var: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``mean`` and ``var`` as arrays of one shape."""
    mean_array, var_array = np.asarray(mean), np.asarray(var)
    if mean_array.shape != var_array.shape:
        raise ValueError(
            "[mpi] merge_running_stats: mean and var must have the same shape. "
            f"Received: mean.shape={mean_array.shape}, var.shape={var_array.shape}"
        )
    return mean_array, var_array


def _check_root(root: int, size: int, operation: str) -> None:
    """A ``ValueError`` unless ``0 <= root < size``."""
    if not 0 <= root < size:
        raise ValueError(
            f"[mpi] {operation}: root must be a rank in [0, {size}). Received: root={root}"
        )


def _describe(header: np.ndarray) -> str:
    """``"12 values of kind 'f', 4 bytes each"`` for a broadcast header."""
    size, kind, itemsize = (int(v) for v in header)
    return f"{size} values of kind {chr(kind)!r}, {itemsize} bytes each"
