"""The seven scenarios of issue 8, and 8: the SDTM export (issue 15). Each is
``run(ctx) -> list[Row]``."""
