//! A POSIX ustar archive, written in memory: the export's one file, readable by
//! `tar`, Python's `tarfile` and every archive tool without anything of ours.

/// An archive being written.
#[derive(Default)]
pub struct Tar {
    bytes: Vec<u8>,
}

const BLOCK: usize = 512;

impl Tar {
    pub fn new() -> Tar {
        Tar::default()
    }

    /// Adds a file. Names are ours (ASCII ids and fixed words), at most 100 bytes.
    pub fn add(&mut self, name: &str, data: &[u8], mtime: i64) {
        assert!(name.len() <= 100 && name.is_ascii(), "tar name {name}");
        let mut header = [0u8; BLOCK];
        header[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut header[100..108], 0o644);
        octal(&mut header[108..116], 0);
        octal(&mut header[116..124], 0);
        octal(&mut header[124..136], data.len() as u64);
        octal(&mut header[136..148], mtime.max(0) as u64);
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        // The checksum is computed with its own field as spaces.
        header[148..156].copy_from_slice(b"        ");
        let sum: u64 = header.iter().map(|b| u64::from(*b)).sum();
        octal(&mut header[148..155], sum);
        header[155] = b' ';
        self.bytes.extend_from_slice(&header);
        self.bytes.extend_from_slice(data);
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.bytes.extend(std::iter::repeat_n(0, pad));
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The archive, with its end-of-archive marker (two zero blocks).
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.extend(std::iter::repeat_n(0, 2 * BLOCK));
        self.bytes
    }
}

/// `value` in octal, zero-padded, NUL-terminated, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let last = field.len() - 1;
    let digits = format!("{value:0last$o}");
    field[..last].copy_from_slice(digits.as_bytes());
    field[last] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_reads_what_we_write() {
        let mut tar = Tar::new();
        tar.add("export.json", br#"{"a":1}"#, 1_767_225_600);
        tar.add("files/01HZX3K7Q8R9S0T1V2W3X4Y5Z6", &[7u8; 1000], 0);
        let bytes = tar.finish();
        assert_eq!(bytes.len() % BLOCK, 0);
        let dir = std::env::temp_dir().join(format!("tar-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.tar");
        std::fs::write(&path, &bytes).unwrap();
        let script = "import sys,tarfile\nt=tarfile.open(sys.argv[1])\nfor m in t.getmembers(): print(m.name, m.size, len(t.extractfile(m).read()))";
        let out = std::process::Command::new("python3")
            .args(["-c", script, path.to_str().unwrap()])
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "export.json 7 7\nfiles/01HZX3K7Q8R9S0T1V2W3X4Y5Z6 1000 1000\n"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
