"""Downloader middlewares: SSRF guard, per-domain rate limit, freshness, retry backoff."""
