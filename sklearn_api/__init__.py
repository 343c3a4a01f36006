"""scikit-learn estimators of flaxzoo's models (`pip install 'flaxzoo[sklearn]'`).

The folder is `sklearn_api/` and installs as `flaxzoo.sklearn`: a top-level `sklearn/` would shadow
scikit-learn itself for anything run from the repository root.
"""

import lazy_loader

# Each name imported from its module on first use (`__init__.pyi` lists them): `import flaxzoo.sklearn` costs
# nothing until a name is used (the CLI's --help and list import no JAX).
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
