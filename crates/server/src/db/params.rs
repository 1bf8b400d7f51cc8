//! Numbered placeholders for statements whose shape depends on the data: `IN` lists, multi-row
//! inserts, `CASE` maps. Both databases accept `$n` through the `Any` driver; sqlx's
//! `QueryBuilder` is not used because under `Any` it writes `?`, which PostgreSQL refuses.
//! Callers bind values in the order the numbers say.

/// `$first, $(first + step), …`, `n` of them: an `IN (…)` list.
pub fn list(first: usize, n: usize, step: usize) -> String {
    (0..n)
        .map(|i| format!("${}", first + i * step))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($first, …), (…)`: `rows` tuples of `width` consecutive placeholders, for a multi-row
/// `INSERT … VALUES`.
pub fn rows(first: usize, rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", list(first + r * width, width, 1)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// [`rows`] for a statement all of whose placeholders it writes, numbered from 1, on `conn`'s
/// database. On SQLite they are anonymous (`?`): SQLite binds those by position, where a
/// numbered one is looked up in the statement's list of names, a search that grows with the
/// statement (a 64-row insert of nine columns spent more time there than inserting).
pub fn all_rows(conn: &sqlx::AnyConnection, rows: usize, width: usize) -> String {
    if conn.backend_name() != "SQLite" {
        return self::rows(1, rows, width);
    }
    let row = format!("({})", vec!["?"; width].join(", "));
    vec![row; rows].join(", ")
}

/// `WHEN $first THEN $(first + 1) WHEN …`, `n` pairs: the arms of a `CASE column …` mapping
/// each key to its value, bound key, value, key, value.
pub fn when_then(first: usize, n: usize) -> String {
    (0..n)
        .map(|i| format!("WHEN ${} THEN ${}", first + 2 * i, first + 2 * i + 1))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_binding_order() {
        assert_eq!(list(2, 3, 2), "$2, $4, $6");
        assert_eq!(list(1, 0, 1), "");
        assert_eq!(rows(1, 2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(when_then(2, 2), "WHEN $2 THEN $3 WHEN $4 THEN $5");
    }
}
