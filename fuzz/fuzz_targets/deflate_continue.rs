//! The continuation of deflate streams (how a gzip initrd's pieces join) on arbitrary
//! bytes. As a piece: libdeflate's stream, made to go on and ended, decodes back to the
//! piece. As a stream: making it go on is an error, or gives a stream that decodes to what
//! the original decodes to (or fails where it fails); never a panic or an endless walk.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use resin::initrd::continued::continue_stream;
use resin::initrd::gzip::PieceDeflater;

/// The bytes of the final empty block that ends an initrd's stream.
const END: [u8; 2] = [0x03, 0x00];

fn inflate(stream: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(stream).read_to_end(&mut out).ok().map(|_| out)
}

fuzz_target!(|data: &[u8]| {
    let level = data.first().map_or(3, |b| u32::from(b % 10));
    let (piece, summary) = PieceDeflater::new(level).unwrap().deflate(data, true).unwrap();
    assert_eq!(summary.length, data.len() as u64);
    assert!(inflate(&[&piece[..], &END].concat()).as_deref() == Some(data), "a piece decodes back");
    let mut stream = data.to_vec();
    if continue_stream(&mut stream).is_ok() && !data.is_empty() {
        assert_eq!(inflate(&[&stream[..], &END].concat()), inflate(data), "the same bytes, or the same failure");
    }
});
