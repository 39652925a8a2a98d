//! Authenticode signatures of PE images, what UEFI Secure Boot checks, as `sbsign` and
//! `ukify` write them.
//!
//! The **image hash** is SHA-256 over the file without the parts a signature changes, in
//! the order the PE/COFF specification gives (and EDK2's firmware and `sbverify` follow):
//!
//! ```text
//! headers up to the checksum | after it, up to the certificate table's directory entry |
//! after that entry, up to SizeOfHeaders | each section's raw data, by file offset |
//! the bytes from offset (SizeOfHeaders + the sections' raw sizes) to the end of the
//! file, less the certificate table
//! ```
//!
//! The **signature** is a PKCS#7 SignedData (RFC 2315, as CMS types) whose content is
//! Microsoft's `SpcIndirectDataContent`: the image hash, and `SpcPeImageData` as every
//! signer writes it. One signer, named by issuer and serial number, signs three attributes
//! (content type, an empty `SpcSpOpusInfo`, the message digest: SHA-256 of the content's
//! DER value, without its tag and length). The certificate travels with it.
//!
//! The signature goes at the end of the file in a `WIN_CERTIFICATE` (length, revision
//! 0x0200, type 0x0002 = PKCS#7), padded to 8 bytes, which the certificate table's
//! directory entry points at. The hash leaves out both, so signing changes nothing else.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::FileExt as _;

use anyhow::{bail, Context, Result};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use sha2::{Digest as _, Sha256};
use x509_cert::attr::Attribute;
use x509_cert::der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use x509_cert::der::{Any, Decode as _, Encode as _};
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::pe::Headers;
use super::signing::{Algorithm, Signer};

const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const SPC_INDIRECT_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.4");
const SPC_SP_OPUS_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.12");
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// `SpcAttributeTypeAndOptionalValue` for PE images: the type `SPC_PE_IMAGE_DATAOBJ`
/// (1.3.6.1.4.1.311.2.1.15) and `SpcPeImageData` with no flags and the obsolete file link
/// `<<<Obsolete>>>` (a BMPString), byte for byte what sbsign and osslsigncode write.
const PE_IMAGE_DATA: &[u8] = &[
    0x30, 0x33, // SEQUENCE
    0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x0f, // OID
    0x30, 0x25, // SpcPeImageData
    0x03, 0x01, 0x00, // flags: an empty BIT STRING
    0xa0, 0x20, // [0] file
    0xa2, 0x1e, // [2] SpcString
    0x80, 0x1c, // [0] IMPLICIT BMPString, 14 characters
    0x00, 0x3c, 0x00, 0x3c, 0x00, 0x3c, 0x00, 0x4f, 0x00, 0x62, 0x00, 0x73, 0x00, 0x6f, 0x00, 0x6c, 0x00, 0x65, 0x00,
    0x74, 0x00, 0x65, 0x00, 0x3e, 0x00, 0x3e, 0x00, 0x3e,
];

/// A `WIN_CERTIFICATE` holding PKCS#7 SignedData.
const WIN_CERT_REVISION_2_0: u16 = 0x0200;
const WIN_CERT_TYPE_PKCS_SIGNED_DATA: u16 = 0x0002;

/// DER of `content` under a one-byte `tag`.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let length = content.len();
    if length < 0x80 {
        out.push(u8::try_from(length).expect("below 128"));
    } else {
        let bytes: Vec<u8> = length.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | u8::try_from(bytes.len()).expect("at most 8 length bytes"));
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// The Authenticode hash of the PE image in `file` (`length` bytes), whose certificate
/// table (if any) is `certificate_size` bytes at its end.
pub fn image_digest(file: &File, headers: &Headers, length: u64, certificate_size: u64) -> Result<[u8; 32]> {
    let entry = headers.certificate_entry_offset().context("the image has no certificate table entry to sign")?;
    let checksum = headers.checksum_offset() as u64;
    let headers_size = headers.headers_size();
    let entry = entry as u64;
    if !(checksum + 4 <= entry && entry + 8 <= headers_size && headers_size <= length) {
        bail!("the PE headers are not laid out as a signed image's must be");
    }
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut hash = |start: u64, end: u64| -> Result<()> {
        let mut at = start;
        while at < end {
            let n = usize::try_from((end - at).min(buffer.len() as u64)).expect("at most 1 MiB");
            file.read_exact_at(&mut buffer[..n], at).context("reading the image to hash it")?;
            hasher.update(&buffer[..n]);
            at += n as u64;
        }
        Ok(())
    };
    hash(0, checksum)?;
    hash(checksum + 4, entry)?;
    hash(entry + 8, headers_size)?;
    let mut sections: Vec<_> = headers.sections.iter().filter(|s| s.raw_size > 0).collect();
    sections.sort_by_key(|s| s.raw_offset);
    let mut hashed = headers_size;
    for section in sections {
        let start = u64::from(section.raw_offset);
        hash(start, start + u64::from(section.raw_size))?;
        hashed += u64::from(section.raw_size);
    }
    if length > hashed + certificate_size {
        hash(hashed, length - certificate_size)?;
    }
    Ok(hasher.finalize().into())
}

