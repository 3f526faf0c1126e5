"""Exports: calendar feeds (iCalendar, secret subscription URLs) and FHIR R4B export and lab import.

feeds      create, revoke and open the secret feed URLs (only a SHA-256 of the token is stored)
calendar   the patient's doses and tasks, and the clinic's chair schedule, as RFC 5545 documents
codes      the code table (codes.yaml): LOINC, SNOMED CT, ATC and UCUM, each with its source
fhir       a patient's plan, doses, labs and screening as a FHIR Bundle (fhir.resources R4B)
fhir_import  lab results and screening results in, from FHIR Observations (idempotent)
"""
