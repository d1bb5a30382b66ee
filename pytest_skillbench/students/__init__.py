"""Students: registry entries resolved to backends (hf, replay, ...)."""
