"""Small helpers for the API server selftests."""
from __future__ import annotations

import json


def status_of(exc) -> dict:
    """The Status body of an ApiException."""
    return json.loads(exc.body)


def raw(api_client, method, path, body=None, content_type="application/json", query=None):
    """A request through the official ApiClient (its auth and TLS), answering the decoded JSON."""
    return api_client.call_api(path, method, query_params=list((query or {}).items()),
                               header_params={"Content-Type": content_type, "Accept": "application/json"},
                               body=body, auth_settings=["BearerToken"],
                               response_types_map={200: "object", 201: "object"},
                               _return_http_data_only=True)
