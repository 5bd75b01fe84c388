//! The conformance suite: what "works" means for a Fangkong store, decided once and run on
//! every backend.
//!
//! Each test is an `async fn(&TestDb)`; the `conformance!` macro turns a list of them into
//! one `#[tokio::test]` per backend (`sqlite::name`, `postgres::name`). SQLite runs always.
//! PostgreSQL runs when `FANGKONG_TEST_POSTGRES_URL` is set, each test in a schema of its
//! own; when it is not set the PostgreSQL tests say so and pass, except under `CI=true`,
//! where a missing database is a failure, never a skip.

mod support;

/// Expands a list of test functions into a SQLite and a PostgreSQL test each.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::support::TestDb::sqlite().await;
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = crate::support::TestDb::postgres().await {
                        super::$name(&db).await;
                    }
                }
            )*
        }
    };
}

mod audit;
mod codes;
mod dispatch;
mod forces;
mod identity;
mod lifecycle;
mod meta;
mod migrations;
mod outbox;
mod positions;
mod registry;
