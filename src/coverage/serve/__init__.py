"""``covplan serve``: meeting mode, a local web app that answers "what if we build it here?" live.

:mod:`coverage.serve.state` holds the session (baseline, variants, undo/redo, plan YAML, export) on
top of :mod:`coverage.incremental`; :mod:`coverage.serve.app` is the Starlette app (JSON API of
``docs/serve.md``, server-sent events, the page and its local assets).
"""
