"""Finding the files to ingest: paths, folders, globs and .gitignore rules."""
