"""What the `flaxzoo` command prints: metric tables, messages and logging, binary output on standard output."""

from __future__ import annotations

import logging
import sys

# Decimals as in DESIGN.md's reference table; errors in the label's own unit (`mae_years`) get 3.
_COLUMNS = {"mse": ".6f", "rmse": ".6f", "mae": ".6f", "r2": ".5f", "accuracy": ".4f", "balanced_accuracy": ".4f",
            "log_loss": ".6f", "roc_auc": ".4f"}


_HEADERS = {"balanced_accuracy": "bal_acc"}


def _print_metrics(results, splits) -> None:
  """The metrics table of `results[split]` for each split."""
  first = results[splits[0]]
  formats = {**_COLUMNS, **{k: ".3f" for k in first if k.startswith(("mae_", "rmse_"))}}
  columns = [c for c in formats if c in first]

  def cell(value, fmt: str) -> str:  # a number too long for its column (a house price's MSE) in 6 digits
    text = format(value, fmt)
    return text if len(text) <= 11 else format(value, ".6g")

  cells = {split: [cell(results[split][c], formats[c]) for c in columns] for split in splits}
  # Every column at least one space wider than its widest entry: numbers never run together.
  widths = [max(12, 1 + max(len(_HEADERS.get(c, c)), *(len(cells[s][i]) for s in splits))) for i, c in
            enumerate(columns)]
  print("  " + f"{'split':6s}" + "".join(f"{_HEADERS.get(c, c):>{w}s}" for c, w in zip(columns, widths)))
  for split in splits:
    print("  " + f"{split:6s}" + "".join(f"{text:>{w}s}" for text, w in zip(cells[split], widths)))


def _print_table(results) -> None:
  print(f"{results['experiment']} after {results['step']} steps:")
  _print_metrics(results, ["train", "test"])
  if "confusion" in results["test"]:
    names = results.get("classes") or [str(k) for k in range(len(results["test"]["confusion"]))]
    print(f"  test confusion (rows: true {', '.join(names)}; columns: predicted): {results['test']['confusion']}")
  print(f"results: {results['workdir']}/results.json")


def _print_sweep(results) -> None:
  metric = results["metric"].split("/", 1)[1]
  unit = [k for k in (results["summary"][0]["valid"] or {}) if k.startswith("mae_")] if results["summary"] else []
  shown = [metric] + [m for m in ("mae", "accuracy") if m != metric] + unit
  print(f"{results['experiment']}: {len(results['runs'])} models, {results['folds']}-fold cross-validation,"
        f" {results['steps']} steps; validation mean ± std [95% CI, t over folds x seeds]:")
  for row in results["summary"]:
    setting = "  ".join(f"{k}={v:g}" for k, v in row["settings"].items())
    if row["diverged"]:
      print(f"  {setting}: diverged")
      continue
    cells = []
    for name in shown:
      if name not in row["valid"]:
        continue
      s = row["valid"][name]
      spread = "" if s["std"] is None else f" ± {s['std']:.4g} [{s['ci95'][0]:.4g}, {s['ci95'][1]:.4g}]"
      cells.append(f"{name} {s['mean']:.4g}{spread}")
    mark = "  <- best" if results["best"] and row["settings"] == results["best"]["settings"] else ""
    print(f"  {setting}: {'; '.join(cells)}{mark}")
  if results["best"] is None:
    print("  every setting diverged")
  if "refit" in results:
    refit = results["refit"]
    test = refit["test"]
    figures = ", ".join(f"{k} {test[k]:.5g}" for k in ("mse", "r2", "mae_years", "accuracy") if k in test)
    print(f"refit of the best setting: test {figures} ({refit['workdir']}/results.json)")
  print(f"sweep: {results['workdir']}/sweep.json")


def _log(message: str) -> None:
  logging.getLogger("flaxzoo").info(message)


# Loggers of libraries whose warnings mean nothing to a user of the CLI.
_LIBRARY_LOGGERS = ("absl", "jax", "orbax", "tensorflow_datasets", "etils", "matplotlib", "concurrent.futures",
                    "asyncio")


class _MainThreadOnly:
  """stderr for the main thread; what library threads print there (Orbax's and TensorStore's savers
  report a failed write from each of their threads, with tracebacks) goes to the debug log instead.
  The failure itself reaches flaxzoo as an exception: one line."""

  def __init__(self, stream):
    self._stream = stream

  def write(self, text: str) -> int:
    import threading

    if threading.current_thread() is threading.main_thread():
      return self._stream.write(text)
    logging.getLogger("flaxzoo").debug("from a library thread: %s", text.rstrip())
    return len(text)

  def __getattr__(self, name):
    return getattr(self._stream, name)


def _setup_logging(verbose: bool, quiet: bool) -> None:
  """flaxzoo's messages on stderr: INFO by default, only errors with --quiet, DEBUG with -v."""
  import warnings

  handler = logging.StreamHandler(sys.stderr)
  handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s"))
  logger = logging.getLogger("flaxzoo")
  logger.handlers[:] = [handler]
  logger.propagate = False
  logger.setLevel(logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO)
  if not verbose:
    # Their errors reach flaxzoo as exceptions (one line each); their logs would repeat them with
    # tracebacks from background threads (Orbax's save threads on a full disk).
    for name in _LIBRARY_LOGGERS:
      logging.getLogger(name).setLevel(logging.CRITICAL)
    import threading

    # Errors of library threads (Orbax's savers) that outlive a failed save: logged at debug level.
    threading.excepthook = lambda hook: logger.debug("in thread %s: %r", hook.thread, hook.exc_value)
    if not isinstance(sys.stderr, _MainThreadOnly):
      sys.stderr = _MainThreadOnly(sys.stderr)
    warnings.filterwarnings("ignore", module="|".join(_LIBRARY_LOGGERS))


class _stdout:
  """Standard output as a binary stream (`with`), flushed at the end."""

  def __enter__(self):
    sys.stdout.flush()
    return sys.stdout.buffer if hasattr(sys.stdout, "buffer") else _TextAsBytes(sys.stdout)

  def __exit__(self, *exc):
    sys.stdout.flush()


class _TextAsBytes:
  def __init__(self, stream):
    self._stream = stream

  def write(self, data: bytes) -> int:
    return self._stream.write(data.decode())
