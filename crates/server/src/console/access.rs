//! Who may see a console page: a console sign-in whose role the page's API endpoint admits.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;
use keywarden_protocol::ErrorCode;

use super::html::refused;
use crate::auth::{Caller, Roles};
use crate::error::{Error, Result};
use crate::state::AppState;

/// A page's caller: a console sign-in whose role is one of `R`'s (the roles of the API
/// endpoint whose data the page shows). A bearer token is a script's and opens no page.
pub struct Console<R: Roles> {
    /// Who is signed in to the console, if anyone.
    signed_in: Option<Caller>,
    /// Whether their role reaches this page (else why not).
    allowed: Result<()>,
    roles: PhantomData<R>,
}

impl<R: Roles> FromRequestParts<AppState> for Console<R> {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, Self::Rejection> {
        let (signed_in, allowed) = match super::caller(state, parts).await {
            Ok(Some(c)) => {
                let allowed = c.require(R::ALLOWED).map_err(|_| {
                    let names: Vec<&str> = R::ALLOWED.iter().map(|r| r.as_str()).collect();
                    Error::forbidden(
                        ErrorCode::RoleForbidden,
                        format!(
                            "this page is for {}; your role ({}) does not include it",
                            names.join(" and "),
                            c.role.as_str()
                        ),
                    )
                });
                (Some(c), allowed)
            }
            Ok(None) => (
                None,
                Err(Error::unauthorized(
                    ErrorCode::SessionUnknown,
                    "sign in to the console",
                )),
            ),
            Err(e) => (None, Err(e)),
        };
        Ok(Console {
            signed_in,
            allowed,
            roles: PhantomData,
        })
    }
}

/// Render with `f` for a caller the extractor let through; else the refusal page.
pub(super) async fn with<R, F, Fut>(console: Console<R>, f: F) -> Response
where
    R: Roles,
    F: FnOnce(Caller) -> Fut,
    Fut: std::future::Future<Output = Result<Response>>,
{
    match (console.signed_in, console.allowed) {
        (Some(caller), Ok(())) => {
            let shown = caller.clone();
            match f(caller).await {
                Ok(r) => r,
                Err(e) => refused(&e, Some(&shown)),
            }
        }
        (caller, Err(e)) => refused(&e, caller.as_ref()),
        (None, Ok(())) => refused(
            &Error::unauthorized(ErrorCode::SessionUnknown, "sign in to the console"),
            None,
        ),
    }
}
