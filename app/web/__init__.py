"""The web: the HTTP API's views, the pages, health, errors, rate limits and metrics."""
