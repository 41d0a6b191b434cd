use chat_core::Runtime;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    chat_core::app::run(|config| async {
        let env = std::env::vars().collect();
        let ai = messages::ai::Ai::from_env(&env, &config.aws).await?;
        Ok(messages::App::with_ai(
            Runtime::from_config(config).await,
            ai,
        ))
    })
    .await
}
