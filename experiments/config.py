"""The one config schema: every field of an experiment declared once — type, default, check, help, flag.

`Config` is what a run learns from; the `flaxzoo train` flags, the checks, the
resume comparison and the card's reproducing command all derive from its
fields' metadata (`field_options`). Named experiments are small files in
`configs/` that call `Config(...)` with their own defaults.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from collections.abc import Callable
from typing import Any

from flaxzoo.experiments.errors import ConfigError
from flaxzoo.trainers.optimizers import OPTIMIZERS
from flaxzoo.trainers.penalty_split import split_penalty


# Checks: `(value) -> requirement text or None`.
def _positive(value) -> str | None:
  return None if 0 < value < math.inf else "> 0 and finite"


_INT32 = 2**31 - 1  # the step counter is int32


def _count(value) -> str | None:
  """A positive count that fits the int32 step counter."""
  return None if 0 < value <= _INT32 else f"between 1 and {_INT32}"


def _seed(value) -> str | None:
  """A seed numpy and JAX both take."""
  return None if 0 <= value < 2**32 else "between 0 and 4294967295"


def _non_negative(value) -> str | None:
  return None if 0 <= value < math.inf else ">= 0 and finite"


def _fraction(value) -> str | None:
  return None if 0 < value < 1 else "between 0 and 1"


def _unit_interval(value) -> str | None:
  return None if 0 <= value <= 1 else "between 0 and 1"


def _power(value) -> str | None:
  return None if 1 <= value < math.inf else ">= 1 and finite (1: Poisson, 2: gamma)"


LOSSES = ("mse", "logistic", "softmax", "poisson", "gamma", "huber", "quantile")


def _loss(value) -> str | None:
  """A loss by name, or `tweedie:P`, `huber:EPSILON`, `quantile:Q` (checked by the losses' own parser, which
  imports no JAX)."""
  if value in LOSSES:
    return None
  if ":" in value:
    from flaxzoo.trainers.loss_names import requirement

    return requirement(value)
  return f"one of {', '.join(LOSSES)}, or tweedie:P, huber:EPSILON, quantile:Q"


def option(default, *, help: str, kind: type = str, flag: str | None = None, choices=None,
           check: Callable[[Any], str | None] | None = None, training: bool = True, resumable: bool = False,
           metavar: str | None = None):
  """A schema field. `kind`: the Python type of a value (None is always allowed when it is the default);
  `flag`: the `flaxzoo train` option (default `--field-name`); `training`: changes the parameters a run
  ends with (the card's command sets it); `resumable`: a resumed run may change it."""
  return dataclasses.field(default=default, metadata=dict(
      help=help, kind=kind, flag=flag, choices=choices, check=check, training=training, resumable=resumable,
      metavar=metavar))


@dataclasses.dataclass(frozen=True)
class Config:
  """What `flaxzoo train` runs. Every field but `name` is a flag (see `field_options`).

  The defaults are those of a generic linear model on the user's own data;
  a named experiment (`configs/`) sets its own.
  """

  name: str = dataclasses.field(default="experiment", metadata=dict(help="the experiment's name", kind=str,
                                                                    flag=None, training=False, cli=False))
  dataset: str | None = option(
      None, help="the data (experiments linear, linear_regression, linear_classifier need it)",
      metavar="brain_age|claims|csv:PATH|tfds:NAME[/CONFIG]")
  features: str | None = option(
      None, help="input columns (brain_age: gm or tissue; default: all but the label)", metavar="COL,...")
  label: str | None = option(None, help="the label column (csv), `label` feature (tfds), or age_group (brain_age)")
  task: str | None = option(None, help="default: inferred from the label", choices=("regression", "classification"))
  model: str | None = option(None, help="a model of `flaxzoo list` (default: by task)")
  init: str = option("default", help="default: the module's own initialisers; reference: the brain-age"
                                       " reference initialisation", choices=("default", "reference"))
  loss: str | None = option(None, check=_loss, metavar="|".join(LOSSES) + "|tweedie:P|huber:E|quantile:Q",
                            help="default: by task (and --family)")
  family: str | None = option(None, choices=("poisson", "gamma", "tweedie"),
                              help="a log-link GLM: its half deviance as the loss, the model glm (default)")
  power: float | None = option(None, kind=float, check=_power, help="--family tweedie's power p")
  offset: str | None = option(None, metavar="COLUMN",
                              help="a csv column added to the linear predictor (a GLM's log exposure, statsmodels'"
                                   " offset; least squares: subtracted from the label), by the exact solvers")
  optimizer: str = option("sgd", help="optax optimizer", choices=("sgd", "momentum", "adam", "lbfgs"))
  solver: str = option("optax", choices=("optax", "auto", "normal_equation", "newton", "lbfgs", "interior_point"),
                       help="optax: --steps steps of --optimizer; normal_equation (mse), newton, lbfgs (logistic,"
                            " softmax, the GLMs; newton also huber:E), interior_point (quantile:Q): the exact"
                            " full-batch optimum of a linear model, --steps the iteration cap; auto: the exact one"
                            " that applies")
  learning_rate: float = option(0.1, kind=float, flag="--lr", check=_positive, help="learning rate (lbfgs: unused)")
  l2: float = option(0.0, kind=float, check=_non_negative,
                     help="the penalty's strength: mean loss + l2/2*|w|^2 (sklearn: C = 1/(n*l2), Ridge alpha ="
                          " n*l2/2); with --penalty l1 + l2*|w|_1, elasticnet + l2*(r|w|_1 + (1-r)/2*|w|^2)")
  penalty: str = option("l2", choices=("l2", "l1", "elasticnet"),
                        help="on the weights (never the biases); l1: exact zeros (an exact solver, or the optax"
                             " path's proximal step)")
  l1_ratio: float = option(0.5, kind=float, check=_unit_interval, help="--penalty elasticnet's share r of L1")
  standardize: bool = option(
      True, kind=bool, help="standardise features with the train split's mean and std (default: on, except the"
                             " brain-age regression reference)")
  test_fraction: float = option(0.2, kind=float, check=_fraction, help="held-out share of a csv/tfds dataset")
  split_seed: int = option(0, kind=int, check=_seed, help="seed of the train/test split of a csv/tfds dataset")
  steps: int = option(2000, kind=int, check=_count, resumable=True, help="optimizer steps")
  batch_size: int | None = option(None, kind=int, check=_count, help="mini-batch size (default: full batch)")
  seed: int = option(0, kind=int, check=_seed, help="seed of the initialisation and batch order")
  log_every: int = option(100, kind=int, check=_count, training=False, resumable=True,
                          help="steps between logged losses")
  shuffle: str = option("blocks", choices=("blocks", "rows", "none"),
                        help="mini-batch order: blocks (rows permuted once, batch order every epoch), rows (every"
                             " epoch), none")
  parallel: str = option("auto", choices=("auto", "none", "pmap", "mesh"), training=False, resumable=True,
                         help="none: jit on one device; pmap / mesh: data-parallel; auto: mesh on more than one"
                              " device")
  devices: int | None = option(None, kind=int, check=_count, training=False, resumable=True,
                               help="local devices to use (default: all)")

  def __post_init__(self):
    for f in dataclasses.fields(self):
      check_field(f, getattr(self, f.name), self.name)
    if self.optimizer not in OPTIMIZERS:
      raise ConfigError(f"{self.name}: unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS.names())}")

  def penalties(self, strength: float | None = None) -> tuple[float, float]:
    """The core's `(l2, l1)` of the strength λ (default the field `l2`; a sweep's grid value), split by
    `penalty` (and `l1_ratio`): `λ (1 - r)` and `λ r`."""
    strength = self.l2 if strength is None else float(strength)
    return split_penalty(strength, {"l2": 0.0, "l1": 1.0}.get(self.penalty, self.l1_ratio))

  def resolved_loss(self) -> str | None:
    """`loss`, or `--family`'s half deviance (`tweedie:P`); a ConfigError where they disagree."""
    if self.family is None:
      if self.power is not None:
        raise ConfigError(f"{self.name}: --power is --family tweedie's; no family was given")
      return self.loss
    if self.family == "tweedie":
      if self.power is None:
        raise ConfigError(f"{self.name}: --family tweedie needs --power P (1: Poisson, 2: gamma, 1 < P < 2: compound)")
      loss = f"tweedie:{self.power!r}"  # every digit: 1.9999999 is not tweedie:2
    elif self.power is not None:
      raise ConfigError(f"{self.name}: --power is --family tweedie's, not {self.family}'s")
    else:
      loss = self.family
    if self.loss is not None and self.loss != loss:
      raise ConfigError(f"{self.name}: --loss {self.loss} and --family {self.family} disagree; give one")
    return loss

  def replace(self, **overrides: Any) -> Config:
    """A copy with the given fields changed; `None` values are ignored."""
    return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

  def make_optimizer(self):
    """The `optax.GradientTransformation` of `optimizer` at `learning_rate`."""
    return OPTIMIZERS.get(self.optimizer)(self.learning_rate)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def field_options() -> list[dataclasses.Field]:
  """The fields that are `flaxzoo train` flags, in order."""
  return [f for f in dataclasses.fields(Config) if f.metadata.get("cli", True)]


def flag_of(f: dataclasses.Field) -> str:
  return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def training_fields() -> list[str]:
  """The fields that change the parameters a run ends with."""
  return [f.name for f in dataclasses.fields(Config) if f.metadata.get("training")]


def resumable_fields() -> list[str]:
  return [f.name for f in dataclasses.fields(Config) if f.metadata.get("resumable")]


def check_field(f: dataclasses.Field, value, where: str = "config") -> None:
  """Raises ConfigError unless `value` fits field `f` (type, choices, check)."""
  if value is None and f.default is None:
    return
  kind = f.metadata.get("kind", str)
  numeric = kind in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool)
  if not (isinstance(value, kind) or (kind is float and numeric)) or (kind is int and isinstance(value, bool)):
    raise ConfigError(f"{where}: {f.name} must be a {kind.__name__}, got {value!r}")
  choices = f.metadata.get("choices")
  if choices and value not in choices:
    raise ConfigError(f"{where}: unknown {f.name} {value!r}; known: {', '.join(choices)}")
  check = f.metadata.get("check")
  requirement = check(value) if check else None
  if requirement:
    raise ConfigError(f"{where}: {f.name} must be {requirement}, got {value!r}")


