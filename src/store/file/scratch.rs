//! A redb storage backend that reads a file but keeps every write in memory.
//!
//! Opening a redb database writes to it even before any transaction (it marks the
//! header "open", and repairs after an unclean shutdown). To check the store key
//! without touching an existing folder, the file store first opens the database
//! through this backend: the file is opened read-only, and whatever redb writes
//! lands in an overlay that is thrown away with the backend.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Mutex, MutexGuard};

use redb::StorageBackend;

/// Copy-on-write view of a read-only file.
#[derive(Debug)]
pub(super) struct ScratchBackend {
    file: File,
    /// Behind a std `Mutex`: redb calls the backend from one thread at a time
    /// during open, and every critical section is a memory copy with no `.await`.
    state: Mutex<Overlay>,
}

#[derive(Debug)]
struct Overlay {
    /// The length redb sees.
    len: u64,
    /// Bytes of the file below this offset are visible; above it reads see zeros
    /// (the file was "truncated" and grown again).
    file_visible: u64,
    /// Writes in the order they were made; later ones win.
    writes: Vec<(u64, Vec<u8>)>,
}

// === impl ScratchBackend ===

impl ScratchBackend {
    pub(super) fn new(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        let overlay = Overlay {
            len,
            file_visible: len,
            writes: Vec::new(),
        };
        Ok(Self {
            file,
            state: Mutex::new(overlay),
        })
    }

    fn state(&self) -> MutexGuard<'_, Overlay> {
        // A panic inside a copy leaves the overlay usable; it is scratch data anyway.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl StorageBackend for ScratchBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(self.state().len)
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let state = self.state();
        let end = offset
            .checked_add(len as u64)
            .filter(|&end| end <= state.len)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let mut buf = vec![0; len];
        let from_file = state.file_visible.clamp(offset, end) - offset;
        self.file
            .read_exact_at(&mut buf[..from_file as usize], offset)?;
        for (at, data) in &state.writes {
            overlay(&mut buf, offset, *at, data);
        }
        Ok(buf)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.state();
        if len < state.len {
            state.file_visible = state.file_visible.min(len);
            state.writes.retain_mut(|(at, data)| {
                data.truncate(len.saturating_sub(*at) as usize);
                !data.is_empty()
            });
        }
        state.len = len;
        Ok(())
    }

    fn sync_data(&self, _eventual: bool) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        let end = offset + data.len() as u64;
        state.len = state.len.max(end);
        state.writes.push((offset, data.to_vec()));
        Ok(())
    }
}

/// Copies the part of the write `(at, data)` that falls inside `buf` (which starts at `offset`).
fn overlay(buf: &mut [u8], offset: u64, at: u64, data: &[u8]) {
    let start = at.max(offset);
    let end = (at + data.len() as u64).min(offset + buf.len() as u64);
    if start < end {
        let dst = (start - offset) as usize..(end - offset) as usize;
        let src = (start - at) as usize..(end - at) as usize;
        buf[dst].copy_from_slice(&data[src]);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn reads_through_writes_without_touching_the_file() {
        let mut file = tempfile::tempfile().expect("tempfile");
        file.write_all(b"0123456789").expect("write");
        let backend = ScratchBackend::new(file.try_clone().expect("clone")).expect("backend");
        backend.write(2, b"ab").expect("overlay");
        backend.write(8, b"XYZ").expect("overlay");
        assert_eq!(backend.len().expect("len"), 11);
        assert_eq!(backend.read(0, 11).expect("read"), b"01ab4567XYZ");
        assert!(backend.read(5, 7).is_err());

        backend.set_len(4).expect("shrink");
        backend.set_len(6).expect("grow");
        assert_eq!(backend.read(0, 6).expect("read"), b"01ab\0\0");

        let mut on_disk = vec![0; 10];
        file.read_exact_at(&mut on_disk, 0).expect("read file");
        assert_eq!(on_disk, b"0123456789");
    }
}
