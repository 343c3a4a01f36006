"""TensorBoard scalar event files, written directly: no TensorFlow, no protobuf library.

An event file is a sequence of TFRecords (`uint64 length`, masked CRC-32C of
the length, the bytes, their masked CRC-32C), each an `Event` protocol buffer
(tensorflow/core/util/event.proto): `wall_time` (field 1, double), `step`
(2, int64), `file_version` (3, string), `summary` (5: repeated `value` (1):
`tag` (1, string), `simple_value` (2, float)), `session_log` (7: `status` (1),
START = 1). Those few fields are encoded here by hand, which saves importing
tensorboardX (it imports PyTorch when that is installed: ~0.9 s a run).
Every record is written and flushed synchronously.
"""

from __future__ import annotations

import os
import socket
import struct
import time

_CRC32C_TABLE = []
for _byte in range(256):
  _crc = _byte
  for _ in range(8):
    _crc = (_crc >> 1) ^ 0x82F63B78 if _crc & 1 else _crc >> 1
  _CRC32C_TABLE.append(_crc)


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli), as TFRecord uses."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
  out = bytearray()
  while True:
    byte, value = value & 0x7F, value >> 7
    out.append(byte | (0x80 if value else 0))
    if not value:
      return bytes(out)


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
  key = _varint((number << 3) | wire_type)
  if wire_type == 2:  # length-delimited
    return key + _varint(len(payload)) + payload
  return key + payload


def encode_event(wall_time: float, step: int, *, file_version: str | None = None,
                 scalars: dict[str, float] | None = None, session_start: bool = False) -> bytes:
  """One `Event` message."""
  message = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step))
  if file_version is not None:
    message += _field(3, 2, file_version.encode())
  if scalars:
    values = b"".join(_field(1, 2, _field(1, 2, tag.encode()) + _field(2, 5, struct.pack("<f", value)))
                      for tag, value in scalars.items())
    message += _field(5, 2, values)
  if session_start:
    message += _field(7, 2, _field(1, 0, _varint(1)))
  return message


def _record(data: bytes) -> bytes:
  length = struct.pack("<Q", len(data))
  return length + struct.pack("<I", _masked_crc(length)) + data + struct.pack("<I", _masked_crc(data))


class EventFile:
  """Scalars for TensorBoard in `logdir/events.out.tfevents.<time>.<host><suffix>`.

  Args:
    logdir: the folder TensorBoard is pointed at.
    suffix: makes the name unique (names are by the second and host).
    restart_step: a resumed run's first step: TensorBoard then hides the
      events of earlier files from this step on (they are logged again).
  """

  def __init__(self, logdir, suffix: str = "", restart_step: int | None = None):
    os.makedirs(logdir, exist_ok=True)
    name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}{suffix}"
    self.path = os.path.join(os.fspath(logdir), name)
    self._file = open(self.path, "ab")  # noqa: SIM115 - open for the life of the file, closed by close()
    self._write(encode_event(time.time(), 0, file_version="brain.Event:2"))
    if restart_step is not None:
      self._write(encode_event(time.time(), restart_step, session_start=True))

  def _write(self, event: bytes) -> None:
    self._file.write(_record(event))
    self._file.flush()

  def add_scalars(self, step: int, values: dict[str, float], wall_time: float | None = None) -> None:
    """Writes `{tag: value}` at `step` (one event) and flushes it."""
    self._write(encode_event(time.time() if wall_time is None else wall_time, step, scalars=values))

  def close(self) -> None:
    self._file.close()
