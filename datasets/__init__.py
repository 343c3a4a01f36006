"""Datasets: the one table reader, sources by name (brain_age, csv:, tfds:), preprocessing."""

import lazy_loader

# Each name imported from its module on first use (`__init__.pyi` lists them): `import flaxzoo.datasets` costs
# nothing until a name is used (the CLI's --help and list import no JAX).
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
