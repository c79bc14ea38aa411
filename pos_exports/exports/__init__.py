"""Period exports: reports rendered from the archive into storage, with a manifest."""
