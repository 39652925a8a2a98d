//! The PE reader and section appender (a UKI's writer) on arbitrary bytes, as a hostile
//! EFI stub gives them: reading the headers and appending sections must return an error
//! or an image whose new sections are where its headers say, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resin::disk::pe::{append_sections, Headers, NewSection};

fuzz_target!(|data: &[u8]| {
    let Ok(headers) = Headers::of_image(data) else { return };
    let _ = headers.check_appendable();
    let mut out = Vec::new();
    let sections = vec![
        NewSection { name: ".osrel", length: 5, data: Box::new(&b"ID=x\n"[..]) },
        NewSection { name: ".sbat", length: 7, data: Box::new(&b"sbat,1\n"[..]) },
        NewSection { name: ".linux", length: 3, data: Box::new(&b"abc"[..]) },
    ];
    if append_sections(data, sections, &mut out).is_err() {
        return;
    }
    let written = Headers::of_image(&out).expect("an appended image reads back");
    let linux = written.section(".linux").expect("the new section is listed");
    assert_eq!(&out[linux.raw_offset as usize..][..3], b"abc");
});
