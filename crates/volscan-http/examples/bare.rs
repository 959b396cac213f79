//! A bare actix-web handler, the baseline `cargo xtask bench-http` compares
//! `GET /api/v1/scheduler/status` with: same framework, same worker count,
//! no state, a small constant JSON body.
//!
//! `cargo run --release -p volscan-http --example bare -- 127.0.0.1:18181`

use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18181".to_owned());
    HttpServer::new(|| {
        App::new().route(
            "/bare",
            web::get()
                .to(|| async { HttpResponse::Ok().json(serde_json::json!({ "running": true })) }),
        )
    })
    .bind(bind)?
    .run()
    .await
}
