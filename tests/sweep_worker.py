"""Trains a sweep and each of its models alone on simulated CPU devices; prints the largest relative
parameter difference per case as JSON. XLA_FLAGS must be set before jax is imported (a subprocess).

  python sweep_worker.py DATA_DIR DEVICES
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={sys.argv[2]}"

from sweep_cases import CASES, compare  # noqa: E402


def main():
  data_dir, devices = sys.argv[1], int(sys.argv[2])
  parallel = "mesh" if devices > 1 else "none"
  print(json.dumps({name: compare(name, data_dir, parallel) for name in CASES}))


if __name__ == "__main__":
  main()
