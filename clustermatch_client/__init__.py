"""Python client for the ClusterMatch API, for partner portals.

    from clustermatch_client import Client

    with Client("https://clustermatch.example", api_key="...") as cm:
        result = cm.match(country="KAZ")
        print(result.recommended_model, result.ranking[0].score)

Answers are the service's own pydantic models (app.schemas); a refused request raises
`ClusterMatchError` with the problem+json body. 429 and 5xx answers are retried with
Retry-After honoured, up to `RetryPolicy.max_attempts`.
"""

from clustermatch_client.client import AsyncClient, Client
from clustermatch_client.errors import ClusterMatchError
from clustermatch_client.retry import RetryPolicy

__all__ = ["AsyncClient", "Client", "ClusterMatchError", "RetryPolicy"]
