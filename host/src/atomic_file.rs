//! Writing a file so that readers see either the old content or the whole
//! new content, never a partial file (write to a temporary file in the same
//! directory, fsync, rename over the destination), and so that the new
//! content is durable when [`write`] returns: the directory is fsynced after
//! the rename, which is what makes the rename itself survive a power loss
//! (offsets are committed on the strength of it).

use std::io::{IoSlice, Write};
use std::path::Path;

/// Atomically replace `path` with `bytes`, creating parent directories.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_parts(path, &[bytes])
}

/// As [`write`], with the content given as `parts`, written one after the
/// other (vectored writes: the parts are never copied into one buffer).
pub fn write_parts(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    let mut slices: Vec<IoSlice> = parts.iter().map(|part| IoSlice::new(part)).collect();
    let mut slices = slices.as_mut_slice();
    // What `Write::write_all_vectored` (unstable) does. Leading empty parts
    // are dropped first: a write of empty slices only returns 0, which
    // would read as the file refusing bytes.
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut slices, written),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    file.as_file().sync_data()?;
    file.persist(path).map_err(|e| e.error)?;
    sync_directory(dir)
}

/// Make the directory's entries (a rename into it) durable. Directories
/// can only be opened for this on Unix; elsewhere the rename is left to the
/// file system.
fn sync_directory(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_content_and_creates_parents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c.txt");
        super::write(&path, b"one").unwrap();
        super::write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    /// Parts are written in order, empty ones too, and more of them than
    /// one vectored write takes (1,024 on Linux).
    #[test]
    fn writes_parts_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("parts");
        let numbers: Vec<String> = (0..3000).map(|i| format!("{i},")).collect();
        let mut parts: Vec<&[u8]> = numbers.iter().map(|n| n.as_bytes()).collect();
        parts.insert(10, b"");
        super::write_parts(&path, &parts).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), numbers.concat().as_bytes());
    }
}
