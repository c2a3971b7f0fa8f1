//! Validated inputs ("parse, don't validate"): newtypes that can only hold valid values.

pub mod node_name;
pub mod pin;
pub mod token;
