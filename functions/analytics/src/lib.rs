//! The `analytics` function: the caller's dashboard and the tenant-wide figures.

use chat_core::app;
use chat_core::auth::AuthConfig;
use chat_core::store::Store;
use chat_core::{ApiError, Runtime};
use lambda_http::{Body, Request, Response};

/// The route keys this function serves, exactly as template.yaml declares them.
pub const ROUTES: &[&str] = &[
    "GET /chat/analytics/dashboard",
    "GET /chat/analytics/global",
];

pub struct App {
    auth: AuthConfig,
    #[allow(dead_code)]
    store: Store,
}

impl App {
    pub fn new(runtime: Runtime) -> Self {
        App {
            auth: runtime.config.auth,
            store: runtime.store,
        }
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        app::serve(&self.auth, req, |route, _who, _req| async move {
            if ROUTES.contains(&route.as_str()) {
                // Declared in the template, built by a later issue.
                Err(ApiError::NotImplemented)
            } else {
                app::unknown_route()
            }
        })
        .await
    }
}
