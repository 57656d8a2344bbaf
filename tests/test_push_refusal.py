"""``trialbridge push`` of a file that is not HL7 (issue 13): refused, named, exit status 1
(it used to print "0 pushed" and exit 0, so a script never saw it)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.test_service_run import TRIALBRIDGE


def test_pushing_a_file_that_is_not_hl7_is_an_error_exit(tmp_path: Path) -> None:
    (tmp_path / "letter.hl7").write_text("Dear colleague, please find the results enclosed.\n")
    done = subprocess.run(
        [TRIALBRIDGE, "push", str(tmp_path / "letter.hl7"), "--fhir-url", "http://127.0.0.1:9/x"],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "1 refused" in done.stdout
    assert f"{tmp_path / 'letter.hl7'}: refused: not an HL7 message" in done.stderr
    assert "Error: 1 message(s) refused" in done.stderr
