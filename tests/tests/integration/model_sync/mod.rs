//! model-sync end to end against real servers (being written).
