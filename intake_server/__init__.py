"""Amana intake server: the source-facing web app behind the coalition's onion service.

Questionnaire and uploads with JavaScript off, every file age-encrypted to the
chosen desks as it streams in, durable storage, English/Arabic/French. The
public entry point is intake_server.app.create_app(config); the command line is
`intake-server` (intake_server/__main__.py). docs/server.md is the operator's
guide, docs/threat-model.md what it defends against, docs/adr/0005 how the web
layer is laid out (state, rendering, forms, upload, one route module per room).
"""

__all__: list[str] = []
