"""The seven scenarios of issue 8. Each is ``run(ctx) -> list[Row]``."""
