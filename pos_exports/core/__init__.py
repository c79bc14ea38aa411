"""The shared ground: concepts every layer uses (the catalogue of datasets and formats, calendar words, the
words for true and false). It imports nothing else of the project, so any layer may import it."""
