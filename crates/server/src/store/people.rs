//! Lookups of people that several features make.

use sqlx::{Any, Executor};

use super::flag;
use crate::error::Result;

/// Whether a person who is not deleted is active; `None` when there is no such person.
pub async fn active<'c>(
    db: impl Executor<'c, Database = Any>,
    person_id: &str,
) -> Result<Option<bool>> {
    let active: Option<i64> = super::value_by(
        db,
        "SELECT active FROM people WHERE id = $1 AND deleted_at IS NULL",
        person_id,
    )
    .await?;
    Ok(active.map(flag))
}

/// Whether a person who is not deleted has this id.
pub async fn exists<'c>(db: impl Executor<'c, Database = Any>, person_id: &str) -> Result<bool> {
    Ok(active(db, person_id).await?.is_some())
}
