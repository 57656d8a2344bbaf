"""Tools for interface engineers: explain a message, lint and diff ``mappings/``, and check a
message's conformance to its HL7 version.

Each module is a pure core (data in, data out) that ``adapter/cli/engineer.py`` wraps; none of
them is on the service's hot path.
"""
