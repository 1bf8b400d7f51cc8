//! Helpers shared by the service tests: a fresh database per test on SQLite or PostgreSQL, the
//! router driven with `tower::ServiceExt::oneshot`, role tokens, device-signed calls, and real
//! attested enrolments with the software key (test/demo).
//!
//! PostgreSQL: set `KEYWARDEN_TEST_POSTGRES_URL` to a server where the user may create
//! databases (scripts/test.sh starts a throwaway cluster and sets it). Each test creates its own
//! database. Without the variable the PostgreSQL variants FAIL: PostgreSQL is expected. Only
//! `KEYWARDEN_TEST_SKIP_POSTGRES=1` skips them, on purpose and loudly: each skipped test writes
//! `SKIPPED on PostgreSQL: <test>` straight to the terminal (past the test harness's capture)
//! and appends its name to the file named by `KEYWARDEN_TEST_SKIP_LOG`, which scripts/test.sh
//! counts for its closing line.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]
//!
//! One concern a file: `db` (backends, fresh databases, the test clock), `app` (the service and
//! its calls), `device` (a laptop's signed calls), `softkey` (attested credentials and their
//! browser shapes), `browser` (the self-service pages), `flows` (enrolment, step-up and
//! directory helpers built on those), `hooks` (a webhook receiver), `process` (the real binary) and `endpoints` (the role matrix, compared with the router's
//! routes by tests/roles.rs).

mod app;
mod browser;
mod db;
mod device;
mod endpoints;
mod flows;
mod hooks;
mod process;
mod softkey;

// Each test binary compiles every helper and uses a part of them.
#[allow(unused_imports)]
pub use app::*;
#[allow(unused_imports)]
pub use browser::*;
#[allow(unused_imports)]
pub use db::*;
#[allow(unused_imports)]
pub use device::*;
#[allow(unused_imports)]
pub use endpoints::*;
#[allow(unused_imports)]
pub use flows::*;
#[allow(unused_imports)]
pub use hooks::*;
#[allow(unused_imports)]
pub use process::*;
#[allow(unused_imports)]
pub use softkey::*;

/// Define a test that runs once on SQLite and once on PostgreSQL, each on a fresh database.
/// The PostgreSQL variant fails without a server unless skipped on purpose (see the module
/// notes).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::common::App::new($crate::common::Backend::Sqlite).await;
                super::$name(app.expect("SQLite is always there")).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let test = concat!(module_path!(), "::postgres");
                if let Some(app) =
                    $crate::common::App::for_test($crate::common::Backend::Postgres, test).await
                {
                    super::$name(app).await;
                }
            }
        }
    )*};
}
