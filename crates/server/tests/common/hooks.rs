//! A webhook receiver on loopback, and the service state delivering to it.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use keywarden_server::{AppState, Settings};

use super::app::App;

/// What a receiver got: each request's headers and body, in order.
pub type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A webhook receiver on `listener` (path `/hook`) that records every request and answers 200.
pub async fn receiver(listener: tokio::net::TcpListener) -> Received {
    let got: Received = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push((headers, body));
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    got
}

/// A receiver that comes up on `port` (one that was down), and the clock moved past the first
/// retry's backoff.
pub async fn receiver_back_on(app: &App, port: u16) -> Received {
    let got = receiver(
        tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap(),
    )
    .await;
    app.clock.advance_secs(2);
    got
}

/// A loopback port nobody listens on (yet): a receiver that is down.
pub async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// The receiver's URL on `port`.
pub fn hook_url(port: u16) -> url::Url {
    url::Url::parse(&format!("http://127.0.0.1:{port}/hook")).unwrap()
}

/// The app's service state with `configure` applied to its settings (which webhooks to send to).
pub fn state_with(app: &App, configure: impl FnOnce(&mut Settings)) -> AppState {
    let mut settings = super::app::settings();
    configure(&mut settings);
    AppState::new(
        app.state.db.clone(),
        settings,
        app.clock.clone(),
        (*app.state.keys).clone(),
    )
    .unwrap()
}
