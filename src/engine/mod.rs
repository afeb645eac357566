//! The engine (being merged).
pub mod closure;
pub mod intake;
