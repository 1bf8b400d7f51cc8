//! Attack scenarios: see main.rs.
