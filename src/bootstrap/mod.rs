//! The kubelet's TLS bootstrap done by kubejoin: key, CSR, submit, wait, verify.
