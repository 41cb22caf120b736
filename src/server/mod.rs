//! The tokio driver (filled in next).
