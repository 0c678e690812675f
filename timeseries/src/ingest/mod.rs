//! Turning incoming writes into validated [`crate::model::WriteBatch`]es.

pub mod remote_write;
