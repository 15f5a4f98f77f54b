//! What the xtask reads from ELF executables: whether one needs a dynamic loader (an image
//! without a libc cannot run it) and which processor it is for (an image must match its
//! engine). Only 64-bit little-endian files are understood, which covers x86_64 and aarch64.

/// Whether `bytes` are an ELF executable that needs no dynamic loader (no `PT_INTERP` program
/// header). Only 64-bit little-endian ELF is understood, which covers the hosts we build on.
pub(crate) fn is_static(bytes: &[u8]) -> Result<bool, String> {
    const PT_INTERP: u32 = 3;
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err("not an ELF file".into());
    }
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or("truncated ELF header")
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .ok_or("truncated ELF header")
    };
    let table = usize::try_from(u64_at(0x20)?).map_err(|_| "program header offset too large")?;
    let entry_size = usize::from(u16_at(0x36)?);
    let count = usize::from(u16_at(0x38)?);
    for index in 0..count {
        let at = table + index * entry_size;
        let kind = bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or("truncated program header table")?;
        if kind == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The ELF machine of an executable (`e_machine`), for 64-bit little-endian files.
pub(crate) fn machine(bytes: &[u8]) -> Option<u16> {
    if bytes.get(..4)? != b"\x7fELF" || bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return None;
    }
    let machine = bytes.get(0x12..0x14)?;
    Some(u16::from_le_bytes([machine[0], machine[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal 64-bit little-endian ELF header with program headers of the given types.
    fn elf_with_program_headers(types: &[u32]) -> Vec<u8> {
        let mut bytes = vec![0_u8; 64 + 56 * types.len()];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[0x20..0x28].copy_from_slice(&64_u64.to_le_bytes());
        bytes[0x36..0x38].copy_from_slice(&56_u16.to_le_bytes());
        bytes[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for (index, kind) in types.iter().enumerate() {
            let at = 64 + 56 * index;
            bytes[at..at + 4].copy_from_slice(&kind.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn elf_files_are_told_static_or_dynamic_by_their_interpreter_header() {
        let cases: &[(&str, Vec<u8>, Result<bool, ()>)] = &[
            (
                "load segments only",
                elf_with_program_headers(&[1, 1]),
                Ok(true),
            ),
            (
                "no program headers",
                elf_with_program_headers(&[]),
                Ok(true),
            ),
            (
                "with PT_INTERP",
                elf_with_program_headers(&[6, 3, 1]),
                Ok(false),
            ),
            ("a shell script", b"#!/bin/sh\necho hi\n".to_vec(), Err(())),
            ("empty", Vec::new(), Err(())),
            (
                "header cut short",
                elf_with_program_headers(&[1])[..40].to_vec(),
                Err(()),
            ),
            (
                "program table cut short",
                elf_with_program_headers(&[1, 3])[..100].to_vec(),
                Err(()),
            ),
        ];
        for (name, bytes, expected) in cases {
            assert_eq!(&is_static(bytes).map_err(|_| ()), expected, "{name}");
        }
    }

    #[test]
    fn a_32_bit_elf_is_refused_rather_than_misread() {
        let mut bytes = elf_with_program_headers(&[1]);
        bytes[4] = 1;
        assert!(is_static(&bytes).is_err());
    }

    #[test]
    fn the_hosts_own_programs_are_classified() {
        // The test binary itself is dynamically linked on the glibc hosts we run on.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(is_static(&me), Ok(false));
    }

    #[test]
    fn elf_machines_are_read_from_the_header_and_anything_else_is_none() {
        let this = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(
            machine(&this),
            Some(
                crate::platform::Platform::of_host_cpu()
                    .unwrap()
                    .elf_machine()
            )
        );
        assert_eq!(machine(b"\x7fELF"), None);
        assert_eq!(machine(b"#!/bin/sh\n"), None);
        assert_eq!(machine(&[]), None);
    }
}
