"""Fuzzing the paths bad input takes: mutants of real messages, and the property they must keep.

Bad input is normal input (DESIGN.md): a hospital's feed sends truncated files, wrong
character sets, impossible dates and stray bytes, and one such message must never stop the
flow. The property checked here, for every mutant, is the one the service relies on:

- :mod:`adapter.fuzz.targets` ``translate``: :func:`adapter.translate.translate` (the path
  ``trialbridge map`` and the service's processing job run) returns each message mapped,
  held with a reason, or refused with a :class:`~adapter.errors.TrialBridgeError`; it raises
  nothing else, and no resource it builds holds U+FFFD or a control character;
- ``mllp``: the MLLP per-message pure path (frame decoding, the frame check, the ACK) answers
  every complete frame with an ACK and raises nothing.

The mutants (:mod:`adapter.fuzz.mutate`) are made from seed messages
(:mod:`adapter.fuzz.seeds`: the real-world corpus copied into ``tests/data/corpus`` and the
simulated feed of ``adapter.simulate``) by byte flips, truncation, dropped and duplicated
segments, swapped separators, huge fields, invalid UTF-8, NULs, bad dates, times and offsets,
bad escape sequences, long numbers and bad MSH-18 character sets.

Written here rather than taken from a library: the mutations must know HL7's structure
(segments, fields, MSH-18, timestamps) to reach past the first check, and a plain seeded loop
(:mod:`adapter.fuzz.campaign`, ``make fuzz``) tries ~100,000 of them in minutes and reports
every failure, where a property-testing library stops at the first. The test suite drives
the same mutators through hypothesis (``tests/test_fuzz_translate.py``).
"""
