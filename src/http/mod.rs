//! HTTP plumbing shared by the Kubernetes API client and the metadata clients.

pub mod retry;
