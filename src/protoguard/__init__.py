"""protoguard: a runtime guard for database-session providers.

Decorate a provider with :func:`protoguard.provider`; every use with the wrong
protocol then raises :class:`protoguard.ProtocolError` at the user's own line, with
the corrected line in the message.
"""

from contextlib import suppress as _suppress

from ._config import MODES as MODES
from ._config import Mode as Mode
from ._config import configure as configure
from ._config import current_action as current_action
from ._config import current_mode as current_mode
from ._config import current_sample_rate as current_sample_rate
from ._config import override as override
from ._decorator import provider as provider
from ._findings import ACTIONS as ACTIONS
from ._findings import Action as Action
from ._findings import Finding as Finding
from ._findings import clear_findings as clear_findings
from ._findings import findings as findings
from ._importhook import ImportHook as ImportHook
from ._importhook import guard_this_package as guard_this_package
from ._importhook import install_import_hook as install_import_hook
from ._kinds import KINDS as KINDS
from .exceptions import CallSite as CallSite
from .exceptions import Code as Code
from .exceptions import ConfigurationError as ConfigurationError
from .exceptions import Kind as Kind
from .exceptions import ProtocolAttributeError as ProtocolAttributeError
from .exceptions import ProtocolError as ProtocolError
from .exceptions import ProtocolWarning as ProtocolWarning
from .exceptions import ProviderInfo as ProviderInfo
from .exceptions import ProviderRuntimeError as ProviderRuntimeError

__version__ = "0.1.0"

__all__ = [
    "ACTIONS",
    "KINDS",
    "MODES",
    "Action",
    "CallSite",
    "Code",
    "ConfigurationError",
    "Finding",
    "ImportHook",
    "Kind",
    "Mode",
    "ProtocolAttributeError",
    "ProtocolError",
    "ProtocolWarning",
    "ProviderInfo",
    "ProviderRuntimeError",
    "clear_findings",
    "configure",
    "current_action",
    "current_mode",
    "current_sample_rate",
    "findings",
    "guard_this_package",
    "install_import_hook",
    "override",
    "provider",
]

# Tracebacks and reprs show protoguard.ProtocolError, not protoguard.exceptions.ProtocolError.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("protoguard."):
        with _suppress(AttributeError, TypeError):  # pragma: no cover - read-only objects
            _obj.__module__ = __name__
del _name, _obj, _suppress
