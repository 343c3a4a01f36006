"""Streaming an on-disk .npy in chunks vs the same epoch in memory: throughput and peak memory.

  python benchmarks/streaming.py [--rows 4000000] [--chunk-rows 262144] [--repeats 5] [--smoke] [--json PATH]

A stand-in for data larger than memory: x [rows, 64] float32 (4,000,000 rows =
1 GiB, written to a temporary folder) and y [rows]. The in-memory epoch holds
all of it on the device (`Trainer`'s fused loop, batch 8192, block shuffle);
the streamed epoch (`flaxzoo.trainers.streaming.fit_stream`) reads chunks of
`--chunk-rows` rows in a background thread while the previous chunk trains.
Peak memory (the process's maximum resident set, VmHWM) is measured in
fresh child processes that stream files of 1/4, 1/2 and all of the rows: it
stays flat as the file grows. (The file sits in the page cache after it is
written, so this measures the pipeline, not the disk.)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

import jax
import numpy as np
import optax
from flax import nnx
from sgd_epoch import LR, benchmark_parser, median_time

from flaxzoo.trainers import Trainer
from flaxzoo.trainers.streaming import fit_stream
from flaxzoo.zoo import LinearRegression

BATCH = 8192


def write_files(folder, rows, d=64, seed=0):
  """x.npy and y.npy written in slices, never all in memory."""
  rng = np.random.default_rng(seed)
  w = rng.standard_normal(d).astype(np.float32) / np.sqrt(d)
  x = np.lib.format.open_memmap(os.path.join(folder, "x.npy"), "w+", np.float32, (rows, d))
  y = np.lib.format.open_memmap(os.path.join(folder, "y.npy"), "w+", np.float32, (rows,))
  for start in range(0, rows, 1 << 20):
    stop = min(start + (1 << 20), rows)
    x[start:stop] = rng.standard_normal((stop - start, d), dtype=np.float32)
    y[start:stop] = x[start:stop] @ w + 0.1 * rng.standard_normal(stop - start).astype(np.float32)
  x.flush(), y.flush()
  del x, y
  return os.path.join(folder, "x.npy"), os.path.join(folder, "y.npy")


def new_trainer(d=64):
  return Trainer(LinearRegression(d, rngs=nnx.Rngs(0)), optax.sgd(LR), "mse", parallel="none")


def in_memory_epoch(x_path, y_path, repeats):
  x, y = np.load(x_path), np.load(y_path)
  trainer = new_trainer(x.shape[1])
  layout, blocks = trainer.layout_blocks((x, y), BATCH, "blocks")
  del x, y
  run = trainer.fused_loop(layout.num_blocks, "blocks")
  initial = trainer.placement.put_state(trainer.state)
  jax.block_until_ready(run(initial, blocks, 1, layout.num_blocks))
  return median_time(lambda: jax.block_until_ready(run(initial, blocks, 1, layout.num_blocks)), repeats)


def streamed_epoch(x_path, y_path, chunk_rows, repeats, shuffle):
  trainer = new_trainer()
  initial = trainer.state
  fit_stream(trainer, x_path, y_path, batch_size=BATCH, chunk_rows=chunk_rows, shuffle=shuffle)  # compiles

  def epoch():
    trainer.state = initial
    fit_stream(trainer, x_path, y_path, batch_size=BATCH, chunk_rows=chunk_rows, shuffle=shuffle)

  return median_time(epoch, repeats)


def peak_resident_mb() -> float:
  """This process's peak resident memory: VmHWM (ru_maxrss would carry the parent's peak across fork and exec)."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 1024
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(x_path, y_path, chunk_rows):
  """One streamed epoch; prints the peak resident memory in MiB, before and after streaming."""
  trainer = new_trainer()
  before = peak_resident_mb()
  fit_stream(trainer, x_path, y_path, batch_size=BATCH, chunk_rows=chunk_rows, shuffle="blocks")
  print(before, peak_resident_mb())


