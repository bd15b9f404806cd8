//! ModelRegistry controller on the local control plane (being written).
