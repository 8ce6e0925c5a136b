"""`micro`, the kit's command line: new services, and a look at the running ones."""
