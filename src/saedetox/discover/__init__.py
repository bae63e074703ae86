"""Discovery: rank SAE latents by how toxicity-specific they are, select some, and write features.json.

``saedetox.discover(lm, sae, sets)`` is the verb (:func:`saedetox.discover.select.discover`); since
this package has the same name and Python binds a subpackage to its parent's attribute when it is
imported, the package itself is callable and forwards to that function.
"""

import sys
import types
from typing import Any

DEFAULT_K = 20  # latents selected; the reference demo found k = 20 better than 10 (test-split set AUROC)
DEFAULT_MIN_AUROC = 0.6  # per latent, on the select split


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from saedetox.discover.select import discover  # deferred: select imports this package

        return discover(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
