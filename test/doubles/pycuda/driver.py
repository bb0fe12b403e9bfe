"""pycuda.driver double: init, Device, Context (per-thread stacks), memory, page-locked buffers, streams."""
from __future__ import annotations

import numpy as np
import simulated_gpu as gpu
from simulated_gpu import Error, LogicError, MemoryError  # noqa: F401 (pycuda.driver's exception names)

_initialised = False


def init(flags: int = 0) -> None:
    global _initialised
    _initialised = True


def get_driver_version() -> int:
    """cuDriverGetVersion: 1000 * major + 10 * minor."""
    return 12060


def _require_init(call: str) -> None:
    if not _initialised:
        raise LogicError(f"{call} failed: initialization error (call pycuda.driver.init() first)")


class Device:
    def __init__(self, index: int):
        _require_init("cuDeviceGet")
        if index != 0:
            raise LogicError(f"cuDeviceGet failed: invalid device ordinal {index}")
        self.index = index

    @staticmethod
    def count() -> int:
        _require_init("cuDeviceGetCount")
        return 1

    def name(self) -> str:
        return "Simulated Orin (nvgpu)"

    def compute_capability(self) -> tuple[int, int]:
        return 8, 7

    def retain_primary_context(self) -> "Context":
        """The primary context, retained; not made current (push it)."""
        return Context(gpu.retain_primary())

    def make_context(self, flags: int = 0) -> "Context":
        """A new context, made current on the calling thread."""
        context = Context(gpu.Context(primary=False))
        gpu.stack().append(context.simulated)
        return context


class Context:
    def __init__(self, simulated: gpu.Context):
        self.simulated = simulated

    def push(self) -> None:
        if self.simulated.refcount == 0:
            raise LogicError("cuCtxPushCurrent failed: invalid device context (context was released)")
        gpu.stack().append(self.simulated)

    @staticmethod
    def pop() -> None:
        if not gpu.stack():
            raise LogicError("cuCtxPopCurrent failed: invalid device context - cannot pop non-current context")
        gpu.stack().pop()

    @staticmethod
    def get_current() -> "Context | None":
        context = gpu.current()
        return Context(context) if context else None

    def detach(self) -> None:
        if self.simulated.refcount == 0:
            raise LogicError("context detached twice")
        self.simulated.refcount -= 1
        if self.simulated in gpu.stack():
            gpu.stack().remove(self.simulated)
        if self.simulated.refcount == 0:
            gpu.release(self.simulated)

    @staticmethod
    def synchronize() -> None:
        gpu.require_context("cuCtxSynchronize")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Context) and other.simulated is self.simulated

    __hash__ = None


class DeviceAllocation:
    def __init__(self, nbytes: int):
        self.address = gpu.memory.alloc(nbytes, gpu.require_context("cuMemAlloc"))
        self.nbytes = nbytes
        self.freed = False

    def __int__(self) -> int:
        return self.address

    __index__ = __int__

    def free(self) -> None:
        gpu.require_context("cuMemFree")
        if not self.freed:
            gpu.memory.free(self.address)
            self.freed = True


def mem_get_info() -> tuple[int, int]:
    """(free, total) bytes of device memory (cuMemGetInfo needs a current context)."""
    gpu.require_context("cuMemGetInfo")
    total = 8 << 30
    return total - sum(len(block) for block in gpu.memory.blocks.values()), total


def mem_alloc(nbytes: int) -> DeviceAllocation:
    return DeviceAllocation(int(nbytes))


class HostAllocation(bytearray):
    """Page-locked host memory; the `base` of the arrays pagelocked_empty returns (pycuda's documented way to free
    one now: `array.base.free()`; otherwise it is freed when it becomes unreachable)."""

    def free(self) -> None:
        gpu.require_context("cuMemFreeHost")
        gpu.memory.pinned.pop(id(self), None)


def pagelocked_empty(shape, dtype, order: str = "C", mem_flags: int = 0) -> np.ndarray:
    """Page-locked host memory (cuMemHostAlloc needs a current context)."""
    context = gpu.require_context("cuMemHostAlloc")
    dtype = np.dtype(dtype)
    allocation = HostAllocation(max(int(np.prod(shape)) * dtype.itemsize, 1))
    array = np.ndarray(shape, dtype, buffer=allocation, order=order)
    start = array.__array_interface__["data"][0]
    gpu.memory.pinned[id(allocation)] = (start, start + array.nbytes, context)
    return array


Stream = gpu.Stream


def _address(pointer) -> int:
    return int(pointer)


def require_stream_context(stream: gpu.Stream | None, call: str) -> None:
    """Work on the default stream (None) needs a current context; an explicit stream carries its own."""
    if stream is None:
        gpu.require_context(call)


def memcpy_htod_async(dest, src: np.ndarray, stream: gpu.Stream | None = None) -> None:
    """Copy src.nbytes host bytes to device `dest` when the stream runs; src must be page-locked."""
    require_stream_context(stream, "cuMemcpyHtoDAsync")
    if not gpu.memory.is_pinned(src):
        raise LogicError("cuMemcpyHtoDAsync: src must be page-locked memory (pycuda docs: see pagelocked_empty)")
    target = gpu.memory.view(_address(dest), src.nbytes, "cuMemcpyHtoDAsync")

    def copy() -> None:
        target[:] = np.ascontiguousarray(src).view(np.uint8).reshape(-1).tobytes()

    stream.enqueue(copy) if stream is not None else copy()


def memcpy_dtoh_async(dest: np.ndarray, src, stream: gpu.Stream | None = None) -> None:
    """Copy dest.nbytes device bytes into host `dest` when the stream runs; dest must be page-locked."""
    require_stream_context(stream, "cuMemcpyDtoHAsync")
    if not gpu.memory.is_pinned(dest):
        raise LogicError("cuMemcpyDtoHAsync: dest must be page-locked memory (pycuda docs: see pagelocked_empty)")
    source = gpu.memory.view(_address(src), dest.nbytes, "cuMemcpyDtoHAsync")

    def copy() -> None:
        dest.reshape(-1).view(np.uint8)[:] = np.frombuffer(source, np.uint8)

    stream.enqueue(copy) if stream is not None else copy()


def memcpy_htod(dest, src: np.ndarray) -> None:
    gpu.require_context("cuMemcpyHtoD")
    gpu.memory.view(_address(dest), src.nbytes, "cuMemcpyHtoD")[:] = np.ascontiguousarray(src).tobytes()


def memcpy_dtoh(dest: np.ndarray, src) -> None:
    gpu.require_context("cuMemcpyDtoH")
    dest.reshape(-1).view(np.uint8)[:] = np.frombuffer(gpu.memory.view(_address(src), dest.nbytes, "cuMemcpyDtoH"),
                                                        np.uint8)
