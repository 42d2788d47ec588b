"""Lock-free shared-memory channels for Linux IPC, with numpy records."""

from dataclasses import dataclass
from os import PathLike
from typing import Any, Literal, Optional, Union

import numpy as np

from ._shmchan import (
    Batches as Batches,
    Disconnected as Disconnected,
    Error as Error,
    Evicted as Evicted,
    Lagged as Lagged,
    Mismatch as Mismatch,
    Receiver as Receiver,
    Sender as Sender,
    SenderExists as SenderExists,
)

__version__: str

ModeName = Literal["broadcast", "unicast"]
OverflowName = Literal["overwrite", "block"]
WaitName = Literal["spin", "adaptive", "block"]
# A numpy dtype (or anything numpy.dtype() takes), or a ctypes.Structure subclass.
DTypeLike = Any

@dataclass(frozen=True)
class SegmentInfo:
    path: str
    family: Literal["route", "channel"]
    mode: ModeName
    overflow: OverflowName
    schema: str
    record_size: int
    record_align: int
    capacity: int
    max_receivers: int
    max_producers: int
    file_len: int
    created_at: float
    creator_pid: int
    @property
    def dtype(self) -> np.dtype[Any]: ...

def inspect(name: Optional[str] = None, *,
            path: Optional[Union[str, PathLike[str]]] = None) -> SegmentInfo: ...
def remove(name: str) -> bool: ...
def record_dtype(dtype: DTypeLike) -> np.dtype[Any]: ...

class _Family:
    @classmethod
    def receiver(cls, name: Optional[str], dtype: DTypeLike = None, *,
                 schema: Optional[str] = None, align: Optional[int] = None,
                 capacity: Optional[int] = None, mode: Optional[ModeName] = None,
                 overflow: Optional[OverflowName] = None, wait: Optional[WaitName] = None,
                 max_receivers: Optional[int] = None, max_producers: Optional[int] = None,
                 path: Optional[Union[str, PathLike[str]]] = None,
                 permissions: Optional[int] = None,
                 open_timeout: Optional[float] = None) -> Receiver: ...
    @classmethod
    def sender(cls, name: Optional[str], dtype: DTypeLike = None, *,
               schema: Optional[str] = None, align: Optional[int] = None,
               capacity: Optional[int] = None, mode: Optional[ModeName] = None,
               overflow: Optional[OverflowName] = None, wait: Optional[WaitName] = None,
               max_receivers: Optional[int] = None, max_producers: Optional[int] = None,
               path: Optional[Union[str, PathLike[str]]] = None,
               permissions: Optional[int] = None,
               open_timeout: Optional[float] = None) -> Sender: ...
    @staticmethod
    def remove(name: str) -> bool: ...

class Route(_Family): ...
class Channel(_Family): ...
