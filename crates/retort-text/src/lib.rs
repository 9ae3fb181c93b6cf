//! Text algorithms (being written).
