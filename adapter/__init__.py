"""TrialBridge: LIS laboratory results (HL7v2 ORU^R01) into a clinical trial's FHIR R4 server.

The flow, one module or sub-package per stage (see DESIGN.md):

    sources -> inbox -> parse -> enrolment filter -> map -> trial context -> scores
            -> outbox -> FHIR server
"""

__version__ = "0.1.0"
