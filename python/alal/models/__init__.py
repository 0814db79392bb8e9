"""Built-in model plugins (``ani``) and the file format they share."""