/// The PKCS#7 SignedData (DER) of an image whose Authenticode hash is `digest`.
pub fn signed_data(digest: &[u8; 32], signer: &Signer) -> Result<Vec<u8>> {
    let sha256 = AlgorithmIdentifierOwned { oid: SHA256, parameters: Some(Any::null()) };
    // SpcIndirectDataContent: the PE image data, then DigestInfo { sha256, digest }.
    let algorithm = tlv(0x30, &[&tlv(0x06, SHA256.as_bytes())[..], &[0x05, 0x00]].concat());
    let digest_info = tlv(0x30, &[algorithm, tlv(0x04, digest)].concat());
    let content = [PE_IMAGE_DATA, &digest_info].concat();
    let indirect = tlv(0x30, &content);
    let message_digest: [u8; 32] = Sha256::digest(&content).into();

    let attribute = |oid: ObjectIdentifier, value: Any| -> Result<Attribute> {
        Ok(Attribute { oid, values: SetOfVec::try_from(vec![value])? })
    };
    let signed_attributes = SetOfVec::try_from(vec![
        attribute(CONTENT_TYPE, Any::encode_from(&SPC_INDIRECT_DATA)?)?,
        attribute(SPC_SP_OPUS_INFO, Any::from_der(&[0x30, 0x00])?)?,
        attribute(MESSAGE_DIGEST, Any::encode_from(&OctetString::new(message_digest.to_vec())?)?)?,
    ])?;
    // What is signed is the attributes' DER as a SET OF (tag 0x31), not as the [0] they
    // are written under.
    let to_sign: [u8; 32] = Sha256::digest(signed_attributes.to_der()?).into();
    let signature = signer.sign(&to_sign).context("signing the UKI")?;

    let tbs = signer.certificate().tbs_certificate();
    let signature_algorithm = match signer.algorithm() {
        Algorithm::Rsa => AlgorithmIdentifierOwned { oid: RSA_ENCRYPTION, parameters: Some(Any::null()) },
        Algorithm::EcdsaP256 => AlgorithmIdentifierOwned { oid: ECDSA_WITH_SHA256, parameters: None },
    };
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        }),
        digest_alg: sha256.clone(),
        signed_attrs: Some(signed_attributes),
        signature_algorithm,
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: SPC_INDIRECT_DATA,
            econtent: Some(Any::from_der(&indirect)?),
        },
        certificates: Some(CertificateSet(SetOfVec::try_from(vec![CertificateChoices::Certificate(
            signer.certificate().clone(),
        )])?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
    };
    let info = ContentInfo { content_type: SIGNED_DATA, content: Any::encode_from(&signed)? };
    Ok(info.to_der()?)
}

