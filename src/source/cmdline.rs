//! Kernel command line: tokenizer (kernel rules) and kubejoin.* keys.
