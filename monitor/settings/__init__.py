"""Pieces of the `monitor.toml` model (`monitor.config`), one module per group of tables:
`base` (the strict model and the checked types), `rules` (`[[models.alerts]]`), `limits`
(`[limits]`) and `delivery` (`[[channels]]`, `[scheduler]`, `[notifications]`, `[retention]`).
`monitor.config` assembles them and re-exports every class; import them from there.
"""
