"""The HTTP API (/api/v1) and the web page of `visearch serve`."""

from visearch.bots.api.app import install_api

__all__ = ["install_api"]
