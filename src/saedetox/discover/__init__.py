"""Discovery: rank SAE latents by how toxicity-specific they are, select some, and write features.json.

``saedetox.discover(lm, sae, sets)`` is the verb (:func:`saedetox.discover.select.discover`); since
this package has the same name and Python binds a subpackage to its parent's attribute when it is
imported, the package itself is callable and forwards to that function.
"""

import importlib
import sys
import types
from typing import Any

DEFAULT_K = 20  # latents selected (compared with 10 on the test split once); k: auto chooses on select (kgrid)
DEFAULT_MIN_AUROC = 0.6  # per latent, on the select split
#: the ranking scores (:mod:`saedetox.discover.rank_stats`), named here so the command line lists them at once
RANKINGS: tuple[str, ...] = ("auroc", "paired", "meandiff", "freqratio", "paper-max", "paper-freq", "attribution")


def _verb() -> Any:
    # looked up at call time: select imports this package (DEFAULT_K), so a top-level import would be a cycle
    return importlib.import_module("saedetox.discover.select").discover


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _verb()(*args, **kwargs)

    @property
    def __wrapped__(self) -> Any:  # inspect.signature(saedetox.discover) shows the function's
        return _verb()


sys.modules[__name__].__class__ = _CallablePackage
