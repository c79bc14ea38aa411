"""The shared ground: concepts every layer uses (the catalogue of datasets, formats and period kinds, calendar
words, the words for true and false, email addresses, the rules of URLs, the clock). It imports nothing else of
the project, so any layer may import it."""
