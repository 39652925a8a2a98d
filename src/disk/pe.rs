//! The few PE/COFF facts a UKI needs: reading an EFI binary's headers (machine, sections,
//! alignments), and writing a copy of it with sections appended.
//!
//! Written by hand: `object`'s PE writer builds new images from scratch and `goblin`
//! only reads, while a UKI is the stub's bytes kept as they are with new section headers
//! and data added, which takes a few dozen lines on the layout below.
//!
//! ```text
//! 0x00  "MZ" ... 0x3c: u32 offset of the PE header
//! PE    "PE\0\0", COFF header (20 bytes): machine u16, sections u16, ..., optional header size u16
//!       optional header (PE32+, magic 0x20b): +4 code size, +8 initialised data size,
//!       +32 section alignment, +36 file alignment, +56 image size, +60 headers size,
//!       +64 checksum, +108 number of data directories, +112 data directories (8 bytes each;
//!       the 5th is the certificate table)
//!       section table: 40 bytes each: name[8], virtual size, virtual address, raw size,
//!       raw offset, ..., characteristics (+36)
//! ```

use std::io::{self, Read, Write};

use anyhow::{bail, Context, Result};

pub const MACHINE_X86_64: u16 = 0x8664;
pub const MACHINE_AARCH64: u16 = 0xaa64;

const SECTION_HEADER: usize = 40;
/// Initialised data, readable.
const DATA_SECTION: u32 = 0x4000_0040;

