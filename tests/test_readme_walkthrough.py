"""The interface engineers' walkthrough (docs/engineers/index.md), run as written: every
``$ trialbridge`` line of the section is run (real processes, a real FHIR server), the YAML it
tells the reader to add is added where it says, and each line the guide shows must appear in
what the command printed (``...`` stands for what is left out). If the guide and the program
drift apart, this fails."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from adapter.mappings import DEFAULT_MAPPINGS_DIR

ROOT = Path(__file__).resolve().parent.parent
SECTION = "# Interface engineers"
GUIDE = ROOT / "docs" / "engineers" / "index.md"
BIN = Path(sys.executable).parent


@dataclass
class Step:
    """A command and the lines the guide shows for it, or a YAML edit."""

    command: str = ""
    shown: list[str] = field(default_factory=list)
    yaml: str = ""
    below: str = ""  # the line the YAML goes below


def walkthrough(readme: str) -> list[Step]:
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    steps: list[Step] = []
    for match in re.finditer(
        r"(?P<before>[^`]*(?:`[^`]*`[^`]*)*?)```(?P<kind>\w*)\n(?P<body>.*?)```", section, re.S
    ):
        if match["kind"] == "yaml":
            below = re.findall(r"below `([^`]+)`", match["before"])
            steps.append(Step(yaml=match["body"], below=below[-1]))
            continue
        for line in match["body"].splitlines():
            if line.startswith("$ "):
                steps.append(Step(command=line[2:]))
            elif line.strip() and steps and steps[-1].command:
                steps[-1].shown.append(line.rstrip())
    return steps


def shown_in(line: str, printed: list[str]) -> bool:
    """Whether ``line`` (with ``...`` for what is left out) matches one printed line."""
    if line.strip() == "...":
        return True
    parts = line.split("...")
    pattern = ".*?".join(re.escape(p) for p in parts)
    return any(re.fullmatch(pattern, p.rstrip()) for p in printed)


def site(tmp_path: Path) -> Path:
    """What the walkthrough's reader has: the mappings under git, the mapping suite."""
    root = tmp_path / "site"
    shutil.copytree(DEFAULT_MAPPINGS_DIR, root / "mappings")
    shutil.copytree(ROOT / "tests" / "mapping-suite", root / "tests" / "mapping-suite")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "mappings"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "the mappings before"], check=True)
    return root


def test_the_readme_walkthrough_runs_as_written(
    tmp_path: Path, fhir_url: str, own_state_store: str
) -> None:
    steps = walkthrough(GUIDE.read_text(encoding="utf-8"))
    commands = [s.command for s in steps if s.command]
    assert len(commands) >= 9 and all(c.startswith("trialbridge ") for c in commands)
    assert any(s.yaml for s in steps)
    root = site(tmp_path)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "TRIALBRIDGE_MAPPINGS_DIRECTORY": str(root / "mappings"),
        "TRIALBRIDGE_STORE_URL": own_state_store,
        "TRIALBRIDGE_FHIR_URL": fhir_url,
    }
    for step in steps:
        if step.yaml:
            analytes = root / "mappings" / "analytes.yaml"
            text = analytes.read_text()
            anchor = next(line for line in text.splitlines() if step.below in line)
            analytes.write_text(text.replace(anchor + "\n", anchor + "\n" + step.yaml, 1))
            continue
        done = subprocess.run(
            shlex.split(step.command), cwd=root, env=env, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        printed = (done.stdout + "\n" + done.stderr).replace(f"{root}/", "").splitlines()
        expected = 1 if any(line.startswith("Error:") for line in step.shown) else 0
        assert done.returncode == expected, f"$ {step.command}\n{done.stdout}{done.stderr}"
        missing = [line for line in step.shown if not shown_in(line, printed)]
        assert not missing, (
            f"$ {step.command} did not print:\n"
            + "\n".join(missing)
            + ("\n--- it printed:\n" + "\n".join(printed))
        )
    # The walkthrough's point: the held sodium result reached the FHIR server once mapped.
    assert "1 result(s) resolved" in "\n".join(
        line for s in steps if s.command.startswith("trialbridge reprocess") for line in s.shown
    )


def test_the_walkthrough_is_checked_line_by_line() -> None:
    """The matcher itself: a changed number is a difference, ``...`` hides what is left out."""
    printed = ["1 message(s): 1 pushed, 0 dropped, 16 result(s) held, 0 dated"]
    assert shown_in("1 message(s): 1 pushed, ... 16 result(s) held, ...", printed)
    assert not shown_in("1 message(s): 1 pushed, ... 15 result(s) held, ...", printed)
    assert not shown_in("2 message(s): ...", printed)


def test_enrol_refuses_an_identifier_without_authority_unless_asked(
    fhir_url: str, own_state_store: str
) -> None:
    env = {**os.environ, "TRIALBRIDGE_STORE_URL": own_state_store, "TRIALBRIDGE_FHIR_URL": fhir_url}
    args = [str(BIN / "trialbridge"), "enrol", "DDSC-902", "--id", "555123", "--arm", "low-dose",
            "--consent", "2024-01-02", "--infusion", "2024-01-15", "--sex", "F",
            "--birth-year", "1961"]  # fmt: skip
    refused = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    assert refused.returncode == 2 and "--without-authority" in refused.stderr
    taken = subprocess.run(
        [*args, "--without-authority"], env=env, capture_output=True, text=True, check=False
    )
    assert taken.returncode == 0, taken.stderr
    assert "warning: DDSC-902's identifier has no assigning authority" in taken.stderr
