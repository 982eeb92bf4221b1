//! OAuth: the client grantmux uses to reach Zoom's token endpoint, and (later)
//! the token endpoint callers see.

mod endpoint;
mod request;
mod zoom;

pub use self::endpoint::{OAuthEndpoint, VIRTUAL_ACCESS_TTL_SECS};
pub use self::request::{Credentials, Params, TokenRequest};
pub use self::zoom::{TokenResponse, ZoomTokenClient, ZoomTokenError};
