//! Audit chain tests (being written).
