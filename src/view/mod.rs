//! Views: read models kept from a log.

pub mod index;
