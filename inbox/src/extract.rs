//! Who is calling: a bearer token (session or API key) or the web app's
//! HttpOnly session cookie. The extractor lives in the engine so that every
//! crate serving the team API authenticates the same way.

pub use parley_engine::http::{Auth, SESSION_COOKIE, token};
