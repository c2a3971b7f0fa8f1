//! Host preparation: kernel modules, sysctls, swap, preflight — planned as data, applied, verified.
