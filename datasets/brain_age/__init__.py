"""Everything brain-age: the TFDS builder's table and split, volume tables, the preprocessing, the gap.

The TFDS builder itself is `flaxzoo.datasets.brain_age.brain_age_dataset_builder.Builder`
(imported only when the dataset is built or read: it imports TFDS).
"""

import lazy_loader

# Each name imported from its module on first use (`__init__.pyi` lists them): `import flaxzoo.datasets.brain_age` costs
# nothing until a name is used (the CLI's --help and list import no JAX).
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
