"""The device's primary CUDA context, made current around every piece of CUDA work.

A CUDA context is current per thread. `import pycuda.autoinit` creates one that is current only
on the thread that imports it; the node calls `infer` from its worker thread, where every driver
call then fails with pycuda's `LogicError: ... invalid device context` (inducer/pycuda issue 242).
Here the backend retains the device's primary context (the one the CUDA runtime, and so
TensorRT, uses too) once, and pushes it around initialisation and each call, from whichever
thread makes it; a lock keeps one thread at a time in the backend's buffers and stream.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from types import ModuleType
from typing import Iterator


class CudaError(RuntimeError):
    """A CUDA driver call failed; the message says what was being done, on which thread, and why."""


@contextmanager
def driver_errors(what: str) -> Iterator[None]:
    """Turn pycuda's errors raised inside the block into CudaError naming `what` and the thread.

    The one to recognise is a call made on a thread with no current context: pycuda raises
    LogicError "invalid device context", which says nothing about threads.
    """
    import pycuda.driver as cuda

    try:
        yield
    except cuda.Error as exc:
        thread = threading.current_thread().name
        if "invalid device context" in str(exc):
            raise CudaError(f"{what}: no CUDA context is current on thread {thread!r} ({exc}); CUDA work must run "
                            "inside CudaContext.current()") from exc
        raise CudaError(f"{what} failed on thread {thread!r}: {exc}") from exc


class CudaContext:
    """The primary context of CUDA device `index`, retained until `close()`."""

    def __init__(self, index: int = 0):
        import pycuda.driver as cuda

        with driver_errors(f"opening CUDA device {index}"):
            cuda.init()
            self.device = cuda.Device(index)
            self._context = self.device.retain_primary_context()
        self._cuda = cuda
        self._lock = threading.RLock()
        self._closed = False

    @property
    def name(self) -> str:
        return self.device.name()

    @property
    def compute_capability(self) -> str:
        major, minor = self.device.compute_capability()
        return f"{major}.{minor}"

    @contextmanager
    def current(self, what: str) -> Iterator[ModuleType]:
        """Push the context on this thread for the block (yielding `pycuda.driver`), pop it after.

        Driver errors inside the block become CudaError naming `what`.
        """
        with self._lock:
            if self._closed:
                raise CudaError(f"{what}: the CUDA context was already released")
            with driver_errors(what):
                self._context.push()
            try:
                with driver_errors(what):
                    yield self._cuda
            finally:
                self._cuda.Context.pop()

    def close(self) -> None:
        """Release the retained context (once); free the buffers made in it before calling this."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._context.detach()