/// Signs the unsigned PE image in `file` in place: appends the signature and points the
/// certificate table's directory entry at it. Returns the new length.
pub fn sign_in_place(file: &mut File, signer: &Signer) -> Result<u64> {
    let mut length = file.metadata()?.len();
    let mut head = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    (&mut *file).take(64 << 10).read_to_end(&mut head)?;
    let headers = Headers::read(&head, length).context("the UKI to sign")?;
    let entry = headers
        .certificate_entry_offset()
        .context("the EFI stub has no certificate table entry: it cannot be signed")?;
    if head[entry..entry + 8] != [0; 8] {
        bail!("the UKI is signed already");
    }
    // The certificate table starts on 8 bytes; the padding is part of the hashed image.
    if length % 8 != 0 {
        let padding = 8 - length % 8;
        file.write_all_at(&vec![0; usize::try_from(padding).expect("below 8")], length)?;
        length += padding;
    }
    let digest = image_digest(file, &headers, length, 0)?;
    let signature = signed_data(&digest, signer)?;
    let entry_length = 8 + signature.len();
    let mut table = Vec::with_capacity(entry_length + 8);
    table.extend_from_slice(&u32::try_from(entry_length).context("a signature beyond 4 GiB")?.to_le_bytes());
    table.extend_from_slice(&WIN_CERT_REVISION_2_0.to_le_bytes());
    table.extend_from_slice(&WIN_CERT_TYPE_PKCS_SIGNED_DATA.to_le_bytes());
    table.extend_from_slice(&signature);
    table.resize(entry_length.div_ceil(8) * 8, 0);
    let mut directory = [0u8; 8];
    directory[..4]
        .copy_from_slice(&u32::try_from(length).context("a UKI beyond 4 GiB cannot be signed")?.to_le_bytes());
    directory[4..].copy_from_slice(&u32::try_from(table.len()).expect("a small table").to_le_bytes());
    file.write_all_at(&table, length)?;
    file.write_all_at(&directory, entry as u64)?;
    Ok(length + table.len() as u64)
}

/// The signature of a signed image: the certificate table's PKCS#7 DER, and the image's
/// Authenticode hash, to check it (tests, and refresh of what was signed).
pub fn read_signature(file: &File) -> Result<Option<(Vec<u8>, [u8; 32])>> {
    let length = file.metadata()?.len();
    let mut head = vec![0u8; usize::try_from(length.min(64 << 10)).expect("64 KiB")];
    file.read_exact_at(&mut head, 0)?;
    let headers = Headers::read(&head, length)?;
    let Some(entry) = headers.certificate_entry_offset() else { return Ok(None) };
    let offset = u64::from(u32::from_le_bytes(head[entry..entry + 4].try_into().expect("4 bytes")));
    let size = u64::from(u32::from_le_bytes(head[entry + 4..entry + 8].try_into().expect("4 bytes")));
    if size == 0 {
        return Ok(None);
    }
    if offset + size != length || size < 8 {
        bail!("the certificate table is not at the end of the file");
    }
    let mut table = vec![0u8; usize::try_from(size)?];
    file.read_exact_at(&mut table, offset)?;
    let declared = usize::try_from(u32::from_le_bytes(table[..4].try_into().expect("4 bytes")))?;
    let der = table.get(8..declared).context("a WIN_CERTIFICATE longer than its table")?.to_vec();
    Ok(Some((der, image_digest(file, &headers, length, size)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::signing::{tests::rsa_identity, KeySource};

    #[test]
    fn the_pe_image_data_is_der_of_the_length_it_says() {
        assert_eq!(PE_IMAGE_DATA.len(), 2 + 0x33);
        assert_eq!(tlv(0x04, &[0u8; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[0u8; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn a_signed_image_hashes_as_before_and_signs_the_same_bytes_twice() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = rsa_identity(dir.path(), "db");
        let signer = Signer::new(&cert, KeySource::Pem(&key)).unwrap();
        let image = crate::disk::pe::tiny_image(crate::disk::pe::MACHINE_X86_64);
        let sign = || {
            let mut file = tempfile::tempfile().unwrap();
            std::io::Write::write_all(&mut file, &image).unwrap();
            let unsigned = image_digest(&file, &Headers::of_image(&image).unwrap(), image.len() as u64, 0).unwrap();
            let length = sign_in_place(&mut file, &signer).unwrap();
            assert_eq!(file.metadata().unwrap().len(), length);
            let (der, digest) = read_signature(&file).unwrap().unwrap();
            assert_eq!(digest, unsigned, "the signature is left out of the hash");
            let mut bytes = Vec::new();
            file.seek(SeekFrom::Start(0)).unwrap();
            file.read_to_end(&mut bytes).unwrap();
            assert!(ContentInfo::from_der(&der).is_ok());
            bytes
        };
        let first = sign();
        assert_eq!(first, sign(), "deterministic");
        assert_eq!(first[..image.len()].len(), image.len());
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &first).unwrap();
        assert!(format!("{:#}", sign_in_place(&mut file, &signer).unwrap_err()).contains("signed already"));
    }
}
