//! Time as text and numbers: durations (Go syntax).

pub mod duration;