def parse_flag_value(f: dataclasses.Field, text: str):
  """A flag's text as the field's value; ValueError with the one-line reason (argparse's type)."""
  kind = f.metadata.get("kind", str)
  if kind in (int, float):
    from flaxzoo.trainers.decimals import parse_decimal

    value = parse_decimal(text, kind)  # no `1_0`, `inf` or `nan`: ValueError in one line
    check = f.metadata.get("check")
    requirement = check(value) if check else None
    if requirement:
      raise ValueError(f"must be {requirement}, got {text}")
    return value
  return text


def reproducing_command(config: Config, defaults: Config) -> str:
  """`flaxzoo train NAME --flag value …`: every training field that differs from `defaults`, and `--steps`."""
  words = ["flaxzoo", "train", config.name]
  for f in field_options():
    value = getattr(config, f.name)
    if not f.metadata["training"] or (value == getattr(defaults, f.name) and f.name != "steps"):
      continue
    flag = flag_of(f)
    if f.metadata["kind"] is bool:
      words.append(flag if value else "--no-" + flag[2:])
    elif value is None:
      raise ConfigError(f"{config.name}: {f.name} is None where the experiment sets {getattr(defaults, f.name)!r};"
                        " no flag can say that")
    else:
      words += [flag, repr(value) if isinstance(value, float) else str(value)]
  return " ".join(shlex.quote(w) for w in words)
