"""Runtimes that call a verified tool: ``restricted`` in-process for pure tools, else ``docker``."""

from toolsmith.runtimes.restricted import RestrictedRuntime, RestrictedTool, load_restricted

__all__ = ["RestrictedRuntime", "RestrictedTool", "load_restricted"]
