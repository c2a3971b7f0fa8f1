//! Time as numbers and text, below everything that reads or prints it: the calendar and RFC 3339
//! ([`calendar`]), HTTP-dates ([`http_date`]), Go durations and the one way kubejoin prints a
//! duration ([`duration`]), and wall-clock points and offsets that may be wrong ([`wall`]).

pub mod calendar;
pub mod duration;
pub mod http_date;
pub mod wall;

pub use wall::{Offset, WallTime};
