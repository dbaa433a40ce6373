//! SQL migrations for both storage backends, embedded in the binary.
//!
//! - `sqlite/`: applied to the default SQLite file.
//! - `postgres/`: applied when `DATABASE_URL` points at PostgreSQL.
//!
//! The two folders hold the same schema; they differ only where the dialects do
//! (types, full-text search), so each backend gets its native column types.

use sqlx::migrate::Migrator;

/// Migrations for the SQLite backend.
pub static SQLITE: Migrator = sqlx::migrate!("./sqlite");

/// Migrations for the PostgreSQL backend.
pub static POSTGRES: Migrator = sqlx::migrate!("./postgres");
