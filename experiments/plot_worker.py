"""Draws a finished run's plots in a process of its own, so that `flaxzoo train` does not wait for
matplotlib (~0.7 s of a 2-second run): `python -m flaxzoo.experiments.plot_worker WORKDIR`.

The run leaves what the plots show in `.flaxzoo/plot_inputs.npz` (arrays and text, no pickle) and
starts this; it takes the workdir's lock while it draws (a new run waits for it), writes each PNG
through a temporary file, and records a failure in `.flaxzoo/plots.log` (`flaxzoo plot` draws again).
"""

from __future__ import annotations

import pathlib
import sys


def main(workdir: str) -> int:
  workdir = pathlib.Path(workdir)
  log = workdir / ".flaxzoo" / "plots.log"
  if not (workdir / ".flaxzoo" / "workdir.json").is_file():
    return 1  # the workdir went away (deleted, moved) while the run ended: make nothing anew
  try:
    from flaxzoo.experiments.metric_log import read_metrics
    from flaxzoo.experiments.plots import draw, load_inputs
    from flaxzoo.experiments.workdir import WorkdirLock

    with WorkdirLock(workdir, role="plots", wait_s=60):
      inputs_file = workdir / ".flaxzoo" / "plot_inputs.npz"
      files = draw(read_metrics(workdir), load_inputs(inputs_file), workdir / "plots")
      inputs_file.unlink(missing_ok=True)
    log.write_text("".join(f"{f}\n" for f in files))
    return 0
  except Exception as e:  # noqa: BLE001 - nobody watches this process: the log says what happened
    log.write_text(f"error: {type(e).__name__}: {e}\nflaxzoo plot --workdir {workdir} draws them again\n")
    return 1


if __name__ == "__main__":
  sys.exit(main(sys.argv[1]))
