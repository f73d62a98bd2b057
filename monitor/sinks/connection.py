"""Opening a ClickHouse client from a store URL, and showing the URL without its password.

``chdb:///abs/path`` opens the embedded engine in this process (one process per path);
``http(s)://user:password@host:8123`` a server, with short connect timeouts so that an
outage is noticed quickly and the sink's retries take over.
"""

from __future__ import annotations

from typing import Any


def new_client(
    url: str, connect_timeout_s: float = 3.0, send_receive_timeout_s: float = 30.0
) -> Any:
    """A clickhouse-connect client for ``url`` (raises what the driver raises)."""
    import clickhouse_connect

    if url.startswith("chdb:"):
        return clickhouse_connect.get_client(dsn=url)
    return clickhouse_connect.get_client(
        dsn=url,
        connect_timeout=connect_timeout_s,
        send_receive_timeout=send_receive_timeout_s,
        autogenerate_session_id=False,
    )


def safe_url(url: str) -> str:
    """The store URL without a password (for messages and logs)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url
