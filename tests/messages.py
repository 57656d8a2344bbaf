"""Small HL7v2 messages written for tests, where no corpus message shows the case."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "hl7"

MSH = (
    "MSH|^~\\&|NTC-LIS|NTCH|TRIALBRIDGE|NTCH|20240115093000+0800||ORU^R01^ORU_R01|{id}|P|2.5.1"
    "||||||{charset}"
)
PID = "PID|1||{mrn}^^^NTCH^MR||Patient^Test||19600101|F"
OBR = (
    "OBR|1|P-{order}^HIS|{order}^NTC-LIS|LFT^Liver panel^L|||20240115083000+0800"
    "|||||||||||||||20240115093000+0800|||{status}"
)


def obx(
    set_id: int,
    code: str,
    value: str,
    unit: str = "",
    *,
    value_type: str = "NM",
    ref: str = "",
    flags: str = "",
    status: str = "F",
    sub_id: str = "1",
    observed: str = "20240115083000+0800",
) -> str:
    """One OBX segment; ``code`` is ``CODE^Text^System``."""
    return (
        f"OBX|{set_id}|{value_type}|{code}|{sub_id}|{value}|{unit}|{ref}|{flags}|||{status}"
        f"|||{observed}"
    )


def oru(
    *results: str,
    message_id: str = "MSG0001",
    mrn: str = "MRN001",
    order: str = "240115-0001",
    order_status: str = "F",
    charset: str = "",
    notes: tuple[str, ...] = (),
) -> str:
    """An ORU^R01 with one order, CR-separated."""
    segments = [
        MSH.format(id=message_id, charset=charset),
        PID.format(mrn=mrn),
        OBR.format(order=order, status=order_status),
        *(f"NTE|{i}||{note}" for i, note in enumerate(notes, start=1)),
        *results,
    ]
    return "\r".join(segments) + "\r"


ALT = "ALT^Alanine aminotransferase^L"
TBIL = "TBIL^Total bilirubin^L"
ALB = "ALB^Albumin^L"
INR = "INR^INR^L"
ALP = "ALP^Alkaline phosphatase^L"
