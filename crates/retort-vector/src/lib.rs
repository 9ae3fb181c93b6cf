//! Vector algorithms (being written).
