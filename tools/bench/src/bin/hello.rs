//! The cold-start baseline: a bare lambda_http hello-world, built with the same
//! profile as the functions.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_req: Request| async {
        Ok::<_, Error>(
            Response::builder()
                .status(200)
                .body(Body::Text("{\"hello\":\"world\"}".into()))?,
        )
    }))
    .await
}
