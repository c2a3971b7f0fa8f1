//! Logging (stub)
