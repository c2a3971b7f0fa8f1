//! Raw join data: kubeadm JoinConfiguration files (later: kernel command line, metadata).
