//! Paths under an injectable root (stub: owned by the bootstrap/install work).
