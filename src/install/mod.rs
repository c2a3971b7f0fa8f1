//! Every file the kubelet needs, written only through the atomic writer, under a root.
