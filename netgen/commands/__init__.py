"""One module per CLI command; netgen.cli registers them."""
