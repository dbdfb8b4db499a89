//! The dashboard as its own process, with what the tests build in (the example section),
//! for the stories that stop a server the hard way (`tests/e2e/recovery.rs`).
#![allow(unused_crate_dependencies)]

fn main() -> std::process::ExitCode {
    dashboard::cli::main()
}
