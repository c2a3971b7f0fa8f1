//! Raw join data: kernel command line, kubeadm JoinConfiguration files, cloud metadata user-data.

pub mod cmdline;
pub mod joinconfig;
pub mod load;
pub mod metadata;
