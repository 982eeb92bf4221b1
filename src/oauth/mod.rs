//! OAuth: the client grantmux uses to reach Zoom's token endpoint, and (later)
//! the token endpoint callers see.

mod zoom;

pub use self::zoom::{TokenResponse, ZoomTokenClient, ZoomTokenError};
