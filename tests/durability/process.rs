//! A real `grantmux serve` process on a file store, in front of an in-process simulator.

use std::path::{Path, PathBuf};

use grantmux::sim::SimHandle;

pub(crate) use crate::common::process::{Grantmux, CLIENT, SECRET};

/// Writes the config for a file store in `dir/state` pointing at `sim`.
pub(crate) fn write_config(dir: &Path, sim: &SimHandle) -> PathBuf {
    write_config_with(dir, sim, "", "")
}

/// [`write_config`] with `app` added to the app's section and `rest` after
/// the store's.
pub(crate) fn write_config_with(dir: &Path, sim: &SimHandle, rest: &str, app: &str) -> PathBuf {
    let state = dir.join("state");
    crate::common::process::write_config(
        dir,
        &sim.base_url(),
        &format!(
            r#"{app}
[store]
backend = "file"
path = "{state}"
[refresh]
backoff_min = "50ms"
backoff_max = "200ms"
{rest}"#,
            state = state.display()
        ),
    )
}
