//! The logs of every application the tests start, kept so that a test can read what its
//! requests caused (for example, that no card number was ever written). Our crates log at
//! `debug`, the others at `info`; `DASHBOARD_LOG` replaces that filter and also prints
//! the logs (`DASHBOARD_LOG=info cargo test …`).

use std::io::Write;
use std::sync::{Mutex, Once};

use dashboard::config::LogFormat;

static TEXT: Mutex<String> = Mutex::new(String::new());

/// Installs the log watch once per test process.
pub fn watch() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let echo = std::env::var_os("DASHBOARD_LOG").is_some();
        dashboard::telemetry::init_with(LogFormat::Text, "info,dashboard=debug", move || Watch { echo });
    });
}

/// Everything logged so far.
pub fn text() -> String {
    TEXT.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

struct Watch {
    echo: bool,
}

impl Write for Watch {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        TEXT.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push_str(&String::from_utf8_lossy(buf));
        if self.echo {
            std::io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
