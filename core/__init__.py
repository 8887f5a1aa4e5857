"""visearch engine: configuration, domain types, encoders, vector store and search service.

`core` knows no messenger and no CLI; every adapter depends on it, never the reverse.
"""
