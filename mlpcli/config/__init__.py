"""The config: its schema, YAML reading with bounds, KEY=VALUE overrides, the registries of
every name a config may use, and the wording of values in messages."""
