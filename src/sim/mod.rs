//! The Zoom simulator. TODO(sim helper).

pub mod cli;
