"""Everything Orbax: run checkpoints, model cards, export, pretrained models and predict.

The shipped weights are package data in `weights/`.
"""

import lazy_loader

# Each name imported from its module on first use (`__init__.pyi` lists them): `import flaxzoo.checkpoints` costs
# nothing until a name is used (the CLI's --help and list import no JAX).
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
