"""The web console: server-rendered pages over the same services as the admin API (docs/console.md)."""
