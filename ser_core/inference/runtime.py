"""Running the model when serving: the TensorFlow Lite runtime, and one BLAS thread for the work.

Serving never imports TensorFlow: :class:`LiteModel` runs the exported ``.tflite`` file with
LiteRT's interpreter, which imports in a fraction of a second. :func:`one_blas_thread` keeps
NumPy's BLAS on one thread while a verdict is computed, whatever the order of a program's
imports: the work is many small matrix products, and extra BLAS threads only contend with
each other and with concurrent requests (measured 2x slower per clip, 10-30x under load).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np

from ..errors import ArtifactError, ParameterError

__all__ = ["LiteModel", "one_blas_thread"]

_blas_lock = threading.Lock()
_blas_users = 0  # blocks of one_blas_thread open in this process
_blas_saved: list[tuple[object, int]] = []  # each BLAS library's thread count before the first block
_blas_libraries: list | None = None  # threadpoolctl's handles of the BLAS libraries NumPy loaded


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Within this block (re-entrant, from any number of threads), BLAS runs one thread; the
    previous setting is restored when the last such block in the process ends. Costs a few
    microseconds; does nothing without threadpoolctl."""
    global _blas_users
    with _blas_lock:
        _blas_users += 1
        if _blas_users == 1:
            for library in _blas():
                _blas_saved.append((library, library.get_num_threads()))
                library.set_num_threads(1)
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                for library, threads in _blas_saved:
                    library.set_num_threads(threads)
                _blas_saved.clear()


def _blas() -> list:
    """The BLAS libraries loaded in this process, found once (NumPy's is loaded by now)."""
    global _blas_libraries
    if _blas_libraries is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - a dependency of the package
            _blas_libraries = []
        else:
            _blas_libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    return _blas_libraries


class LiteModel:
    """A ``.tflite`` classifier run by LiteRT on one thread; safe to share across threads."""

    def __init__(self, content: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        try:
            # LiteRT's built-in kernels, without the default XNNPACK delegate: for a network this
            # small the delegate only adds ~30 ms to the first call (cold start) and a log line
            self._interpreter = Interpreter(
                model_content=content,
                num_threads=1,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ArtifactError("The model file is not a valid TensorFlow Lite model; reinstall the artifacts.") from e
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.n_features = int(self._input["shape"][-1])
        self.n_classes = int(self._output["shape"][-1])
        self._batch = int(self._input["shape"][0])
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for standardised features. ``(batch, n_features) -> (batch, n_classes)``."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ParameterError(f"The model expects feature rows of length {self.n_features}.")
        if x.shape[0] == 0:
            return np.zeros((0, self.n_classes), np.float32)
        with self._lock:
            if x.shape[0] != self._batch:
                self._interpreter.resize_tensor_input(self._input["index"], x.shape)
                self._interpreter.allocate_tensors()
                self._batch = x.shape[0]
            self._interpreter.set_tensor(self._input["index"], x)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output["index"]).copy()
