"""The web side: what runs inside daphne. It reaches the workers only through the channel
layer and never imports the worker or supervisor packages (import-linter enforces it)."""
