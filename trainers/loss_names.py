"""Loss names with a parameter: `tweedie:P`, `huber:EPSILON`, `quantile:Q`.

Parsed here without JAX, so that the run layer checks a config's loss (`flaxzoo list`, `--help`, a usage
error) without importing it; `flaxzoo.trainers.losses` maps the names to their functions.
"""

from __future__ import annotations

from flaxzoo.trainers.decimals import parse_decimal

# The losses with one parameter, `name:value`: what the value is, and its range (as a test and in words).
PARAMETERS = {
    "tweedie": ("power", lambda p: p >= 1, ">= 1"),
    "huber": ("epsilon", lambda e: e > 0, "> 0"),
    "quantile": ("quantile", lambda q: 0 < q < 1, "between 0 and 1"),
}


# The log-link GLMs: each family's Tweedie power (tweedie's own is its parameter, `tweedie:P`).
GLM_FAMILIES = ("poisson", "gamma", "tweedie")
FAMILY_POWERS = {"poisson": 1.0, "gamma": 2.0}


def family_of(name: str, power: float | None = None) -> tuple[str, float | None]:
  """`(family, power)`: tweedie of power 1 or 2 is poisson or gamma (power None); any other name as given."""
  if name == "tweedie" and power is not None:
    for family, own in FAMILY_POWERS.items():
      if power == own:
        return family, None
  return name, power


def power_of(name: str, power: float | None = None) -> float | None:
  """The Tweedie power of a GLM family (`power`: tweedie's own)."""
  return FAMILY_POWERS.get(name, power)


def requirement(name: str) -> str | None:
  """What a loss name with a parameter must be, in words (`huber:E`: "huber:EPSILON, EPSILON a finite decimal
  number > 0"); None where `split_loss` takes it."""
  try:
    split_loss(name)
    return None
  except ValueError:
    base = name.partition(":")[0]
    if base not in PARAMETERS:
      return f"{', '.join(f'{p}:{w.upper()}' for p, (w, _, _) in PARAMETERS.items())} (only these take a parameter)"
    what, _, words = PARAMETERS[base]
    return f"{base}:{what.upper()}, {what.upper()} a finite decimal number {words}"


def split_loss(name: str) -> tuple[str, float | None]:
  """`"tweedie:1.5"` -> `("tweedie", 1.5)`; a name without a parameter -> `(name, None)`. ValueError, naming
  the loss, for a parameter that is not a plain decimal number in its range (no `inf`, no `1_000`)."""
  base, colon, value = name.partition(":")
  if not colon:
    return name, None
  if base not in PARAMETERS:
    raise ValueError(f"loss {name!r}: only {', '.join(PARAMETERS)} take a parameter (name:value)")
  what, valid, words = PARAMETERS[base]
  try:
    number = parse_decimal(value)  # finite: huber:1e400 is refused here, not called divergence later
  except ValueError:
    number = None
  if number is None or not valid(number):
    raise ValueError(f"loss {name!r}: {what} must be a decimal number {words} (finite), got {value!r}")
  return base, number
