//! Normalising entry paths from layers: relative, `/`-separated, no `.` or empty
//! components, nothing above the root.

use anyhow::{bail, Result};

/// Normalises a tar entry path or hard-link target. `./a//b/`, `/a/b` and `a/./b` are all
/// `a/b`; `.`, `./` and `/` are the root (empty); `a/../b` is `b`; a path that climbs
/// above the root is an error.
pub fn normalise(raw: &[u8]) -> Result<Vec<u8>> {
    let mut components: Vec<&[u8]> = Vec::new();
    for component in raw.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                if components.pop().is_none() {
                    bail!("path {:?} escapes the root", String::from_utf8_lossy(raw));
                }
            }
            c => components.push(c),
        }
    }
    Ok(components.join(&b'/'))
}

/// The parent of a normalised path (the root's children have the root, empty, as parent).
pub fn parent(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => &path[..i],
        None => b"",
    }
}

/// The last component of a normalised path.
pub fn file_name(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// `parent/name`, or `name` under the root.
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        name.to_vec()
    } else {
        [parent, b"/", name].concat()
    }
}

/// Printable form for messages.
pub fn display(path: &[u8]) -> String {
    if path.is_empty() {
        "/".to_string()
    } else {
        format!("/{}", String::from_utf8_lossy(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let cases: [(&[u8], &[u8]); 9] = [
            (b"a/b", b"a/b"),
            (b"./a/b", b"a/b"),
            (b"/a//b/", b"a/b"),
            (b"a/./b", b"a/b"),
            (b".", b""),
            (b"./", b""),
            (b"/", b""),
            (b"a/../b", b"b"),
            (b"\xff\xfe/x", b"\xff\xfe/x"),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalise(raw).unwrap(), expected, "{:?}", String::from_utf8_lossy(raw));
        }
        for escaping in [&b"../etc"[..], b"a/../../etc", b"/../x", b"./.."] {
            let err = normalise(escaping).unwrap_err();
            assert!(err.to_string().contains("escapes the root"), "{err}");
        }
        assert_eq!(parent(b"a/b/c"), b"a/b");
        assert_eq!(parent(b"a"), b"");
        assert_eq!(file_name(b"a/b/c"), b"c");
        assert_eq!(join(b"", b"x"), b"x");
        assert_eq!(display(b"etc/hosts"), "/etc/hosts");
    }
}
