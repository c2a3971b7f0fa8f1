//! kubeadm JoinConfiguration files (stub).
