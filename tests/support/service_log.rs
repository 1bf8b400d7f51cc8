//! Where a test run keeps what the service printed, to search it for secrets afterwards
//! (`tests/secrets/scan.sh`). Shared by the end-to-end tests and the service's own tests, which
//! include this file.

/// The service's log level while its output is kept: debug, where secrets would show if any
/// code path logged one, with the chattiest libraries at info.
pub const KEPT_LOG_LEVEL: &str =
    "debug,sqlx=info,hyper=info,hyper_util=info,h2=info,rustls=info,reqwest=info";

/// A new `keywarden-server-*.log` file in `KEYWARDEN_TEST_LOG_DIR` when the test command set
/// it; else `None` (the output is not kept).
pub fn new_service_log() -> Option<std::fs::File> {
    let dir = std::path::PathBuf::from(std::env::var_os("KEYWARDEN_TEST_LOG_DIR")?);
    std::fs::create_dir_all(&dir).unwrap();
    Some(
        tempfile::Builder::new()
            .prefix("keywarden-server-")
            .suffix(".log")
            .tempfile_in(&dir)
            .unwrap()
            .keep()
            .unwrap()
            .0,
    )
}
