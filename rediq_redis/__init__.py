"""rediq's Redis broker plugin (entry point ``redis``)."""

from __future__ import annotations
