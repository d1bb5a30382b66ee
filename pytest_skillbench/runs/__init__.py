"""The run store: a run directory's episodes, manifest and shards, read, written and merged (``store``)."""
