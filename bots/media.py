"""The one public URL of a product photo, for every channel and the HTTP API.

Where the photo is comes from `visearch.core.media` (the catalog's URL, or a local file); a local
file is reachable from outside through this server's `/media/{point_id}` route, so a platform or a
browser fetching it needs the server's public address.
"""

from __future__ import annotations

from visearch.core.media import PhotoLocation


def media_route_url(public_url: str, point_id: str) -> str:
    """This server's /media route for one point."""
    return f"{public_url.rstrip('/')}/media/{point_id}"


def public_photo_url(point_id: str, photo: PhotoLocation, public_url: str | None) -> str | None:
    """Where a platform or browser fetches the photo: the catalog's own URL, else our /media route for a
    local file; None when the photo has neither, or it is local and no public address is known."""
    if photo.url:
        return photo.url
    if photo.file is not None and public_url:
        return media_route_url(public_url, point_id)
    return None
