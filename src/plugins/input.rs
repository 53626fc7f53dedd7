//! Reading the files a plugin is made of (the plugin file itself and every `table_file` it names) as
//! the untrusted input they are. A read here never blocks and never leaves the plugins directory:
//!
//! - the path is resolved (every symlink, `..` and `.`) and must still lie inside the resolved
//!   plugins directory, compared component by component; a symlink, or a symlinked subdirectory,
//!   pointing out is refused, one that stays inside is fine;
//! - only a regular file is read: the resolved path is checked before it is opened, then opened
//!   with `O_NONBLOCK | O_NOFOLLOW` and checked again on the open descriptor, so a FIFO, socket,
//!   device or directory (even one swapped in between the two checks) is refused, never waited on;
//! - at most `cap + 1` bytes are read, whatever the file claims its size is.
//!
//! Errors say what was refused and why, lowercase, for the caller to prefix with the file or the
//! JSON Pointer that named it.

use std::fmt;
use std::fs::File;

use crate::regular::not_regular;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a plugin input was not read.
#[derive(Debug)]
pub enum ReadError {
    /// The plugins directory itself cannot be resolved.
    Dir(std::io::Error),
    /// The file cannot be resolved, opened or read (missing, permissions, I/O).
    Io(std::io::Error),
    /// The path resolves outside the plugins directory.
    Outside { resolved: PathBuf, dir: PathBuf },
    /// Not a regular file; says what it is instead.
    NotRegular(&'static str),
    /// Longer than the cap, in bytes.
    TooLarge(u64),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Dir(e) => write!(f, "cannot resolve the plugins directory: {e}"),
            ReadError::Io(e) => write!(f, "cannot read: {e}"),
            ReadError::Outside { resolved, dir } => write!(
                f,
                "resolves to {}, outside the plugins directory {}",
                resolved.display(),
                dir.display()
            ),
            ReadError::NotRegular(what) => write!(f, "is {what}, not a regular file"),
            ReadError::TooLarge(cap) => write!(f, "file is over the limit of {cap} bytes"),
        }
    }
}

/// Resolves `path` (a path inside `dir`, e.g. `dir.join(name)`) and checks that it stays inside the
/// resolved `dir`. Returns the resolved path, which has no symlinks left.
pub fn confine(dir: &Path, path: &Path) -> Result<PathBuf, ReadError> {
    let root = dir.canonicalize().map_err(ReadError::Dir)?;
    let resolved = path.canonicalize().map_err(ReadError::Io)?;
    // `starts_with` compares whole components: `/p/plugins-evil` is not inside `/p/plugins`
    if resolved.starts_with(&root) {
        Ok(resolved)
    } else {
        Err(ReadError::Outside {
            resolved,
            dir: root,
        })
    }
}

/// Reads the regular file at `path` (inside `dir`), at most `cap` bytes, without blocking and
/// without leaving `dir`. See the module documentation for every check.
pub fn read(dir: &Path, path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let resolved = confine(dir, path)?;
    // stat first, so a FIFO or a device is not even opened
    let meta = std::fs::metadata(&resolved).map_err(ReadError::Io)?;
    if let Some(what) = not_regular(&meta) {
        return Err(ReadError::NotRegular(what));
    }
    // O_NONBLOCK: should a FIFO be swapped in after the stat, opening it does not wait for a
    // writer (and the fstat below refuses it). O_NOFOLLOW: the resolved path has no symlink left,
    // so one appearing now is a swap, refused.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(&resolved)
        .map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if let Some(what) = not_regular(&meta) {
        return Err(ReadError::NotRegular(what));
    }
    let mut bytes = Vec::new();
    // one byte past the cap tells "at the cap" from "over it" without trusting the size
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge(cap));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_inside_and_refuses_the_rest() {
        let base = tempfile::tempdir().expect("tempdir");
        let dir = base.path().join("plugins");
        std::fs::create_dir_all(dir.join("tables")).expect("mkdir");
        std::fs::write(dir.join("tables/t.json"), "{}").expect("write");
        std::fs::write(base.path().join("secret.json"), "{}").expect("write");
        std::os::unix::fs::symlink("tables/t.json", dir.join("inside.json")).expect("symlink");
        assert_eq!(read(&dir, &dir.join("inside.json"), 10).expect("ok"), b"{}");
        assert_eq!(
            read(&dir, &dir.join("tables/../tables/t.json"), 2).expect("ok"),
            b"{}"
        );
        assert!(matches!(
            read(&dir, &dir.join("tables/t.json"), 1),
            Err(ReadError::TooLarge(1))
        ));
        assert!(matches!(
            read(&dir, &dir.join("../secret.json"), 10),
            Err(ReadError::Outside { .. })
        ));
        assert!(matches!(
            read(&dir, &dir.join("tables"), 10),
            Err(ReadError::NotRegular("a directory"))
        ));
        // a sibling whose name starts with the directory's name is still outside
        std::fs::create_dir(base.path().join("plugins-evil")).expect("mkdir");
        std::fs::write(base.path().join("plugins-evil/x.json"), "{}").expect("write");
        assert!(matches!(
            read(&dir, &dir.join("../plugins-evil/x.json"), 10),
            Err(ReadError::Outside { .. })
        ));
    }
}
