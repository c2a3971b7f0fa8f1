//! The node's filesystem: the one atomic writer, the root every node path is resolved in, and the
//! failpoints of the write path.

pub mod atomic;
pub mod failpoint;
pub mod root;
