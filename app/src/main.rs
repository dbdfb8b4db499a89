// The library checks its dependencies (`unused_crate_dependencies`); this thin binary
// uses only the library, so the check is off here.
#![allow(unused_crate_dependencies)]

fn main() -> std::process::ExitCode {
    dashboard::cli::main()
}
