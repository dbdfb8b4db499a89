//! End-to-end stories over HTTP (SQLite always, PostgreSQL when configured) and in a real
//! browser. One binary, so that the application is linked once.
#![allow(clippy::unwrap_used)]

mod access;
mod accessibility;
mod analytics;
mod browser;
mod callbacks;
mod client;
mod database;
mod fuzz;
mod hardening;
mod payments;
mod payouts;
mod problems;
mod profile;
mod recovery;
mod registry;
mod security;
mod shell;
mod sms;
mod team;
mod themes;
mod tokens;

/// The story tests sections keep in their own crate (`modules/<crate>/e2e.rs`), found by
/// the build script.
mod sections {
    include!(concat!(env!("OUT_DIR"), "/sections.rs"));
}
