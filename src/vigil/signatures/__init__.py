"""Signature and provenance verification: pure functions over bytes and parsed documents, no I/O.

The registry side (`vigil.registry.signatures`) fetches the artifacts; these modules decide what they
prove. Every check returns an `Outcome` (verified, invalid, absent or unknown), never raises on bad input.
"""
