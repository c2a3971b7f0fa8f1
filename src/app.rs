//! The order of stages (stub)
