//! All kernel-facing effects behind narrow traits (real + recording fake). `unsafe` only here.
