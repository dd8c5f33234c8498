"""The import framework, knowing no file format: sources (files, URLs, archives), file types by their
bytes, CSV tables, typed values, validation against the declaration, coordinates, the staging table and
upsert, the import report, and ``run`` which drives one kind in the caller's transaction."""
