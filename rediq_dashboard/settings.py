"""Settings of the dashboard plugin (``docs/configuration.md`` renders this module).

Imported when the plugin loads, with or without Starlette: constants only.
"""

from __future__ import annotations

from typing import Final

#: ``rediq dashboard`` binds this address and port (loopback only, unless told).
DASHBOARD_HOST: Final = "127.0.0.1"
DASHBOARD_PORT: Final = 8181
#: Tasks per page in the dashboard's listings.
DASHBOARD_PAGE_SIZE: Final = 50
#: A search by name or arguments reads at most this many task records per request (the
#: next request goes on where it stopped: a "search further" link), so one search costs
#: a bounded amount of Redis work however many tasks the queues hold.
DASHBOARD_SEARCH_SCAN: Final = 1_000
#: The dashboard's overview and workers pages reload their content this often, in
#: seconds (0: never).
DASHBOARD_REFRESH_S: Final = 5
#: ``rediq dashboard --basic-auth`` from the environment (keeps it off ``ps``).
ENV_AUTH: Final = "REDIQ_DASHBOARD_AUTH"
