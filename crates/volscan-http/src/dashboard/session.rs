//! Who may do what on the dashboard, and how a browser proves it.
//!
//! With `AUTH_TOKEN` set, a person types the token once into `/login`; the
//! server checks it, creates a session (a random id, kept in memory with
//! its own random CSRF token) and sets only that id as a cookie that is
//! `HttpOnly` (no script reads it) and `SameSite=Strict` (no other site's
//! request carries it). The token itself never leaves the login form's
//! `POST` body: it is not in a URL, a page, a log or a cookie. Every
//! state-changing form carries the session's CSRF token in a hidden field,
//! compared in constant time, and must come from this origin (`Origin`
//! and `Sec-Fetch-Site`, when the browser sends them). Without a token
//! configured, actions are open like the API's, but the origin check still
//! applies. With `AUTH_READ` too, every page needs a session.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;

use crate::guard::constant_time_eq;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "volscan_session";

/// How long a session lasts after login.
pub(crate) const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Most sessions kept; the oldest go first when more log in.
const MAX_SESSIONS: usize = 10_000;

/// 244 random bits (two UUID v4s without their fixed bits), as 64 hex digits.
fn random_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

struct Session {
    csrf: String,
    expires: Instant,
}

/// The logged-in sessions, in memory: a restart logs everyone out.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// A new session; returns its id (for the cookie) and CSRF token.
    pub(crate) fn create(&self, now: Instant) -> (String, String) {
        let (id, csrf) = (random_token(), random_token());
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, session| session.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) =
                map.iter().min_by_key(|(_, session)| session.expires).map(|(id, _)| id.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), Session { csrf: csrf.clone(), expires: now + LIFETIME });
        (id, csrf)
    }

    /// The CSRF token of a live session.
    fn csrf(&self, id: &str, now: Instant) -> Option<String> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(id).filter(|session| session.expires > now).map(|session| session.csrf.clone())
    }

    /// Ends a session.
    pub(crate) fn remove(&self, id: &str) {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }
}

/// What the dashboard knows about the person behind a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Viewer {
    /// Whether a token is configured (actions, and with `AUTH_READ` pages, need a session).
    pub auth: bool,
    /// The live session's id and CSRF token, when logged in.
    pub session: Option<(String, String)>,
}

impl Viewer {
    /// Who sent `request`.
    pub(crate) fn of(request: &HttpRequest, sessions: &Sessions, auth: bool) -> Self {
        let session = request.cookie(COOKIE).and_then(|cookie| {
            let id = cookie.value().to_owned();
            sessions.csrf(&id, Instant::now()).map(|csrf| (id, csrf))
        });
        Viewer { auth, session }
    }

    /// Whether this viewer may press the action buttons.
    pub(crate) fn may_act(&self) -> bool {
        !self.auth || self.session.is_some()
    }

    /// The CSRF token forms carry (empty without a token configured).
    pub(crate) fn csrf(&self) -> &str {
        self.session.as_ref().map_or("", |(_, csrf)| csrf.as_str())
    }

    /// Checks a state-changing form's CSRF field against the session.
    pub(crate) fn accepts(&self, presented: &str) -> bool {
        match &self.session {
            None => !self.auth,
            Some((_, csrf)) => constant_time_eq(presented.as_bytes(), csrf.as_bytes()),
        }
    }
}

/// Whether a state-changing request comes from a page of this server: a
/// browser's `Sec-Fetch-Site`, when sent, says `same-origin`, and its
/// `Origin`, when sent, names the host the request was sent to.
pub(crate) fn same_origin(request: &HttpRequest) -> bool {
    let headers = request.headers();
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if text(header::HeaderName::from_static("sec-fetch-site"))
        .is_some_and(|site| site != "same-origin" && site != "none")
    {
        return false;
    }
    match text(header::ORIGIN) {
        None => true,
        Some(origin) => {
            let host = text(header::HOST).unwrap_or("");
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|rest| !host.is_empty() && rest == host)
        }
    }
}

/// The session cookie for `id`.
pub(crate) fn cookie(id: String) -> Cookie<'static> {
    let mut cookie = Cookie::new(COOKIE, id);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_path("/");
    cookie.set_max_age(actix_web::cookie::time::Duration::seconds(LIFETIME.as_secs() as i64));
    cookie
}

/// A cookie that removes the session cookie.
pub(crate) fn cleared() -> Cookie<'static> {
    let mut cookie = cookie(String::new());
    cookie.make_removal();
    cookie
}

/// `next` when it is a path on this server (`/…`, not `//…`), else `/`:
/// a redirect after login or an action never leaves the site.
pub(crate) fn local_path(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn sessions_expire_and_end() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let (id, csrf) = sessions.create(t0);
        assert_eq!(id.len(), 64);
        assert_ne!(id, csrf);
        assert_eq!(sessions.csrf(&id, t0).as_deref(), Some(csrf.as_str()));
        assert_eq!(sessions.csrf(&id, t0 + LIFETIME), None, "expired");
        assert_eq!(sessions.csrf("other", t0), None);
        sessions.remove(&id);
        assert_eq!(sessions.csrf(&id, t0), None);
    }

    #[test]
    fn viewers_without_a_session_act_only_without_a_token() {
        let open = Viewer { auth: false, session: None };
        assert!(open.may_act() && open.accepts(""));
        let stranger = Viewer { auth: true, session: None };
        assert!(!stranger.may_act() && !stranger.accepts("") && !stranger.accepts("x"));
        let member = Viewer { auth: true, session: Some(("id".into(), "c5rf".into())) };
        assert!(member.may_act() && member.accepts("c5rf"));
        assert!(!member.accepts("") && !member.accepts("c5rF"));
    }

    #[test]
    fn only_this_origin_may_change_state() {
        let request = |headers: &[(&str, &str)]| {
            let mut test = TestRequest::post().insert_header(("host", "127.0.0.1:8080"));
            for &(name, value) in headers {
                test = test.insert_header((name, value));
            }
            test.to_http_request()
        };
        assert!(same_origin(&request(&[])), "a client that is not a browser");
        assert!(same_origin(&request(&[
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&request(&[("origin", "http://evil.example")])));
        assert!(!same_origin(&request(&[("origin", "http://127.0.0.1:8080.evil.example")])));
        assert!(!same_origin(&request(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&request(&[("origin", "null")])));
    }

    #[test]
    fn redirects_stay_on_the_site() {
        assert_eq!(local_path(Some("/volumes/a?range=7d")), "/volumes/a?range=7d");
        for bad in ["//evil.example", "https://evil.example", "/\\evil", "", "x", "/a\nb"] {
            assert_eq!(local_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(None), "/");
    }
}
