"""JSON Schemas for every document of contract v1 (a package so the files ship as package data)."""
