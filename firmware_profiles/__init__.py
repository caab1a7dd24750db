"""Chip profiles: data files (TOML) describing each gauge family. Loaded by smartbatt.profiles."""
