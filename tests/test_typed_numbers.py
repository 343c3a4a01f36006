"""Every number a user types is read exactly and checked where it is read: plain decimals only (no `1_0`, `inf`,
`nan`), finite, in the field's domain, every digit kept (no `%g`); a run that ends on a non-finite loss exits 1."""

import numpy as np
import pytest
from conftest import one_line_error, run_cli

from flaxzoo.experiments.config import Config
from flaxzoo.trainers.decimals import parse_decimal


@pytest.mark.parametrize("text", ["1_0", "inf", "-inf", "nan", "1e400", " 1", "0x10", "", "1.5.2", "١"])
def test_a_typed_number_is_a_plain_finite_decimal(text):
  with pytest.raises(ValueError, match="not a"):
    parse_decimal(text)


@pytest.mark.parametrize(("text", "value"), [("1.9999999", 1.9999999), ("-2e-3", -0.002), (".5", 0.5), ("3", 3.0)])
def test_the_digits_typed_are_the_value(text, value):
  assert parse_decimal(text) == value
  assert parse_decimal("12", int) == 12 and isinstance(parse_decimal("12", int), int)


def test_a_tweedie_power_keeps_every_digit():
  """`--power 1.9999999` was recorded as tweedie:2 (and then refused zero counts), 1.0000001 as tweedie:1."""
  for power in (1.9999999, 1.0000001, 1.5):
    loss = Config(name="x", family="tweedie", power=power).resolved_loss()
    assert loss == f"tweedie:{power!r}"
    from flaxzoo.trainers.loss_names import split_loss

    assert split_loss(loss) == ("tweedie", power)


@pytest.fixture
def positive_csv(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(60, 2))
  y = np.exp(0.3 * x[:, 0]) + 0.5
  path = tmp_path / "positive.csv"
  path.write_text("a,b,y\n" + "".join(f"{float(a)!r},{float(b)!r},{float(t)!r}\n" for (a, b), t in zip(x, y)))
  return path


@pytest.mark.parametrize(("args", "message"), [
    (("--family", "tweedie", "--power", "1_0"), "argument --power: not a decimal number: '1_0'"),
    (("--family", "tweedie", "--power", "inf"), "argument --power: not a decimal number: 'inf'"),
    (("--loss", "huber:1e400"), "huber:EPSILON, EPSILON a finite decimal number > 0, got 'huber:1e400'"),
    (("--lr", "nan"), "argument --lr: not a decimal number: 'nan'"),
    (("--steps", "1_000"), "argument --steps: not an integer: '1_000'"),
])
def test_bad_numbers_are_refused_where_they_are_read(positive_csv, tmp_path, args, message):
  result = run_cli("train", "linear", "--dataset", f"csv:{positive_csv}", "--label", "y", *args,
                   "--workdir", tmp_path / "run")
  assert result.returncode == 2
  one_line_error(result, message)


def test_a_run_whose_loss_is_not_finite_exits_1_and_says_so(positive_csv, tmp_path):
  """`--family tweedie --power 1e300 --solver auto` exited 0 with loss null and untrained parameters."""
  result = run_cli("train", "linear", "--dataset", f"csv:{positive_csv}", "--label", "y", "--family", "tweedie",
                   "--power", "1e300", "--solver", "auto", "--workdir", tmp_path / "run")
  assert result.returncode == 1
  one_line_error(result, "the exact solver's objective is not finite")
  assert not (tmp_path / "run" / "results.json").exists()