fn u16_at(bytes: &[u8], at: usize) -> Result<u16> {
    let field = bytes.get(at..at + 2).context("the PE headers end early")?;
    Ok(u16::from_le_bytes([field[0], field[1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32> {
    let field = bytes.get(at..at + 4).context("the PE headers end early")?;
    Ok(u32::from_le_bytes([field[0], field[1], field[2], field[3]]))
}

fn put_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn align(value: u64, to: u64) -> u64 {
    value.div_ceil(to) * to
}

/// One section of an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub virtual_address: u32,
    pub virtual_size: u32,
    pub raw_offset: u32,
    pub raw_size: u32,
}

/// The headers of a PE32+ image.
#[derive(Clone, Debug)]
pub struct Headers {
    pub machine: u16,
    pub sections: Vec<Section>,
    pe: usize,
    optional: usize,
    table: usize,
    section_alignment: u32,
    file_alignment: u32,
    headers_size: u32,
    /// How many data directories the optional header has.
    directories: u32,
    /// The length of the whole file.
    length: u64,
}

/// Most sections a PE image may have (the PE/COFF specification's loader limit).
const MAX_SECTIONS: usize = 96;
/// The fixed part of a PE32+ optional header, up to its data directories.
const OPTIONAL_FIXED: usize = 112;
/// The file alignments an image may have to take new sections: the PE/COFF
/// specification's range (a power of two from 512 to 64 KiB).
const FILE_ALIGNMENTS: std::ops::RangeInclusive<u32> = 512..=(64 << 10);

impl Headers {
    /// Reads the headers of the PE32+ image whose first bytes are `head` (the whole image,
    /// or at least its headers) and whose file is `length` bytes long. Every header and
    /// every section's data must lie inside the file: a header that points elsewhere is
    /// an error naming it, never a read past the end.
    pub fn read(head: &[u8], length: u64) -> Result<Headers> {
        if head.get(..2) != Some(b"MZ") {
            bail!("no MZ header: not an EFI (PE) binary");
        }
        let pe = u32_at(head, 0x3c)? as usize;
        if head.get(pe..pe.saturating_add(4)) != Some(b"PE\0\0") {
            bail!("no PE header at offset {pe:#x} (an MZ stub without a PE image)");
        }
        let machine = u16_at(head, pe + 4)?;
        let count = usize::from(u16_at(head, pe + 6)?);
        let optional = pe + 24;
        let optional_size = usize::from(u16_at(head, pe + 20)?);
        if u16_at(head, optional)? != 0x20b {
            bail!("not a PE32+ image (64-bit EFI binaries are)");
        }
        let directories = u32_at(head, optional + 108)?;
        if optional_size < OPTIONAL_FIXED || (optional_size - OPTIONAL_FIXED) / 8 < directories.min(16) as usize {
            bail!("the PE optional header ({optional_size} bytes) cannot hold its {directories} data directories");
        }
        if count > MAX_SECTIONS {
            bail!("the PE header claims {count} sections (at most {MAX_SECTIONS})");
        }
        let table = optional + optional_size;
        let table_end = table + count * SECTION_HEADER;
        if table_end as u64 > length || table_end > head.len() {
            bail!(
                "the PE section table ({count} headers at {table:#x}) ends at {table_end:#x}, beyond the {} of the file",
                if table_end as u64 > length { format!("{length} bytes") } else { "headers".to_string() }
            );
        }
        let mut sections = Vec::with_capacity(count);
        for index in 0..count {
            let at = table + index * SECTION_HEADER;
            let name = String::from_utf8_lossy(&head[at..at + 8]).trim_end_matches('\0').to_string();
            let section = Section {
                name,
                virtual_size: u32_at(head, at + 8)?,
                virtual_address: u32_at(head, at + 12)?,
                raw_size: u32_at(head, at + 16)?,
                raw_offset: u32_at(head, at + 20)?,
            };
            let raw_end = u64::from(section.raw_offset) + u64::from(section.raw_size);
            if section.raw_size > 0 && raw_end > length {
                bail!(
                    "PE section {:?} claims bytes {:#x}..{raw_end:#x}, beyond the end of the file ({length} bytes)",
                    section.name,
                    section.raw_offset
                );
            }
            sections.push(section);
        }
        let headers = Headers {
            machine,
            sections,
            pe,
            optional,
            table,
            section_alignment: u32_at(head, optional + 32)?,
            file_alignment: u32_at(head, optional + 36)?,
            headers_size: u32_at(head, optional + 60)?,
            directories,
            length,
        };
        if headers.section_alignment == 0 || headers.file_alignment == 0 {
            bail!("a PE image with a zero alignment");
        }
        Ok(headers)
    }

    /// Reads the headers of the whole image `image`.
    pub fn of_image(image: &[u8]) -> Result<Headers> {
        Headers::read(image, image.len() as u64)
    }

    /// Checks that sections can be appended to the image as [`append_sections`] does: its
    /// alignments are ones the PE/COFF specification allows (so padding stays small),
    /// and its headers (`SizeOfHeaders`, the section table) lie before every section's data.
    pub fn check_appendable(&self) -> Result<()> {
        let (file, section) = (self.file_alignment, self.section_alignment);
        if !file.is_power_of_two() || !FILE_ALIGNMENTS.contains(&file) {
            bail!("the PE FileAlignment {file:#x} is not a power of two from 512 to 64 KiB");
        }
        if !section.is_power_of_two() || section < file {
            bail!("the PE SectionAlignment {section:#x} is not a power of two at least the FileAlignment ({file:#x})");
        }
        let headers_size = u64::from(self.headers_size);
        if headers_size > self.length {
            bail!("the PE SizeOfHeaders {headers_size:#x} is beyond the end of the file ({} bytes)", self.length);
        }
        let table_end = (self.table + self.sections.len() * SECTION_HEADER) as u64;
        if table_end > headers_size {
            bail!(
                "the PE section table ({} headers) ends at {table_end:#x}, beyond SizeOfHeaders ({headers_size:#x})",
                self.sections.len()
            );
        }
        if let Some(section) = self.sections.iter().find(|s| s.raw_size > 0 && u64::from(s.raw_offset) < headers_size) {
            bail!(
                "PE section {:?} starts at {:#x}, inside the headers (SizeOfHeaders {headers_size:#x})",
                section.name,
                section.raw_offset
            );
        }
        Ok(())
    }

    /// Where the image's checksum is (left out of an Authenticode hash).
    pub fn checksum_offset(&self) -> usize {
        self.optional + 64
    }

    /// Where the certificate table's data directory entry is (the fifth), if the image has one.
    pub fn certificate_entry_offset(&self) -> Option<usize> {
        (self.directories > 4).then_some(self.optional + OPTIONAL_FIXED + 4 * 8)
    }

    /// `SizeOfHeaders`.
    pub fn headers_size(&self) -> u64 {
        u64::from(self.headers_size)
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Where the section table ends, and how many more headers fit before the first
    /// section's data.
    fn room(&self) -> usize {
        let end = self.table + self.sections.len() * SECTION_HEADER;
        let first_data =
            self.sections.iter().filter(|s| s.raw_size > 0).map(|s| s.raw_offset as usize).min().unwrap_or(usize::MAX);
        let limit = first_data.min(self.headers_size as usize);
        limit.saturating_sub(end) / SECTION_HEADER
    }
}

/// The name of the machine type, for messages.
pub fn machine_name(machine: u16) -> String {
    match machine {
        MACHINE_X86_64 => "x86_64".into(),
        MACHINE_AARCH64 => "aarch64".into(),
        other => format!("machine {other:#06x}"),
    }
}

/// A section to append: its name and its data (`length` bytes from `data`).
pub struct NewSection<'a> {
    pub name: &'static str,
    pub length: u64,
    pub data: Box<dyn Read + 'a>,
}

/// Writes `image` with `sections` appended: new section headers after the existing ones,
/// each section's data at the end, aligned; the image size, the initialised data size and
/// the checksum (0) updated, and any certificate table dropped (appending invalidates a
/// signature). A new section named like one of the image's replaces it: the old header
/// leaves the table (the following ones move up, so addresses still ascend) and its data
/// stays in the file, unreferenced. Data streams from the readers.
pub fn append_sections(image: &[u8], sections: Vec<NewSection<'_>>, out: &mut dyn Write) -> Result<()> {
    let headers = Headers::of_image(image)?;
    headers.check_appendable()?;
    let kept: Vec<usize> =
        (0..headers.sections.len()).filter(|&i| !sections.iter().any(|s| s.name == headers.sections[i].name)).collect();
    let growth = (kept.len() + sections.len()).saturating_sub(headers.sections.len());
    if headers.room() < growth {
        bail!(
            "the EFI stub has room for {} more section headers, not {growth} (its headers end at its first section)",
            headers.room(),
        );
    }
    let mut head = image.to_vec();
    let (section_alignment, file_alignment) = (u64::from(headers.section_alignment), u64::from(headers.file_alignment));
    let mut virtual_end = headers
        .sections
        .iter()
        .map(|s| u64::from(s.virtual_address) + u64::from(s.virtual_size.max(s.raw_size)))
        .max()
        .unwrap_or(u64::from(headers.headers_size));
    // The kept headers, in their order, then the new ones.
    let mut table = Vec::with_capacity((kept.len() + sections.len()) * SECTION_HEADER);
    for index in &kept {
        let at = headers.table + index * SECTION_HEADER;
        table.extend_from_slice(&image[at..at + SECTION_HEADER]);
    }
    // The data of new sections goes after everything in the image.
    let mut file_end = align(image.len() as u64, file_alignment);
    let mut added_data: u64 = 0;
    let mut placed = Vec::with_capacity(sections.len());
    for section in &sections {
        let virtual_address = align(virtual_end, section_alignment);
        let raw_size = align(section.length, file_alignment);
        let field = |value: u64, what: &str| {
            u32::try_from(value).with_context(|| format!("section {} {what} is beyond 4 GiB", section.name))
        };
        let mut header = [0u8; SECTION_HEADER];
        header[..section.name.len()].copy_from_slice(section.name.as_bytes());
        put_u32(&mut header, 8, field(section.length, "size")?);
        put_u32(&mut header, 12, field(virtual_address, "address")?);
        put_u32(&mut header, 16, field(raw_size, "size")?);
        put_u32(&mut header, 20, field(file_end, "offset")?);
        put_u32(&mut header, 36, DATA_SECTION);
        table.extend_from_slice(&header);
        placed.push(file_end);
        virtual_end = virtual_address + section.length;
        file_end += raw_size;
        added_data += raw_size;
    }
    let old_end = headers.table + headers.sections.len() * SECTION_HEADER;
    head[headers.table..old_end.max(headers.table + table.len())].fill(0);
    head[headers.table..headers.table + table.len()].copy_from_slice(&table);
    let count = u16::try_from(kept.len() + sections.len()).context("too many PE sections")?;
    put_u16(&mut head, headers.pe + 6, count);
    let optional = headers.optional;
    let initialised = u64::from(u32_at(&head, optional + 8)?) + added_data;
    put_u32(&mut head, optional + 8, u32::try_from(initialised).context("initialised data beyond 4 GiB")?);
    let image_size = align(virtual_end, section_alignment);
    put_u32(&mut head, optional + 56, u32::try_from(image_size).context("an image beyond 4 GiB")?);
    put_u32(&mut head, optional + 64, 0);
    if let Some(entry) = headers.certificate_entry_offset() {
        head[entry..entry + 8].fill(0);
    }

    out.write_all(&head)?;
    let mut written = head.len() as u64;
    for (section, offset) in sections.into_iter().zip(placed) {
        out.write_all(&vec![0u8; usize::try_from(offset - written).expect("less than an alignment")])?;
        let copied = io::copy(&mut section.data.take(section.length), out)?;
        if copied != section.length {
            bail!("section {}: expected {} bytes, got {copied}", section.name, section.length);
        }
        written = offset + copied;
    }
    out.write_all(&vec![0u8; usize::try_from(file_end - written).expect("less than an alignment")])?;
    Ok(())
}

/// A minimal PE32+ image for `machine`: headers of 0x400 bytes, one `.text` section of
/// 0x200 bytes. For tests, fuzz seeds and benchmarks.
pub fn tiny_image(machine: u16) -> Vec<u8> {
    let mut image = vec![0u8; 0x600];
    image[..2].copy_from_slice(b"MZ");
    put_u32(&mut image, 0x3c, 0x80);
    image[0x80..0x84].copy_from_slice(b"PE\0\0");
    put_u16(&mut image, 0x84, machine);
    put_u16(&mut image, 0x86, 1);
    put_u16(&mut image, 0x94, 240);
    let optional = 0x98;
    put_u16(&mut image, optional, 0x20b);
    put_u32(&mut image, optional + 32, 0x1000);
    put_u32(&mut image, optional + 36, 0x200);
    put_u32(&mut image, optional + 56, 0x2000);
    put_u32(&mut image, optional + 60, 0x400);
    put_u32(&mut image, optional + 108, 16);
    let table = optional + 240;
    image[table..table + 5].copy_from_slice(b".text");
    put_u32(&mut image, table + 8, 0x10);
    put_u32(&mut image, table + 12, 0x1000);
    put_u32(&mut image, table + 16, 0x200);
    put_u32(&mut image, table + 20, 0x400);
    image[0x400..0x410].copy_from_slice(b"stub code here!!");
    image
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn appended_sections_are_where_their_headers_say() {
        let image = tiny_image(MACHINE_X86_64);
        let mut out = Vec::new();
        let linux = vec![7u8; 3000];
        let sections = vec![
            NewSection { name: ".osrel", length: 5, data: Box::new(&b"ID=x\n"[..]) },
            NewSection { name: ".linux", length: linux.len() as u64, data: Box::new(&linux[..]) },
        ];
        append_sections(&image, sections, &mut out).unwrap();
        let headers = Headers::of_image(&out).unwrap();
        assert_eq!(headers.machine, MACHINE_X86_64);
        let names: Vec<&str> = headers.sections.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, [".text", ".osrel", ".linux"]);
        let data = |s: &Section| &out[s.raw_offset as usize..][..s.virtual_size as usize];
        assert_eq!(data(headers.section(".osrel").unwrap()), b"ID=x\n");
        assert_eq!(data(headers.section(".linux").unwrap()), &linux[..]);
        assert_eq!(data(headers.section(".text").unwrap())[..4], *b"stub", "the stub's own sections are kept");
        for section in &headers.sections {
            assert_eq!(section.virtual_address % 0x1000, 0);
            assert_eq!(section.raw_offset % 0x200, 0);
        }
        let linux_section = headers.section(".linux").unwrap();
        let image_size = u32_at(&out, 0x98 + 56).unwrap();
        assert!(image_size >= linux_section.virtual_address + linux_section.virtual_size);
        assert_eq!(out.len() % 0x200, 0);
    }

    #[test]
    fn a_section_named_like_the_images_replaces_it() {
        let mut image = tiny_image(MACHINE_X86_64);
        image[0x98 + 240..0x98 + 245].copy_from_slice(b".sbat");
        let mut out = Vec::new();
        let sections = vec![
            NewSection { name: ".osrel", length: 5, data: Box::new(&b"ID=x\n"[..]) },
            NewSection { name: ".sbat", length: 7, data: Box::new(&b"sbat,1\n"[..]) },
        ];
        append_sections(&image, sections, &mut out).unwrap();
        let headers = Headers::of_image(&out).unwrap();
        let names: Vec<&str> = headers.sections.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, [".osrel", ".sbat"], "one .sbat, the new one, last");
        let sbat = headers.section(".sbat").unwrap();
        assert_eq!(&out[sbat.raw_offset as usize..][..7], b"sbat,1\n");
        assert!(headers.sections.windows(2).all(|w| w[0].virtual_address < w[1].virtual_address));
        assert!(sbat.virtual_address >= 0x2000, "above the replaced section's addresses");
    }

    /// Appends two sections to `image`, as a UKI does.
    fn append_two(image: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let sections = vec![
            NewSection { name: ".osrel", length: 5, data: Box::new(&b"ID=x\n"[..]) },
            NewSection { name: ".linux", length: 3, data: Box::new(&b"abc"[..]) },
        ];
        append_sections(image, sections, &mut out)?;
        Ok(out)
    }

    #[test]
    fn hostile_headers_are_errors_naming_the_header() {
        let image = tiny_image(MACHINE_X86_64);
        let error = |image: &[u8]| format!("{:#}", append_two(image).unwrap_err());
        // Cut short: the .text data, then the section table, then the PE header beyond the end.
        assert!(
            error(&image[..0x500]).contains("PE section \".text\" claims bytes 0x400..0x600"),
            "{}",
            error(&image[..0x500])
        );
        assert!(
            error(&image[..0x1a0]).contains("ends at 0x1b0, beyond the 416 bytes of the file"),
            "{}",
            error(&image[..0x1a0])
        );
        assert!(error(&image[..0x100]).contains("the PE headers end early"), "{}", error(&image[..0x100]));
        assert!(error(&image[..0x82]).contains("no PE header"));
        // More section headers than SizeOfHeaders holds.
        let mut many = image.clone();
        many[0x400..0x600].fill(0);
        put_u16(&mut many, 0x86, 20);
        assert!(error(&many).contains("(20 headers) ends at 0x4a8, beyond SizeOfHeaders (0x400)"), "{}", error(&many));
        put_u16(&mut many, 0x86, 500);
        assert!(error(&many).contains("claims 500 sections"), "{}", error(&many));
        // Alignments outside what the specification allows.
        for (alignment, what) in [
            (16 << 20, "FileAlignment 0x1000000"),
            (1 << 31, "FileAlignment 0x80000000"),
            (0x300, "FileAlignment 0x300"),
            (256, "FileAlignment 0x100"),
        ] {
            let mut odd = image.clone();
            put_u32(&mut odd, 0x98 + 36, alignment);
            assert!(error(&odd).contains(what), "{alignment:#x}: {}", error(&odd));
        }
        let mut small_sections = image.clone();
        put_u32(&mut small_sections, 0x98 + 32, 0x100);
        assert!(error(&small_sections).contains("SectionAlignment 0x100"), "{}", error(&small_sections));
        // SizeOfHeaders beyond the file, and an optional header too small for its directories.
        let mut big_headers = image.clone();
        put_u32(&mut big_headers, 0x98 + 60, 0x10000);
        assert!(error(&big_headers).contains("SizeOfHeaders 0x10000 is beyond the end"), "{}", error(&big_headers));
        let mut short_optional = image.clone();
        put_u16(&mut short_optional, 0x94, 120);
        assert!(error(&short_optional).contains("cannot hold its 16 data directories"), "{}", error(&short_optional));
    }

    #[test]
    fn no_header_value_panics_the_writer() {
        // Every prefix, and every header byte set to a few telling values: an error or a
        // valid image, never a panic.
        let image = tiny_image(MACHINE_X86_64);
        for length in 0..image.len() {
            let _ = append_two(&image[..length]);
        }
        for at in 0..0x200 {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut changed = image.clone();
                changed[at] = value;
                if let Ok(out) = append_two(&changed) {
                    let headers = Headers::of_image(&out).unwrap();
                    assert!(headers.section(".linux").is_some());
                }
            }
        }
    }

    #[test]
    fn what_is_not_an_efi_binary_is_refused() {
        assert!(Headers::of_image(b"\x7fELF....").unwrap_err().to_string().contains("no MZ header"));
        let mut image = tiny_image(MACHINE_X86_64);
        image[0x80] = b'X';
        assert!(Headers::of_image(&image).unwrap_err().to_string().contains("no PE header"));
        // No room: a header area full of section headers.
        let mut full = tiny_image(MACHINE_X86_64);
        put_u32(&mut full, 0x98 + 60, 0x1d0);
        let error = append_sections(
            &full,
            vec![NewSection { name: ".a", length: 0, data: Box::new(io::empty()) }],
            &mut Vec::new(),
        );
        assert!(error.unwrap_err().to_string().contains("room for 0 more section headers"));
    }
}
