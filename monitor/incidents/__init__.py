"""Incidents: root-cause localisation of recall drops on the count cube (docs/incidents.md)."""
