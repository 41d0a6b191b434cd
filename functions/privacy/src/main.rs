use chat_core::Runtime;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    chat_core::app::run(|config| async {
        Ok(privacy::App::new(Runtime::from_config(config).await))
    })
    .await
}
