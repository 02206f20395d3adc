"""One module per `curate` command; each defines a click command named ``command``."""
