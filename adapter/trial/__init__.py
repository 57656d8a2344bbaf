"""Stage "trial context": the study (config/study.yaml), its visits and its FHIR resources,
and (with the enrolment registry) who may leave the hospital and under which pseudonym.
"""