def peak_rss_mb(folder, rows, chunk_rows):
  """Peak RSS of a fresh process streaming the first `rows` rows (a file of its own)."""
  sub = os.path.join(folder, f"rows{rows}")
  os.makedirs(sub, exist_ok=True)
  x_path, y_path = write_files(sub, rows)
  out = subprocess.run([sys.executable, __file__, "--child", x_path, y_path, str(chunk_rows)],
                       check=True, capture_output=True, text=True)
  for path in (x_path, y_path):
    os.remove(path)
  before, after = map(float, out.stdout.strip().splitlines()[-1].split())
  return before, after


def main():
  parser = benchmark_parser(__doc__, 4_000_000)
  parser.add_argument("--chunk-rows", type=int, default=262_144)
  parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    child(args.child[0], args.child[1], int(args.child[2]))
    return
  rows = 50_000 if args.smoke else args.rows
  chunk_rows = 16_384 if args.smoke else args.chunk_rows
  repeats = 1 if args.smoke else args.repeats
  with tempfile.TemporaryDirectory() as folder:
    x_path, y_path = write_files(folder, rows)
    file_mb = (os.path.getsize(x_path) + os.path.getsize(y_path)) / 2**20
    memory_s, memory_spread = in_memory_epoch(x_path, y_path, repeats)
    stream_s, stream_spread = streamed_epoch(x_path, y_path, chunk_rows, repeats, "none")
    shuffled_s, shuffled_spread = streamed_epoch(x_path, y_path, chunk_rows, repeats, "blocks")
    for path in (x_path, y_path):
      os.remove(path)
    sizes = [rows // 4, rows // 2, rows]
    measured = {n: peak_rss_mb(folder, n, chunk_rows) for n in sizes}
    baseline = max(before for before, _ in measured.values())
    peaks = {n: after for n, (_, after) in measured.items()}

  throughput = memory_s / stream_s
  print(f"one epoch over {rows:,} x 64 float32 rows ({file_mb:,.0f} MiB of .npy), batch {BATCH}, chunks of"
        f" {chunk_rows:,} rows; {jax.devices()[0].platform}, {os.cpu_count()} cores; medians of {repeats}")
  print(f"  in memory: {memory_s * 1e3:8.1f} ms ({memory_spread[0] * 1e3:.1f}-{memory_spread[1] * 1e3:.1f})"
        f"  {rows / memory_s / 1e6:6.1f} M rows/s")
  low, high = stream_spread[0] * 1e3, stream_spread[1] * 1e3
  print(f"  streamed, file order:   {stream_s * 1e3:8.1f} ms ({low:.1f}-{high:.1f})"
        f"  {rows / stream_s / 1e6:6.1f} M rows/s = {100 * throughput:.0f}% of in memory")
  print(f"  streamed, rows shuffled in each chunk: {shuffled_s * 1e3:8.1f} ms"
        f" ({shuffled_spread[0] * 1e3:.1f}-{shuffled_spread[1] * 1e3:.1f})"
        f"  {rows / shuffled_s / 1e6:6.1f} M rows/s = {100 * memory_s / shuffled_s:.0f}% of in memory")
  chunk_mb = chunk_rows * 65 * 4 / 2**20
  sizes = ', '.join(f'{n:,} rows ({n * 65 * 4 / 2**20:,.0f} MiB): {mb:,.0f} MiB' for n, mb in peaks.items())
  print(f"  peak RSS streaming {sizes}"
        f"; {baseline:,.0f} MiB before streaming (jax, the trainer); one chunk is {chunk_mb:.0f} MiB")
  metrics = {
      "peak_rss_mb": max(peaks.values()),
      "peak_rss_by_rows_mb": {str(n): mb for n, mb in peaks.items()},
      "rss_before_streaming_mb": baseline,
      "throughput_vs_in_memory": throughput,
      "throughput_shuffled_chunks_vs_in_memory": memory_s / shuffled_s,
      "file_mb": file_mb,
      "chunk_mb": chunk_mb,
      "in_memory_s": memory_s,
      "streamed_s": stream_s,
      "streamed_shuffled_s": shuffled_s,
      "rows": rows,
  }
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"name": "streaming", "metrics": metrics}, f, indent=2)


if __name__ == "__main__":
  main()
