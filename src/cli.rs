//! Argument parsing (stub)
