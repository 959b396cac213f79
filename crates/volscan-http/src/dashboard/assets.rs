//! The dashboard's static files, embedded in the binary at compile time and
//! served under `/assets/NAME.HASH.EXT`: the hash is of the content, so a
//! new build's file has a new name and every response can be cached
//! forever (`Cache-Control: immutable`). Nothing is fetched from elsewhere.

use std::hash::Hasher;
use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{HttpResponse, web};

/// One embedded file.
pub(crate) struct Asset {
    /// The path it is served at, hash included.
    pub path: String,
    content_type: &'static str,
    body: &'static [u8],
}

/// FNV-1a over the content, 64 bits, as 16 hex digits: stable across builds
/// and compilers, unlike `std`'s hasher, so a URL changes only with its file.
fn content_hash(body: &[u8]) -> String {
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for byte in bytes {
                self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
    hasher.write(body);
    format!("{:016x}", hasher.finish())
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, body: &'static [u8]) -> Self {
        Asset { path: format!("/assets/{stem}.{}.{ext}", content_hash(body)), content_type, body }
    }
}

/// The stylesheet.
pub(crate) static STYLE: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new("style", "css", "text/css; charset=utf-8", include_bytes!("../../assets/style.css"))
});

/// The one script: live progress of queued and running scans.
pub(crate) static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new("app", "js", "text/javascript; charset=utf-8", include_bytes!("../../assets/app.js"))
});

/// The icon.
pub(crate) static ICON: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new("icon", "svg", "image/svg+xml", include_bytes!("../../assets/icon.svg"))
});

/// `GET /assets/{file}`: an embedded file by its hashed name; any other
/// name (an old hash too) is a 404, never a stale file under a new name.
pub(crate) async fn serve(file: web::Path<String>) -> HttpResponse {
    let wanted = format!("/assets/{file}");
    for asset in [&*STYLE, &*SCRIPT, &*ICON] {
        if asset.path == wanted {
            return HttpResponse::Ok()
                .content_type(asset.content_type)
                .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
                .body(asset.body);
        }
    }
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body("no such asset")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_a_hash_of_the_content() {
        assert_eq!(content_hash(b""), "cbf29ce484222325");
        assert_eq!(content_hash(b"a"), "af63dc4c8601ec8c");
        assert!(STYLE.path.starts_with("/assets/style.") && STYLE.path.ends_with(".css"));
        assert_ne!(STYLE.path, SCRIPT.path);
        assert_eq!(STYLE.path, Asset::new("style", "css", "", STYLE.body).path);
    }
}
