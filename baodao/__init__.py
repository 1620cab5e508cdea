"""The ``baodao`` command: one entry point whose subcommands live with the package they drive."""
