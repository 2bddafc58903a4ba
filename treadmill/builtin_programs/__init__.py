"""Built-in programs, one TOML file each (the same format as user programs)."""
