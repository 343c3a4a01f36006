"""The training core: losses, metrics, pure steps, the fused loop, placement, the Trainer, sweeps, streaming.

Any NNX module, any optax transform; no config objects, file formats or CLI
words (the run layer, `flaxzoo.experiments`, adds those).
"""

import lazy_loader

# Each name imported from its module on first use (`__init__.pyi` lists them): `import flaxzoo.trainers` costs
# nothing until a name is used (the CLI's --help and list import no JAX).
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
