"""Pieces of the `monitor.toml` model (`monitor.config`), one module per group of tables:
`base` (the strict model and the checked types), `rules` (`[[models.alerts]]`), `limits`
(`[limits]`), `delivery` (`[[channels]]`, `[scheduler]`, `[notifications]`, `[retention]`) and
`stream` (`[models.stream]`).
`monitor.config` assembles them and re-exports every class; import them from there.
"""
